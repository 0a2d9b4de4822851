"""Schedule time: an engine's seconds since the run's common start, pauses left out.

A request of the schedule is due at schedule second ``t``, that is at monotonic instant
``base + t``; a pause holds schedule time still, and a resume moves ``base`` on by the
pause's length, so nothing falls due while paused and nothing bursts after.
"""

from __future__ import annotations


class ScheduleTime:
    """Start instant and pauses of one engine (monotonic seconds)."""

    def __init__(self) -> None:
        self.start = 0.0  # the common start instant, on this process's monotonic clock
        self.paused_total = 0.0
        self.paused_at: float | None = None

    def __repr__(self) -> str:
        return (f"ScheduleTime(start={self.start}, paused_total={self.paused_total}, "
                f"paused_at={self.paused_at})")

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def base(self) -> float:
        """The monotonic instant of schedule time 0, pauses so far included."""
        return self.start + self.paused_total

    def at(self, now: float) -> float:
        """Schedule seconds at monotonic instant ``now`` (held still while paused)."""
        at = self.paused_at if self.paused_at is not None else now
        return at - self.start - self.paused_total

    def pause(self, now: float) -> None:
        if self.paused_at is None:
            self.paused_at = now

    def resume(self, now: float) -> None:
        if self.paused_at is not None:
            self.paused_total += now - self.paused_at
            self.paused_at = None
