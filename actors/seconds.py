"""The engine's seconds: which window is open, and closing the seconds that ended.

Each second that ended is closed on its own, even when the loop gets to it late (after a
stall): it gets the requests that the schedule made due in it, whatever second the loop
noticed them in, and the sender's health in it (actors/health.py). A loop that did not
turn for several seconds thus leaves each of them with its own intended count and its
stall, not one window with everything and empty ones after it. No ray, no pycurl here.
"""

from __future__ import annotations

import math

from rafale.actors.health import SenderHealth
from rafale.actors.schedtime import ScheduleTime
from rafale.actors.slots import Slots
from rafale.actors.stats import Recorder

__all__ = ["Seconds"]


class Seconds:
    """The open window's second, and the windows of one engine closed one second at a time
    (loop thread)."""

    def __init__(self, recorder: Recorder, slots: Slots, health: SenderHealth) -> None:
        self.recorder, self.slots, self.health = recorder, slots, health
        self.open = 0  # the open window's second

    def __repr__(self) -> str:
        return f"Seconds(open={self.open}, counted={self.slots.counted})"

    def intend(self, sched_t: float, sent: int) -> None:
        """Add to the open window the requests due by schedule time ``sched_t`` (already
        capped at the end of sending) not counted yet."""
        self.recorder.add_intended(self.slots.newly_due(sched_t, sent))

    def roll(self, now: float, time: ScheduleTime, end_s: float, sent: int, in_flight: int,
             cpu_s_total: float, loops_total: int) -> None:
        """Close every second that ended by ``now`` (schedule time ends at ``end_s``); the
        CPU and loop increase all go to the first of them."""
        start, first = time.start, self.open
        for second in range(first, int(now - start)):
            # Due before the second's end (schedule time; a request due on the boundary is
            # the next second's, where it is sent).
            before = math.nextafter(second + 1 - time.paused_total, -math.inf)
            self.intend(min(time.at(now), before, end_s), sent)
            end = start + second + 1
            self.recorder.on_health(self.health.window(end - 1, end, now,
                                                       read=second == first))
            self.recorder.roll(second + 1, in_flight=in_flight, cpu_s_total=cpu_s_total,
                               loops_total=loops_total)
            self.open = second + 1

    def finish(self, now: float, time: ScheduleTime, end_s: float, sent: int, in_flight: int,
               cpu_s_total: float, loops_total: int) -> None:
        """Close the open window at the end of the run."""
        self.intend(min(time.at(now), end_s), sent)
        opened = time.start + self.open
        self.recorder.on_health(self.health.window(opened, max(now, opened), now))
        self.recorder.finish(in_flight=in_flight, cpu_s_total=cpu_s_total,
                             loops_total=loops_total)
