"""Stripes over time: which actor owns each request of the global schedule (and each row
of a feed sent once), as the driver restripes after losses.

Epoch e starts at request ``start`` and gives request k (start <= k < next start) to
``members[k % len(members)]`` — what every actor's pacer does (actors/pacing.py), so the
driver can tell whose requests a lost actor left behind, and hand them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["StripeLog", "shares"]


@dataclass
class StripeLog:
    """Every epoch of the run: (first request, actor indices by stripe position)."""

    members: list[int]
    epochs: list[tuple[int, list[int]]] = field(init=False)

    def __post_init__(self) -> None:
        self.epochs = [(0, list(self.members))]

    def add(self, start: int, members: list[int]) -> None:
        """From request ``start`` on, these actors share the schedule."""
        self.epochs.append((start, list(members)))

    def _spans(self, end: int) -> list[tuple[int, int, list[int]]]:
        bounds = [start for start, _ in self.epochs[1:]] + [end]
        return [(start, stop, members)
                for (start, members), stop in zip(self.epochs, bounds, strict=True)]

    def owners(self, rows: int) -> np.ndarray:
        """The actor that held each of the first ``rows`` requests (feed rows)."""
        owner = np.full(rows, -1, dtype=np.int32)
        for start, stop, members in self._spans(rows):
            span = np.arange(min(start, rows), min(max(stop, start), rows))
            owner[span] = np.asarray(members, dtype=np.int32)[span % len(members)]
        return owner

    def held(self, actor: int, k_from: int, k_to: int) -> list[range]:
        """The requests in [k_from, k_to) that ``actor``'s stripes held, as ranges."""
        found = []
        for start, stop, members in self._spans(k_to):
            lo, hi = max(start, k_from), min(stop, k_to)
            if lo >= hi or actor not in members:
                continue
            n, position = len(members), members.index(actor)
            found.append(range(lo + (position - lo) % n, hi, n))
        return [r for r in found if len(r)]


def shares(spans: list[range], count: int) -> list[list[tuple[int, int, int]]]:
    """``spans`` dealt to ``count`` actors in turn, as (start, stop, step) triples each."""
    return [[(r.start + i * r.step, r.stop, r.step * count) for r in spans if len(r) > i]
            for i in range(count)]
