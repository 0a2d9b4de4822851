"""What the engine's loop needs from time and from the network, as two tiny protocols.

:class:`Clock` is the loop's time (monotonic seconds, CPU seconds, wall seconds, sleep);
:class:`Transfers` starts requests, waits for the network and hands back what finished.
The real ones are :class:`SystemClock` and :class:`CurlTransfers` (one libcurl multi
handle driven by epoll and curl's timer); tests give the engine a simulated pair
(``tests/actors/simnet.py``) to check pause, set_rate, stop, fencing and the end without
sleeping. A transfer handle is a ``pycurl.Curl`` (or anything with its ``setopt`` and
``getinfo``), carrying the engine's attributes (``intended_s``, ``sent_s``, feed row).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import pycurl

from rafale.actors.config import EngineConfig
from rafale.actors.handles import new_easy, new_multi
from rafale.actors.sockets import SocketWatch


class Clock(Protocol):
    """The engine's time."""

    def monotonic(self) -> float: ...

    def process_time(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks of this process."""

    monotonic = staticmethod(time.monotonic)
    process_time = staticmethod(time.process_time)
    sleep = staticmethod(time.sleep)
    time = staticmethod(time.time)  # last: it hides the module in the class body


SYSTEM_CLOCK = SystemClock()


class Transfers(Protocol):
    """Requests in flight: start them, wait for the network, collect those that ended."""

    def take(self) -> Any:
        """A handle to prepare and :meth:`start` (reused once its transfer ended)."""

    def start(self, easy: Any) -> None:
        """Send this prepared handle's request."""

    def wait(self, until_s: float) -> list[tuple[int, int]]:
        """Wait until ``until_s`` (monotonic seconds; sooner if the transport's own timer
        says so) for the network or a wake-up; return what is ready."""

    def act(self, ready: list[tuple[int, int]]) -> None:
        """Let the transport work on what :meth:`wait` found, and on its own timer."""

    def finished(self) -> tuple[list[Any], list[tuple[Any, int]]]:
        """Transfers that ended since the last call: answered handles, and (handle, curl
        error code) for failed ones. Their handles go back to the pool."""

    def abandon(self) -> list[Any]:
        """Stop every transfer still in flight; return their handles."""

    def close(self) -> None:
        """Release everything (handles, sockets)."""


class CurlTransfers:
    """One libcurl multi handle, its sockets in an epoll (with the engine's wake fd), curl's
    timer, and a pool of easy handles."""

    def __init__(self, config: EngineConfig, wake_fd: int, answers: dict[int, bytes],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._config, self._answers = config, answers
        self._monotonic = clock.monotonic  # bound once: read on every wake-up
        self.sockets = SocketWatch(wake_fd)
        self.multi = new_multi(config)
        self.timer_s = math.inf  # when curl wants its timeout action (monotonic seconds)
        self.free: list[pycurl.Curl] = []
        self.busy: set[pycurl.Curl] = set()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self.sockets.on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)

    def _on_timer(self, timeout_ms: int) -> None:
        self.timer_s = math.inf if timeout_ms < 0 else self._monotonic() + timeout_ms / 1e3

    def take(self) -> pycurl.Curl:
        return self.free.pop() if self.free else new_easy(self._config, self._answers)

    def start(self, easy: pycurl.Curl) -> None:
        self.multi.add_handle(easy)
        self.busy.add(easy)

    def wait(self, until_s: float) -> list[tuple[int, int]]:
        # One wake-up, to the microsecond (see SocketWatch.poll).
        return self.sockets.poll(min(until_s, self.timer_s) - self._monotonic())

    def act(self, ready: list[tuple[int, int]]) -> None:
        socket_action = self.multi.socket_action
        for fd, mask in ready:
            socket_action(fd, mask)
        if self.timer_s <= self._monotonic():
            self.timer_s = math.inf
            socket_action(pycurl.SOCKET_TIMEOUT, 0)

    def finished(self) -> tuple[list[pycurl.Curl], list[tuple[pycurl.Curl, int]]]:
        multi, busy, free = self.multi, self.busy, self.free
        answered: list[pycurl.Curl] = []
        failed: list[tuple[pycurl.Curl, int]] = []
        while True:
            queued, ok, errors = multi.info_read()
            for easy in ok:
                multi.remove_handle(easy)
                busy.discard(easy)
                free.append(easy)
            answered += ok
            for easy, code, _message in errors:
                multi.remove_handle(easy)
                busy.discard(easy)
                free.append(easy)
                failed.append((easy, code))
            if not queued:
                return answered, failed

    def abandon(self) -> list[pycurl.Curl]:
        left = list(self.busy)
        for easy in left:
            self.multi.remove_handle(easy)
        self.busy.clear()
        self.free += left
        return left

    def close(self) -> None:
        self.abandon()
        for easy in self.free:
            easy.close()
        self.free.clear()
        self.multi.close()
        self.sockets.close()


TransfersFactory = Callable[[EngineConfig, int, dict[int, bytes], Clock], Transfers]
