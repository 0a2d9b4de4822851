"""Which request of the schedule one engine sends next, and how many were due by a time.

An engine's share of the schedule is its pacer (a stripe: every ``count``-th request from
``index``), walked by the local index ``j``. A stripe change, a rate change or a lost
actor's requests (catch-up) change what comes next without breaking the count of intended
requests: ``intended_base`` absorbs each swap, so ``intended(t)`` stays continuous. Pure
logic: no clock, no curl, no threads (the engine's loop thread owns a Slots).
"""

from __future__ import annotations

import math
from collections import deque

from rafale.actors.pacing import Pacer, Schedule, Stage, StripedPacer, SwitchPacer, UnlimitedPacer


class Slots:
    """The slots of one engine's stripe: the next due time, switches, catch-up, counts."""

    def __init__(self, schedule: Schedule | None, index: int, count: int) -> None:
        self.schedule = schedule
        # No schedule: the closed model (send as fast as the in-flight cap allows).
        self.closed = schedule is None
        self.pacer: Pacer = self._make_pacer(index, count, 0)
        self.j = 0  # local index of the next slot of the current pacer
        self.next_due_s = self.pacer.due_s(0)  # schedule seconds; inf: none left
        self.intended_base = 0
        self.skipped = 0  # slots with no row ready (a feed sent once): not intended
        # Requests of a lost actor's stripe (ranges of global indices, already due): sent
        # first, late, and counted as intended.
        self.catch_up: deque[range] = deque()
        self.catch_up_intended = 0
        self.catch_up_left = 0
        self.counted = 0  # requests already counted as intended (newly_due)

    def __repr__(self) -> str:
        return (f"Slots(j={self.j}, next_due_s={self.next_due_s:.6f}, "
                f"catch_up_left={self.catch_up_left})")

    def _make_pacer(self, index: int, count: int, start_k: int) -> Pacer:
        if self.schedule is None:
            return UnlimitedPacer(index=index, count=count)
        return StripedPacer(self.schedule, index, count, start_k)

    # ----- walking (the loop's hot path) ----------------------------------------------

    def advance(self) -> None:
        """The next slot of the pacer (the current one was sent)."""
        self.j += 1
        self.next_due_s = self.pacer.due_s(self.j)

    def skip(self) -> None:
        """The current slot had no row ready: it is not sent and not intended."""
        self.skipped += 1
        self.advance()

    def catch_up_due_s(self) -> float:
        """When the next caught-up request is due (schedule seconds; there must be one)."""
        return self.schedule.time_of(self.catch_up[0][0])  # type: ignore[union-attr]

    def take_caught(self) -> float:
        """Take the next caught-up request; return its due time (schedule seconds)."""
        due_s = self.catch_up_due_s()
        self.catch_up_left -= 1
        span = self.catch_up[0]
        if len(span) > 1:
            self.catch_up[0] = span[1:]
        else:
            self.catch_up.popleft()
        return due_s

    def intended(self, end_s: float) -> int:
        """Requests of this engine due by schedule time ``end_s`` (closed model: none)."""
        return (self.intended_base + self.pacer.count_due(end_s) - self.skipped
                + self.catch_up_intended)

    def newly_due(self, end_s: float, sent: int) -> int:
        """Requests due by schedule time ``end_s`` not counted by an earlier call (the
        closed model: those sent)."""
        due = sent if self.closed else self.intended(end_s)
        added = max(0, due - self.counted)
        self.counted += added
        return added

    # ----- changes (commands, on the loop thread) --------------------------------------

    def swap(self, pacer: Pacer, j: int, sched_t: float, sent: int) -> None:
        """Replace the pacer, keeping the count of intended requests continuous."""
        if isinstance(self.pacer, UnlimitedPacer):
            done = sent
        else:
            done = self.intended_base + self.pacer.count_due(sched_t)
        self.pacer, self.j = pacer, j
        self.intended_base = done - pacer.count_due(sched_t)
        self.next_due_s = pacer.due_s(j)

    def settle(self) -> None:
        """Replace a stripe switch that is behind us by its new pacer (same requests)."""
        pacer = self.pacer
        while isinstance(pacer, SwitchPacer) and (done := pacer.settled(self.j)) is not None:
            pacer, self.j, before = done
            self.pacer = pacer
            self.intended_base += before  # the old requests, all due: count_due drops them
        self.next_due_s = self.pacer.due_s(self.j)

    def set_rate(self, rate_per_s: float, sched_t: float, duration_s: float, index: int,
                 count: int, sent: int) -> None:
        """From ``sched_t`` on, the schedule runs at ``rate_per_s`` (the closed model gets
        a schedule: nothing until now, then the rate to the end)."""
        if self.schedule is None:
            rest = max(duration_s - sched_t, 1e-3)
            stages = (Stage(max(sched_t, 1e-9), 0.0, 0.0), Stage(rest, rate_per_s, rate_per_s))
            self.schedule, self.closed = Schedule(stages), False
            self.swap(self._make_pacer(index, count, 0), 0, sched_t, sent)
            return
        self.schedule = self.schedule.with_rate_from(sched_t, rate_per_s)
        self.settle()
        old = self.pacer
        assert isinstance(old, StripedPacer | SwitchPacer)
        self.swap(old.with_schedule(self.schedule), self.j, sched_t, sent)

    def set_stripe(self, index: int, count: int, from_k: int | None, sched_t: float,
                   sent: int) -> bool:
        """Send stripe ``index`` of ``count`` from global request ``from_k`` on (None: from
        now on). Return False when the change came after its boundary (it then takes
        effect from now on)."""
        if self.schedule is None:
            return True  # the closed model has no global schedule to share
        self.settle()
        old = self.pacer
        # On time when no request at or past the boundary has been sent yet.
        if (from_k is not None and isinstance(old, StripedPacer | SwitchPacer)
                and (self.j == 0 or old.global_k(self.j - 1) < from_k)):
            # Switch at the common boundary: the old stripe's requests before from_k are
            # still this engine's to send, the new stripe's from from_k on.
            new = StripedPacer(self.schedule, index, count, from_k)
            self.swap(SwitchPacer(old, self.j, new), 0, sched_t, sent)
            return True
        start_k = self.schedule.count_due(sched_t)
        self.swap(StripedPacer(self.schedule, index, count, start_k), 0, sched_t, sent)
        return from_k is None

    def add_catch_up(self, ranges: list[range]) -> int:
        """Queue a lost actor's requests; return how many were added."""
        added = sum(len(r) for r in ranges)
        self.catch_up.extend(r for r in ranges if len(r))
        self.catch_up_intended += added
        self.catch_up_left += added
        return added

    def drop_catch_up(self) -> None:
        """Forget the queued catch-up (a fenced engine sends none of it)."""
        self.catch_up.clear()
        self.catch_up_left = 0

    def last_before_next(self) -> float:
        """A schedule time just before the next slot: an end there sends nothing more."""
        return math.nextafter(self.next_due_s, -math.inf)
