"""What holds an engine's sends back: its in-flight cap and its connect budget.

The in-flight cap ramps from ``in_flight_step`` up to ``max_in_flight``, by one step per
event-loop turn. The connect budget (``connect_rate_per_s``, the engine's share of
``--connect-rate``) lets one connection open at the start and then that many a second,
counted as requests in flight: one per HTTP/1.1 connection, ``streams_per_connection`` on
a multiplexed one. A request due while either held sends back is late for that cause (the
budget named first when both bind). Pure logic: the engine's loop thread owns one.
"""

from __future__ import annotations

import math

from rafale.actors.config import EngineConfig

CONNECT, CAP = "connect", "cap"  # what held sends: the connect budget, the in-flight cap


class SendLimits:
    """The in-flight cap, the connect budget, and when each last held a send."""

    def __init__(self, config: EngineConfig) -> None:
        self.max_in_flight, self.step = config.max_in_flight, config.in_flight_step
        self.cap = min(config.in_flight_step, config.max_in_flight)
        self.rate = config.connect_rate_per_s
        self.per_connection = config.requests_per_connection
        self.full_at = {CAP: -math.inf, CONNECT: -math.inf}

    def __repr__(self) -> str:
        return f"SendLimits(cap={self.cap}, rate={self.rate}, full_at={self.full_at})"

    def budget(self, now: float, start: float) -> tuple[float, float]:
        """(requests the connect budget lets be in flight at ``now``, when it next grows);
        (inf, inf) without a budget. ``start``: the run's start instant."""
        if self.rate is None:
            return math.inf, math.inf
        opened = 1 + int(self.rate * max(0.0, now - start))
        return opened * self.per_connection, start + opened / self.rate

    def limit(self, now: float, start: float) -> tuple[float, str, float]:
        """(requests that may be in flight at ``now``, what sets that limit: CONNECT or CAP,
        when the budget next grows)."""
        allowed, grows_at = self.budget(now, start)
        return (allowed, CONNECT, grows_at) if allowed <= self.cap else (self.cap, CAP, grows_at)

    def holding(self, in_flight: int, now: float, start: float) -> tuple[str, float]:
        """(what holds the next send at ``now``: CONNECT, CAP or "", when the budget grows)."""
        limit, by, grows_at = self.limit(now, start)
        return (by if in_flight >= limit else ""), grows_at

    def held(self, what: str, at: float) -> None:
        """Sends were held by ``what`` (CONNECT, CAP; "" does nothing) until ``at``."""
        if what:
            self.full_at[what] = at

    def ramp(self) -> None:
        """One loop turn's step of the in-flight cap."""
        if self.cap < self.max_in_flight:
            self.cap = min(self.cap + self.step, self.max_in_flight)

    def causes(self, intended: float) -> tuple[bool, bool]:
        """(the cap, the budget) held sends at a request's due time."""
        return intended <= self.full_at[CAP], intended <= self.full_at[CONNECT]
