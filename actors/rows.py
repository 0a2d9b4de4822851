"""Which feed row a sender sends in its next slot of the schedule: a retry that is ready, a
row handed over by the driver, or the next fresh row of its stripe.

Slots (when to send) come from the pacer; rows (what to send) from a :class:`RowSource`.
Without retries they move together: slot k sends row k. A retry takes a slot of its own,
so the rate holds and the fresh rows after it move one slot later. Actor ``index`` of
``count`` sends the fresh rows r with r % count == index. A new stripe takes effect at a
row boundary ``from_row`` that the driver chooses for every actor alike, so that no row is
sent twice or skipped when stripes change: rows below it stay with their old stripe.

No pycurl, no Ray. Used by the engine loop only (one thread).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from rafale.actors.checks import check_index, check_number

__all__ = ["RETRY_KINDS", "RETRY_STATUSES", "RetryPolicy", "RowSource"]

RETRY_STATUSES = (429, 503)
RETRY_KINDS = ("connect", "timeout", "recv")


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more attempts after a connect/timeout/recv error or a 429/503 answer:
    after the answer's Retry-After (capped), else a capped exponential backoff."""

    retries: int = 0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0

    def __post_init__(self) -> None:
        check_number("retries", self.retries, "retries", zero_ok=True, integer=True)
        for name in ("backoff_s", "backoff_max_s", "retry_after_max_s"):
            check_number(name, getattr(self, name), "s")

    def wants(self, attempt: int, status: int, kind: str) -> bool:
        """Whether a row whose attempt ``attempt`` ended so is tried again."""
        if attempt > self.retries:
            return False
        return status in RETRY_STATUSES if status else kind in RETRY_KINDS

    @property
    def longest_wait_s(self) -> float:
        """The longest a row may wait for all its retries (every wait at its cap)."""
        return self.retries * max(self.backoff_max_s, self.retry_after_max_s)

    def delay_s(self, attempt: int, retry_after_s: float) -> float:
        """How long to wait before the next attempt after attempt ``attempt``."""
        if retry_after_s > 0:
            return min(retry_after_s, self.retry_after_max_s)
        return min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)


class RowSource:
    """The rows of one sender: fresh rows of its stripe, retries and rows handed over.

    ``limit``: rows 0..limit-1 exist (a feed sent once); None: fresh rows never end (a
    feed cycled: the feed reader takes them modulo its length).
    """

    __slots__ = ("limit", "index", "count", "_next", "_taken", "_switch", "_ready", "_order")

    def __init__(self, index: int, count: int, limit: int | None = None) -> None:
        self.limit = limit
        self.index, self.count = index, count
        self._next = index
        self._taken = -1  # the highest fresh row taken so far
        self._switch: tuple[int, int, int] | None = None
        self._ready: list[tuple[float, int, int, int]] = []  # (ready_at, order, row, attempt)
        self._order = 0

    def __repr__(self) -> str:
        return (f"RowSource(stripe {self.index}/{self.count}, next row {self._next}, "
                f"{len(self._ready)} waiting)")

    @property
    def next_row(self) -> int:
        """The next fresh row of this stripe."""
        return self._next

    @property
    def waiting(self) -> int:
        """Retries and handed-over rows not yet sent."""
        return len(self._ready)

    @property
    def done(self) -> bool:
        """No fresh row left and nothing waiting."""
        return not self._ready and self._fresh_left() is False

    def _fresh_left(self) -> bool:
        self._apply_switch()
        return self.limit is None or self._next < self.limit

    def set_stripe(self, index: int, count: int, from_row: int | None = None) -> bool:
        """Take the stripe ``index`` of ``count`` from row ``from_row`` on (None: from this
        stripe's next row). True when it came late: this stripe had already taken a row at
        or past ``from_row`` (which another stripe may now take too)."""
        count = check_number("stripe count", count, "actors", integer=True)
        index = check_index("stripe index", index, count)
        at = self._next if from_row is None else max(int(from_row), 0)
        late = self._taken >= at
        self._switch = (index, count, at)
        self._apply_switch()
        return late

    def _apply_switch(self) -> None:
        switch = self._switch
        if switch is None or self._next < switch[2]:
            return
        index, count, at = switch
        start = max(at, self._taken + 1)  # never a row already taken
        self.index, self.count = index, count
        self._next = start + (index - start) % count
        self._switch = None

    def add(self, rows: list[int], attempt: int, ready_at: float = 0.0) -> None:
        """Rows to send as soon as a slot comes (e.g. rows a lost actor may have sent)."""
        for row in rows:
            self.retry(row, attempt, ready_at)

    def retry(self, row: int, attempt: int, ready_at: float) -> None:
        """Send ``row`` again (as attempt ``attempt``) in the first slot after ready_at."""
        self._order += 1
        heapq.heappush(self._ready, (ready_at, self._order, row, attempt))

    def take(self, slot_s: float) -> tuple[int, int] | None:
        """(row, attempt) for the slot due at ``slot_s``, or None when no row is ready by
        then (fresh rows are over and the waiting ones are ready only later)."""
        ready = self._ready
        if ready and ready[0][0] <= slot_s:
            _, _, row, attempt = heapq.heappop(ready)
            return row, attempt
        if not self._fresh_left():
            return None
        row = self._next
        self._next = row + self.count
        self._taken = row
        return row, 1

    def next_ready_s(self) -> float:
        """When the first waiting row is ready (inf when none waits)."""
        return self._ready[0][0] if self._ready else math.inf
