"""Per-actor, per-second stats windows, and the recorder the engine calls per request.

A window is one actor's stats for one second of the run; ``Window.to_data()`` gives the
plain-data dict of the window contract (CONTRACTS.md). Windows merge losslessly: counters
and dicts are summed, latency HdrHistograms are added.

The :class:`Recorder` hot path is a handful of attribute updates per request: latencies
are appended to two plain lists and folded into the histograms once per window, with
numpy, using the same bucket arithmetic as ``hdrh`` (``HdrHistogram.record_value`` costs
~1.8 µs a value in pure Python). Closed windows go to a deque as plain data; ``drain()``
may be called from another thread. The per-request methods take no lock.

No ray, no pycurl here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

from actors.hist import (
    HIST_HIGHEST_US,
    HIST_LOWEST_US,
    HIST_SIGNIFICANT_DIGITS,
    add_histogram,
    clear_histogram,
    decode,
    encode,
    fold_values,
    new_histogram,
)

__all__ = [
    "HIST_HIGHEST_US", "HIST_LOWEST_US", "HIST_SIGNIFICANT_DIGITS", "Recorder", "Window",
    "ERROR_KINDS", "add_histogram", "error_kind", "fold_values", "merge_data", "merge_windows",
    "new_histogram",
]

COUNTERS = ("intended", "sent", "completed", "failed", "late", "in_flight", "bytes_in",
            "new_connections", "loops")
DICTS = ("status", "error", "address", "version")

# libcurl CURLcode numbers -> error kind (numbers, so that pycurl is not imported here).
_KIND_CODES: dict[str, tuple[int, ...]] = {
    "dns": (5, 6),  # COULDNT_RESOLVE_PROXY, COULDNT_RESOLVE_HOST
    "connect": (7, 45, 96),  # COULDNT_CONNECT, INTERFACE_FAILED, QUIC_CONNECT_ERROR
    # SSL_CONNECT_ERROR 35, PEER_FAILED_VERIFICATION 51 (old) and 60, SSL_ENGINE_NOTFOUND 53,
    # SSL_ENGINE_SETFAILED 54, SSL_CERTPROBLEM 58, SSL_CIPHER 59, USE_SSL_FAILED 64,
    # SSL_ENGINE_INITFAILED 66, SSL_CACERT_BADFILE 77, SSL_SHUTDOWN_FAILED 80,
    # SSL_CRL_BADFILE 82, SSL_ISSUER_ERROR 83, SSL_PINNEDPUBKEYNOTMATCH 90,
    # SSL_INVALIDCERTSTATUS 91, SSL_CLIENTCERT 98
    "tls": (35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98),
    "timeout": (28,),  # OPERATION_TIMEDOUT
    "send": (55,),  # SEND_ERROR
    # UNSUPPORTED_PROTOCOL 1 (a reply that is not HTTP: "Received HTTP/0.9"),
    # WEIRD_SERVER_REPLY 8, HTTP2 16 (framing layer), PARTIAL_FILE 18 (closed with data
    # outstanding), GOT_NOTHING 52, RECV_ERROR 56, HTTP2_STREAM 92, HTTP3 95
    "recv": (1, 8, 16, 18, 52, 56, 92, 95),
}
ERROR_KINDS: dict[int, str] = {code: kind for kind, codes in _KIND_CODES.items()
                               for code in codes}


def error_kind(curl_code: int) -> str:
    """The error kind of a libcurl error code: dns, connect, tls, timeout, send, recv, other."""
    return ERROR_KINDS.get(curl_code, "other")


# ----- windows --------------------------------------------------------------------------


def _status_key(key: str | int) -> int | str:
    try:
        return int(key)
    except ValueError:
        return key


class Window:
    """One actor's stats for one second (mutable; owned by one actor until closed)."""

    __slots__ = ("actor", "second", "intended", "sent", "completed", "failed", "late",
                 "in_flight", "bytes_in", "new_connections", "loops", "cpu_s", "status",
                 "error", "address", "version", "outcomes", "corrected_us", "raw_us",
                 "hist_corrected", "hist_raw")

    def __init__(self, actor: int, second: int) -> None:
        self.actor = actor
        self.second = second
        self.intended = self.sent = self.completed = self.failed = self.late = 0
        self.in_flight = self.bytes_in = self.new_connections = self.loops = 0
        self.cpu_s = 0.0
        self.status: dict[int | str, int] = {}  # int HTTP status; str keys only in data
        self.error: dict[str, int] = {}
        self.address: dict[str, int] = {}
        self.version: dict[str, int] = {}
        # Pending until fold(): completed responses by (status, version, address), and
        # latencies (µs) not yet in the histograms. The hot path touches only these.
        self.outcomes: dict[tuple[int, str, str], int] = {}
        self.corrected_us: list[int] = []
        self.raw_us: list[int] = []
        self.hist_corrected: HdrHistogram | None = None
        self.hist_raw: HdrHistogram | None = None

    def __repr__(self) -> str:
        return (f"Window(actor={self.actor}, second={self.second}, sent={self.sent}, "
                f"completed={self.completed}, failed={self.failed}, late={self.late})")

    def fold(self) -> None:
        """Move the pending outcomes and latency lists into the counters and histograms."""
        if self.outcomes:
            status, version, address = self.status, self.version, self.address
            completed = 0
            for (code, ver, addr), count in self.outcomes.items():
                completed += count
                status[code] = status.get(code, 0) + count
                version[ver] = version.get(ver, 0) + count
                address[addr] = address.get(addr, 0) + count
            self.completed += completed
            self.outcomes = {}
        if self.corrected_us:
            if self.hist_corrected is None:
                self.hist_corrected = new_histogram()
            fold_values(self.hist_corrected, self.corrected_us)
            self.corrected_us = []
        if self.raw_us:
            if self.hist_raw is None:
                self.hist_raw = new_histogram()
            fold_values(self.hist_raw, self.raw_us)
            self.raw_us = []

    def to_data(self) -> dict[str, Any]:
        """The plain-data dict of the window contract."""
        self.fold()
        return {
            "actor": self.actor,
            "second": self.second,
            "intended": self.intended,
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "late": self.late,
            "in_flight": self.in_flight,
            "bytes_in": self.bytes_in,
            "new_connections": self.new_connections,
            "cpu_s": float(self.cpu_s),
            "loops": self.loops,
            "status": {str(k): v for k, v in self.status.items()},
            "error": dict(self.error),
            "address": dict(self.address),
            "version": dict(self.version),
            "latency_corrected_us": encode(self.hist_corrected),
            "latency_raw_us": encode(self.hist_raw),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Window:
        """A window from its plain data (extra keys such as node or run_id are ignored)."""
        required = ("actor", "second", *COUNTERS, "cpu_s", *DICTS, "latency_corrected_us",
                    "latency_raw_us")
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"window data lacks keys {missing}; a window has {list(required)}")
        w = cls(int(data["actor"]), int(data["second"]))
        for name in COUNTERS:
            setattr(w, name, int(data[name]))
        w.cpu_s = float(data["cpu_s"])
        w.status = {_status_key(k): int(v) for k, v in data["status"].items()}
        w.error = {str(k): int(v) for k, v in data["error"].items()}
        w.address = {str(k): int(v) for k, v in data["address"].items()}
        w.version = {str(k): int(v) for k, v in data["version"].items()}
        w.hist_corrected = decode(data["latency_corrected_us"])
        w.hist_raw = decode(data["latency_raw_us"])
        return w

    def merge(self, other: Window, *, check: bool = True) -> Window:
        """Add other into self (in place) and return self; actor and second must match."""
        if check and (other.actor != self.actor or other.second != self.second):
            raise ValueError(f"can only merge windows of the same actor and second, got "
                             f"actor {self.actor} second {self.second} and actor "
                             f"{other.actor} second {other.second}")
        self.fold()
        other.fold()
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cpu_s += other.cpu_s
        for name in DICTS:
            mine: dict[Any, int] = getattr(self, name)
            for key, count in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + count
        if other.hist_corrected is not None and other.hist_corrected.total_count:
            if self.hist_corrected is None:
                self.hist_corrected = new_histogram()
            add_histogram(self.hist_corrected, other.hist_corrected)
        if other.hist_raw is not None and other.hist_raw.total_count:
            if self.hist_raw is None:
                self.hist_raw = new_histogram()
            add_histogram(self.hist_raw, other.hist_raw)
        return self


def merge_data(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Merge two windows' plain data of the same actor and second."""
    return Window.from_data(a).merge(Window.from_data(b)).to_data()


def merge_windows(items: Iterable[dict[str, Any]], actor: int = -1) -> dict[str, Any]:
    """Merge any number of windows of the same second (any actors) into one, as ``actor``."""
    merged: Window | None = None
    for data in items:
        w = Window.from_data(data)
        if merged is None:
            merged = Window(actor, w.second)
        elif w.second != merged.second:
            raise ValueError(f"can only merge windows of one second, got seconds "
                             f"{merged.second} and {w.second}")
        merged.merge(w, check=False)
    if merged is None:
        raise ValueError("merge_windows needs at least one window, got none")
    return merged.to_data()


# ----- the recorder (hot path) ----------------------------------------------------------


class Recorder:
    """Records one actor's requests into per-second windows.

    The per-request methods (``add_intended``, ``on_sent``, ``on_completed``,
    ``on_failed``) and ``roll``/``finish`` are called from one thread (the engine loop);
    ``drain`` may be called from any thread. ``cpu_s_total`` and ``loops_total`` are
    running totals; each window gets their increase since the previous window closed
    (the constructor gives the starting totals). After ``finish`` nothing more is emitted.
    """

    __slots__ = ("actor", "_w", "_second", "_cpu_mark", "_loops_mark", "_closed", "_finished",
                 "_scratch")

    def __init__(self, actor: int, *, second: int = 0, cpu_s_total: float = 0.0,
                 loops_total: int = 0) -> None:
        if not isinstance(actor, int):
            raise ValueError(f"Recorder.actor must be an int, got {actor!r}")
        if not isinstance(second, int) or second < 0:
            raise ValueError(f"Recorder.second must be an int >= 0, got {second!r}")
        self.actor = actor
        self._second = second
        self._w = Window(actor, second)
        self._cpu_mark = cpu_s_total
        self._loops_mark = loops_total
        self._closed: deque[dict[str, Any]] = deque()
        self._finished = False
        # Two histograms reused by every window this recorder closes (each is ~170 KB:
        # allocating a pair every second fragments the heap of a long-running actor).
        self._scratch = (new_histogram(), new_histogram())

    def __repr__(self) -> str:
        return f"Recorder(actor={self.actor}, second={self._second}, closed={len(self._closed)})"

    @property
    def second(self) -> int:
        """The second of the open window."""
        return self._second

    # -- per request ------------------------------------------------------------------

    def add_intended(self, n: int) -> None:
        self._w.intended += n

    def on_sent(self, late: bool) -> None:
        w = self._w
        w.sent += 1
        if late:
            w.late += 1

    def on_completed(self, status: int, version: str, address: str, bytes_in: int,
                     corrected_us: int, raw_us: int, new_connection: bool) -> None:
        w = self._w
        w.bytes_in += bytes_in
        if new_connection:
            w.new_connections += 1
        d = w.outcomes
        key = (status, version, address)
        d[key] = d.get(key, 0) + 1
        w.corrected_us.append(corrected_us)
        w.raw_us.append(raw_us)

    def on_failed(self, kind: str, curl_code: int) -> None:
        w = self._w
        w.failed += 1
        key = f"{kind}:{curl_code}"
        d = w.error
        d[key] = d.get(key, 0) + 1

    # -- per second ---------------------------------------------------------------------

    def _close(self, in_flight: int, cpu_s_total: float, loops_total: int) -> None:
        w = self._w
        w.in_flight = in_flight
        w.cpu_s = cpu_s_total - self._cpu_mark
        w.loops = loops_total - self._loops_mark
        self._cpu_mark = cpu_s_total
        self._loops_mark = loops_total
        w.hist_corrected, w.hist_raw = self._scratch
        self._closed.append(w.to_data())
        w.hist_corrected = w.hist_raw = None
        for hist in self._scratch:
            clear_histogram(hist)

    def roll(self, second: int, *, in_flight: int, cpu_s_total: float, loops_total: int) -> None:
        """Close the open window if ``second`` is past it, and open the window of ``second``.

        Skipped seconds get empty windows (in_flight as given, cpu_s and loops 0): the
        whole CPU and loop increase goes to the window that was open.
        """
        if second <= self._second or self._finished:
            return
        self._close(in_flight, cpu_s_total, loops_total)
        for skipped in range(self._second + 1, second):
            empty = Window(self.actor, skipped)
            empty.in_flight = in_flight
            self._closed.append(empty.to_data())
        self._second = second
        self._w = Window(self.actor, second)

    def finish(self, in_flight: int, cpu_s_total: float, loops_total: int) -> None:
        """Close the open window (once); later calls record into a window never emitted.

        A last window with no request activity and nothing in flight (the run ended just
        past a second boundary) is dropped rather than drawn as a drop to zero."""
        if self._finished:
            return
        w = self._w
        idle = not (w.intended or w.sent or w.failed or w.outcomes or w.completed)
        if idle and in_flight == 0 and w.second > 0:
            self._finished = True  # the run ended just past a second boundary: no window
            self._w = Window(self.actor, self._second + 1)
            return
        self._close(in_flight, cpu_s_total, loops_total)
        self._finished = True
        self._w = Window(self.actor, self._second + 1)

    def drain(self) -> list[dict[str, Any]]:
        """Return and forget the closed windows, oldest first (any thread)."""
        out: list[dict[str, Any]] = []
        pop = self._closed.popleft
        while True:
            try:
                out.append(pop())
            except IndexError:
                return out

