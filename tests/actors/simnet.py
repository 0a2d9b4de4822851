"""Simulated time and transfers for the engine: its loop, on a clock that only moves when it
waits, against a network whose every request ends ``latency_s`` after it starts.

The engine under test is the real one (its pacing, phases, windows, lease and commands);
only :class:`~rafale.actors.transfers.Clock` and
:class:`~rafale.actors.transfers.Transfers` are replaced, as the engine's constructor
allows. A run of many simulated seconds takes milliseconds and never sleeps, so what the
logic does at an exact instant (pause, set_rate, stop, a lease running out) is checked to
the request. ``at(t, call)`` runs ``call`` on the loop thread when simulated time reaches
``t`` seconds after the start, as a control call from another thread would arrive there.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

import pycurl

from rafale.actors.config import EngineConfig
from rafale.actors.transfers import Clock

START_S = 1_000.0  # the simulated monotonic clock at the start (the engine starts at once)
EPOCH_S = 1_800_000_000.0  # wall time minus monotonic time


class SimEasy:
    """A transfer handle: options kept, answers given by the network."""

    def __init__(self) -> None:
        self.options: dict[int, Any] = {}
        self.info: dict[int, Any] = {}

    def setopt(self, option: int, value: Any) -> None:
        self.options[option] = value

    def getinfo(self, what: int) -> Any:
        return self.info.get(what, 0)

    def close(self) -> None:
        pass


# What a request ends with: (seconds after its start, HTTP status, curl error code)
Answer = tuple[float, int, int]


class SimNet:
    """A Clock and a Transfers on simulated time (see the module's docstring)."""

    def __init__(self, latency_s: float = 0.01, status: int = 200,
                 answer: Callable[[int], Answer] | None = None) -> None:
        self.now = START_S
        self.cpu_s = 0.0
        self.answer = answer or (lambda _n: (latency_s, status, 0))
        self._calls: list[tuple[float, int, Callable[[], None]]] = []
        self._flight: list[tuple[float, int, SimEasy]] = []
        self._seq = itertools.count()
        self._answered: list[SimEasy] = []
        self._failed: list[tuple[SimEasy, int]] = []
        self.starts: list[float] = []  # seconds after the start, of every request sent
        self.waits = 0

    # ----- Clock ----------------------------------------------------------------------

    def monotonic(self) -> float:
        return self.now

    def process_time(self) -> float:
        self.cpu_s += 1e-6
        return self.cpu_s

    def time(self) -> float:
        return self.now + EPOCH_S

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)

    # ----- set-up ---------------------------------------------------------------------

    def at(self, t_s: float, call: Callable[[], None]) -> None:
        """Run ``call`` on the loop thread at ``t_s`` simulated seconds after the start."""
        heapq.heappush(self._calls, (START_S + t_s, next(self._seq), call))

    def transfers(self, _config: EngineConfig, _wake_fd: int, _answers: dict[int, bytes],
                  _clock: Clock) -> SimNet:
        """The engine's ``transfers`` factory: this network."""
        return self

    # ----- Transfers ------------------------------------------------------------------

    def take(self) -> SimEasy:
        return SimEasy()

    def start(self, easy: SimEasy) -> None:
        after_s, status, code = self.answer(len(self.starts))
        self.starts.append(self.now - START_S)
        easy.info = {pycurl.RESPONSE_CODE: status, pycurl.PRIMARY_IP: "127.0.0.1",
                     pycurl.INFO_HTTP_VERSION: pycurl.CURL_HTTP_VERSION_2_0,
                     pycurl.SIZE_DOWNLOAD_T: 100, pycurl.NUM_CONNECTS: 0}
        easy.code = code  # type: ignore[attr-defined]
        heapq.heappush(self._flight, (self.now + after_s, next(self._seq), easy))

    def wait(self, until_s: float) -> list[tuple[int, int]]:
        self.waits += 1
        until = until_s
        if self._flight:
            until = min(until, self._flight[0][0])
        if self._calls:
            until = min(until, self._calls[0][0])
        self.now = max(self.now, until)
        while self._calls and self._calls[0][0] <= self.now:
            heapq.heappop(self._calls)[2]()
        return []

    def act(self, _ready: list[tuple[int, int]]) -> None:
        while self._flight and self._flight[0][0] <= self.now:
            easy = heapq.heappop(self._flight)[2]
            if easy.code:  # type: ignore[attr-defined]
                self._failed.append((easy, easy.code))  # type: ignore[attr-defined]
            else:
                self._answered.append(easy)

    def finished(self) -> tuple[list[Any], list[tuple[Any, int]]]:
        answered, failed = self._answered, self._failed
        self._answered, self._failed = [], []
        return answered, failed

    def abandon(self) -> list[Any]:
        left = [easy for _t, _n, easy in self._flight]
        self._flight.clear()
        return left

    def close(self) -> None:
        pass
