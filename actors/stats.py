"""Per-actor, per-second stats windows, and the recorder the engine calls per request.

A window is one actor's stats for one second of the run; ``Window.to_data()`` gives the
plain-data dict of the window contract (``actors/contract.py``, which also says how
windows merge: the driver merges them, actors never do).

The :class:`Recorder` hot path is a handful of attribute updates per request: latencies
are appended to two plain lists and folded into the histograms once per window, with
numpy, using the same bucket arithmetic as ``hdrh`` (``HdrHistogram.record_value`` costs
~1.8 µs a value in pure Python). Closed windows go to a deque as plain data; ``drain()``
may be called from another thread. The per-request methods take no lock.

No ray, no pycurl here.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    CONNECT,
    COUNTERS,
    DIMENSIONS,
    HEALTH,
    LATENCIES,
    LATENCY_CORRECTED,
    LATENCY_FAILED,
    LATENCY_RAW,
    SEND_LAG,
    TAG_LATENCY,
    TAG_SEPARATOR,
    TTFB,
    clear_histogram,
    encode,
    new_histogram,
)
from rafale.actors.health import Health
from rafale.actors.hist import fold_values

__all__ = ["ERROR_KINDS", "Recorder", "Window", "error_kind"]

# Positions of the latency fields in a window's ``values`` and ``hists``.
_CORRECTED, _RAW, _FAILED, _LAG, _CONNECT, _TTFB = (LATENCIES.index(name) for name in (
    LATENCY_CORRECTED, LATENCY_RAW, LATENCY_FAILED, SEND_LAG, CONNECT, TTFB))

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


class Window:
    """One actor's stats for one second (mutable; owned by one actor until closed)."""

    __slots__ = ("actor", "second", *COUNTERS, *DIMENSIONS, "outcomes", "values", "hists",
                 "tag_values")
    # The counters (ints; cpu_s a float) and maps of the contract, as typed attributes.
    intended: int
    sent: int
    completed: int
    failed: int
    late: int
    dropped: int
    retries: int
    late_stall: int
    late_cap: int
    late_connect: int
    late_loop: int
    in_flight: int
    bytes_in: int
    new_connections: int
    loops: int
    runq_wait_us: int
    thread_cpu_us: int
    loop_gap_max_us: int
    stall_us: int
    stalled: int
    niceness: int
    cpu_s: float
    status: dict[int, int]
    error: dict[str, int]
    address: dict[str, int]
    version: dict[str, int]
    tag: dict[str, int]

    def __init__(self, actor: int, second: int) -> None:
        self.actor = actor
        self.second = second
        for name in COUNTERS:
            setattr(self, name, 0)
        self.cpu_s = 0.0
        for name in DIMENSIONS:
            setattr(self, name, {})
        # Pending until fold(): completed responses by (status, version, address), and
        # values (µs) not yet in the histograms, one list per latency field of the
        # contract, in its order. The hot path touches only these.
        self.outcomes: dict[tuple[int, str, str], int] = {}
        self.values: tuple[list[int], ...] = tuple([] for _ in LATENCIES)
        self.hists: list[HdrHistogram | None] = [None] * len(LATENCIES)
        self.tag_values: dict[str, list[int]] = {}  # tag -> corrected latencies (µs)

    def __repr__(self) -> str:
        return (f"Window(actor={self.actor}, second={self.second}, sent={self.sent}, "
                f"completed={self.completed}, failed={self.failed}, late={self.late})")

    def fold(self) -> None:
        """Move the pending outcomes and values into the counters and histograms."""
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
        for i, values in enumerate(self.values):
            if values:
                hist = self.hists[i]
                if hist is None:
                    hist = self.hists[i] = new_histogram()
                fold_values(hist, values)
                values.clear()

    def to_data(self, tag_scratch: dict[str, HdrHistogram] | None = None) -> dict[str, Any]:
        """The plain-data dict of the window contract (``actors/contract.py``); per-tag
        histograms are folded into ``tag_scratch`` (reused, cleared after encoding)."""
        self.fold()
        data: dict[str, Any] = {"actor": self.actor, "second": self.second}
        for name in COUNTERS:
            data[name] = getattr(self, name)
        for name in DIMENSIONS:
            data[name] = {str(k): v for k, v in getattr(self, name).items()}
        for name, hist in zip(LATENCIES, self.hists, strict=True):
            data[name] = encode(hist)
        if self.tag_values:
            scratch = {} if tag_scratch is None else tag_scratch
            by_tag = {}
            for tag, values in self.tag_values.items():
                hist = scratch.get(tag)
                if hist is None:
                    hist = scratch[tag] = new_histogram()
                fold_values(hist, values)
                by_tag[tag] = encode(hist)
                clear_histogram(hist)
            data[TAG_LATENCY] = by_tag
        return data


# ----- the recorder (hot path) ----------------------------------------------------------


class Recorder:
    """Records one actor's requests into per-second windows.

    The per-request methods (``add_intended``, ``on_sent``, ``on_completed``,
    ``on_failed``) and ``roll``/``finish`` are called from one thread (the engine loop);
    ``drain`` may be called from any thread. ``cpu_s_total`` and ``loops_total`` are
    running totals; each window gets their increase since the previous window closed
    (the constructor gives the starting totals). After ``finish`` nothing more is emitted.
    A sent request is late when its send lag exceeds ``late_after_us``.
    """

    __slots__ = ("actor", "late_after_us", "_w", "_second", "_cpu_mark", "_loops_mark",
                 "_closed", "_finished", "_scratch", "_tag_scratch")

    def __init__(self, actor: int, *, second: int = 0, cpu_s_total: float = 0.0,
                 loops_total: int = 0, late_after_us: int = 1000) -> None:
        if not isinstance(actor, int):
            raise ValueError(f"Recorder.actor must be an int, got {actor!r}")
        if not isinstance(second, int) or second < 0:
            raise ValueError(f"Recorder.second must be an int >= 0, got {second!r}")
        self.actor = actor
        self.late_after_us = late_after_us
        self._second = second
        self._w = Window(actor, second)
        self._cpu_mark = cpu_s_total
        self._loops_mark = loops_total
        self._closed: deque[dict[str, Any]] = deque()
        self._finished = False
        # Histograms reused by every window this recorder closes (each is ~170 KB:
        # allocating them every second fragments the heap of a long-running actor).
        self._scratch = [new_histogram() for _ in LATENCIES]
        self._tag_scratch: dict[str, HdrHistogram] = {}  # one per feed tag (at most 32)

    def __repr__(self) -> str:
        return f"Recorder(actor={self.actor}, second={self._second}, closed={len(self._closed)})"

    @property
    def second(self) -> int:
        """The second of the open window."""
        return self._second

    # -- per request ------------------------------------------------------------------

    def add_intended(self, n: int) -> None:
        self._w.intended += n

    def add_dropped(self, n: int) -> None:
        """Requests that fell due and were never sent (the schedule ended or stop())."""
        self._w.dropped += n

    def on_sent(self, lag_us: int | None, cap_full: bool, stalled: bool = False,
                connect_full: bool = False) -> None:
        """A request sent ``lag_us`` after its intended time (None: the closed model);
        ``stalled``: the sender was stalled at its due time (the first cause of a late
        one); ``connect_full``: the connect budget held it then (the second);
        ``cap_full``: the in-flight cap was full then."""
        w = self._w
        w.sent += 1
        if lag_us is None:
            return
        w.values[_LAG].append(lag_us)
        if lag_us > self.late_after_us:
            w.late += 1
            if stalled:
                w.late_stall += 1
            elif connect_full:
                w.late_connect += 1
            elif cap_full:
                w.late_cap += 1
            else:
                w.late_loop += 1

    def on_completed(self, status: int, version: str, address: str, bytes_in: int,
                     corrected_us: int, raw_us: int, connect_us: int | None,
                     ttfb_us: int) -> None:
        """A response: ``connect_us`` is the time to open its connection when it opened
        one (None when it reused one), ``ttfb_us`` its time to first byte."""
        w = self._w
        w.bytes_in += bytes_in
        values = w.values
        if connect_us is not None:
            w.new_connections += 1
            values[_CONNECT].append(connect_us)
        d = w.outcomes
        key = (status, version, address)
        d[key] = d.get(key, 0) + 1
        values[_CORRECTED].append(corrected_us)
        values[_RAW].append(raw_us)
        values[_TTFB].append(ttfb_us)

    def on_health(self, health: Health) -> None:
        """The sender's health in the open window (set just before it closes)."""
        w = self._w
        for name in HEALTH:
            setattr(w, name, getattr(health, name))

    def on_retry(self) -> None:
        """A sent request that is a retry of a feed row (counted in ``sent`` too)."""
        self._w.retries += 1

    def on_tag(self, tag: str, key: int | str, corrected_us: int | None = None) -> None:
        """A finished request of a feed row tagged ``tag``: its status or "kind:code", and
        (completed requests) its latency from the intended send time."""
        w = self._w
        d = w.tag
        name = f"{tag}{TAG_SEPARATOR}{key}"
        d[name] = d.get(name, 0) + 1
        if corrected_us is not None:
            values = w.tag_values.get(tag)
            if values is None:
                values = w.tag_values[tag] = []
            values.append(corrected_us)

    def on_failed(self, kind: str, curl_code: int, corrected_us: int) -> None:
        """A request that ended without a response ``corrected_us`` after its intended time."""
        w = self._w
        w.failed += 1
        key = f"{kind}:{curl_code}"
        d = w.error
        d[key] = d.get(key, 0) + 1
        w.values[_FAILED].append(corrected_us)

    # -- per second ---------------------------------------------------------------------

    def _close(self, in_flight: int, cpu_s_total: float, loops_total: int) -> None:
        w = self._w
        w.in_flight = in_flight
        w.cpu_s = cpu_s_total - self._cpu_mark
        w.loops = loops_total - self._loops_mark
        self._cpu_mark = cpu_s_total
        self._loops_mark = loops_total
        w.hists = list(self._scratch)
        self._closed.append(w.to_data(self._tag_scratch))
        w.hists = [None] * len(LATENCIES)
        for hist in self._scratch:
            if hist.total_count:
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
        idle = not (w.intended or w.sent or w.failed or w.outcomes or w.completed
                    or w.dropped)
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

