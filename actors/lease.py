"""An engine's lease: the driver renews it with every drain; once it runs out the engine
sends nothing more (it is fenced), as the driver has given its stripe to the others.

Monotonic seconds throughout; no lease (``lease_s`` None) never runs out.
"""

from __future__ import annotations

import math

from rafale.actors.answers import Fence


class Lease:
    """Until when an engine may send, and why it stopped if it ran out."""

    def __init__(self, lease_s: float | None) -> None:
        self.lease_s = lease_s
        self.until = math.inf  # set when the loop starts
        self.fenced: Fence | None = None

    def __repr__(self) -> str:
        return f"Lease(lease_s={self.lease_s}, until={self.until}, fenced={self.fenced})"

    def begin(self, now: float) -> None:
        """The loop starts: the lease runs from now."""
        if self.lease_s is not None:
            self.until = now + self.lease_s

    def renew(self, now: float) -> None:
        """The driver heard from the engine. A lease that has run out is not renewed: the
        driver has given the stripe away by then (the loop fences at its next turn, even
        if it was frozen past the lease and this call came first)."""
        if self.lease_s is not None and self.fenced is None and now < self.until:
            self.until = now + self.lease_s

    def ran_out(self, now: float, start: float) -> Fence | None:
        """The fence record once the lease has run out (``at_s``: run seconds from
        ``start``), None before."""
        if now < self.until:
            return None
        return {"at_s": round(self.until - start, 3),
                "why": f"not drained for {self.lease_s:g} s (lease_s): stopped sending, "
                       "as the driver gives the stripe to the other actors"}

    def fence(self, now: float, start: float) -> None:
        """Record the fence; the lease is over (nothing more to check)."""
        self.fenced = self.ran_out(now, start)
        self.until = math.inf

    def end(self) -> None:
        """The engine ended: nothing left to fence."""
        self.until = math.inf
