"""The sender's health: is the sender itself the bottleneck this second?

Two measures, both cheap (a few float operations per loop turn, one file read per second):

- **the loop's gaps**: how long the loop was not ready to send. It is ready while it waits
  on the network before its deadline; it is not from the deadline (or the event that woke
  it) to its next wait: an overslept wake-up, then the turn's own work. :class:`LoopWatch`
  keeps the longest gap of each window and remembers the gaps longer than the tolerance,
  so that a request due inside one is late because of the stall (``late_stall``);
- **the kernel's word**: ``/proc/self/task/<tid>/schedstat`` gives the sending thread's time
  on a CPU and its time runnable but waiting on a run queue (ns), read once per window
  (:func:`read_schedstat`).

A second is *sender-stalled* (:func:`is_stalled`) when its longest gap exceeds the tolerance
(``stall_after_s``, 50 ms by default) or its run-queue wait exceeds
:data:`RUNQ_STALL_SHARE` of it (and the tolerance: a partial window's few ms are not one).
What happens in such a second measures the sender, not the target. No ray, no pycurl here.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RUNQ_STALL_SHARE", "STALL_AFTER_S", "Health", "LoopWatch", "SchedStat",
           "SenderHealth",
           "is_stalled", "parse_schedstat", "read_schedstat", "thread_niceness"]

STALL_AFTER_S = 0.05  # a loop gap longer than this stalls the second (--stall-after)
RUNQ_STALL_SHARE = 0.2  # a run-queue wait above this share of the second stalls it too
_KEPT_STALLS = 64  # long gaps remembered for late_stall (the newest)


@dataclass(frozen=True)
class SchedStat:
    """One reading of a thread's schedstat (ns since the thread started)."""

    cpu_ns: int
    runq_wait_ns: int


def parse_schedstat(text: str) -> SchedStat | None:
    """``"on-cpu-ns runq-wait-ns timeslices"`` -> SchedStat; None for anything else."""
    parts = text.split()
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return SchedStat(int(parts[0]), int(parts[1]))


def read_schedstat(tid: int) -> SchedStat | None:
    """The schedstat of thread ``tid`` of this process; None where the kernel has none."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as file:
            return parse_schedstat(file.read())
    except OSError:
        return None


def thread_niceness(tid: int) -> int:
    """The niceness of thread ``tid`` (0 when it cannot be read)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        return 0


def is_stalled(loop_gap_max_us: int, runq_wait_us: int, window_us: int,
               stall_after_us: int, runq_share: float = RUNQ_STALL_SHARE) -> bool:
    """The stall rule: a gap longer than the tolerance, or a run-queue wait above
    ``runq_share`` of the window and above the tolerance too (a stall loses at least that
    much time: 3 ms of wait in the last 10 ms of a run is 30 % of its window, not a stall)."""
    return loop_gap_max_us > stall_after_us or runq_wait_us > max(runq_share * window_us,
                                                                   stall_after_us)


@dataclass(frozen=True)
class Health:
    """The sender's health in one window (the contract's HEALTH fields)."""

    runq_wait_us: int = 0
    thread_cpu_us: int = 0
    loop_gap_max_us: int = 0
    stall_us: int = 0
    stalled: int = 0
    niceness: int = 0


class LoopWatch:
    """The loop's gaps, on the engine's monotonic clock (seconds).

    The engine calls :meth:`waiting` just before it waits, :meth:`woke` just after, and
    :meth:`close` when a window (``[start_s, end_s)``) ends; :meth:`stalled_at` says whether
    an instant fell inside a gap longer than the tolerance.
    """

    __slots__ = ("stall_after_s", "ready_at", "_wait_start", "_short_max_s", "stalls")

    def __init__(self, stall_after_s: float = STALL_AFTER_S, now: float = 0.0) -> None:
        self.stall_after_s = stall_after_s
        # Since when the loop owes a turn (the open gap's start; inf while it waits).
        self.ready_at = now
        self._wait_start = now
        self._short_max_s = 0.0  # longest short gap since the last close
        # The long gaps (start, end), newest last: a window's part of each is its own.
        self.stalls: deque[tuple[float, float]] = deque(maxlen=_KEPT_STALLS)

    def __repr__(self) -> str:
        return (f"LoopWatch(stall_after_s={self.stall_after_s}, ready_at={self.ready_at}, "
                f"stalls={len(self.stalls)})")

    def waiting(self, now: float) -> None:
        """The loop is about to wait: the gap that began at ``ready_at`` ends here (no gap
        is open while it waits)."""
        gap = now - self.ready_at
        if gap > self.stall_after_s:
            self.stalls.append((self.ready_at, now))
        elif gap > self._short_max_s:
            self._short_max_s = gap
        self._wait_start = now
        self.ready_at = math.inf

    def woke(self, now: float, until_s: float) -> None:
        """The wait (asked to end by ``until_s``) returned at ``now``: a new gap begins at
        the deadline when the loop overslept it, else now."""
        self.ready_at = max(self._wait_start, min(now, until_s))

    def stalled_at(self, t: float, now: float) -> bool:
        """Whether instant ``t`` fell in a gap longer than the tolerance (the open one, as
        of ``now``, or a remembered one)."""
        if t >= self.ready_at:
            return now - self.ready_at > self.stall_after_s
        for start, end in reversed(self.stalls):
            if t >= start:
                return t <= end
        return False

    def close(self, start_s: float, end_s: float, now: float) -> tuple[float, float]:
        """The window ``[start_s, end_s)`` ends (``now`` is past it): its longest gap and its
        time inside long gaps (s). A long gap counts in every window it overlaps (the open
        one as of ``now``), with its whole length; the short gaps that ended since the last
        close count in the first window closed after them."""
        gap_max, long_s = self._short_max_s, 0.0
        self._short_max_s = 0.0
        spans = list(self.stalls)
        if now - self.ready_at > self.stall_after_s:
            spans.append((self.ready_at, now))
        for start, end in reversed(spans):
            if end <= start_s:
                break  # older gaps end before this window
            if start < end_s:
                gap_max = max(gap_max, end - start)
                long_s += min(end, end_s) - max(start, start_s)
        return gap_max, min(long_s, end_s - start_s)


class SenderHealth:
    """The engine's loop watch, and its thread's schedstat shared out among windows.

    Each roll reads schedstat once: what the thread waited for (and ran on) a CPU since the
    previous reading is shared among the windows that reading spans, in proportion to
    their time in it (a window still open gets its part when it closes).
    """

    def __init__(self, stall_after_s: float = STALL_AFTER_S,
                 read: Callable[[int], SchedStat | None] = read_schedstat,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_us = round(stall_after_s * 1e6)
        self.watch = LoopWatch(stall_after_s)
        self._read, self._monotonic = read, monotonic
        self._tid = 0
        self._last: SchedStat | None = None
        self._last_at = 0.0
        # Readings' increases not yet wholly shared out: (cpu ns, wait ns, from, to), on the
        # monotonic clock; a window takes its part of each by its time in it.
        self._spans: list[tuple[float, float, float, float]] = []

    def __repr__(self) -> str:
        return f"SenderHealth(tid={self._tid}, {self.watch!r})"

    def begin(self, tid: int, start_s: float) -> None:
        """Thread ``tid`` will run the loop from ``start_s`` (the run's start: the loop owes
        its first turn then, even if it gets there later). The first reading is now."""
        self._tid = tid
        self._last, self._last_at = self._read(tid), self._monotonic()
        self.watch = LoopWatch(self.watch.stall_after_s, start_s)

    def window(self, start_s: float, end_s: float, now: float, read: bool = True) -> Health:
        """The health of the window ``[start_s, end_s)``, which ended by ``now``. ``read``:
        read schedstat now (once per roll: the later windows of one roll share it)."""
        if read:
            self._take()
        cpu_ns, wait_ns = self._share(start_s, end_s)
        gap_s, long_s = self.watch.close(start_s, end_s, now)
        gap_us, wait_us = round(gap_s * 1e6), round(wait_ns / 1e3)
        stalled = is_stalled(gap_us, wait_us, round((end_s - start_s) * 1e6),
                             self.stall_after_us)
        return Health(wait_us, round(cpu_ns / 1e3), gap_us,
                      max(wait_us, round(long_s * 1e6)) if stalled else 0, int(stalled),
                      thread_niceness(self._tid))

    def _take(self) -> None:
        """Read schedstat, stamped just after the read (the thread may have waited since
        the ``now`` it was given)."""
        reading = self._read(self._tid)
        now = self._monotonic()
        last, span = self._last, now - self._last_at
        if reading is not None and last is not None and span > 0:
            # A thread preempted between its read and its stamp moves some wait from one
            # reading's span to the next one's: no more than the span, as one thread cannot
            # wait (or run) longer than the time that passed.
            self._spans.append((min(float(reading.cpu_ns - last.cpu_ns), span * 1e9),
                                min(float(reading.runq_wait_ns - last.runq_wait_ns),
                                    span * 1e9), self._last_at, now))
        self._last, self._last_at = reading, now

    def _share(self, start_s: float, end_s: float) -> tuple[float, float]:
        """A window's part of every reading that overlaps it (windows close in order: a
        reading that ends by this window's end has been shared out whole)."""
        cpu_ns = wait_ns = 0.0
        for cpu, wait, since, until in self._spans:
            part = max(0.0, min(end_s, until) - max(start_s, since)) / max(until - since, 1e-9)
            cpu_ns += cpu * part
            wait_ns += wait * part
        self._spans = [span for span in self._spans if span[3] > end_s]
        return cpu_ns, wait_ns
