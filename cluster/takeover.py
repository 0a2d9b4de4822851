"""Loss and takeover as plain functions: who is lost, from which request the survivors
take over, and what the lost actor left behind (the gap, the rows to resend).

No Ray here: the driver (cluster/run.py) gathers the facts (answers, times, the schedule)
and carries out what these functions decide, so they are tested in milliseconds.

Stripes over time: epoch e starts at request ``start`` and gives request k (start <= k <
next start) to ``members[k % len(members)]`` — what every actor's pacer does
(actors/pacing.py), so the driver can tell whose requests a lost actor left behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rafale.actors.pacing import Schedule

__all__ = ["Silent", "StripeLog", "boundary", "gap", "shares", "silent_losses", "unknown_rows"]

RESTRIPE_AHEAD_S = 0.5       # new stripes take effect at the row due this far ahead


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


# ----- who is lost --------------------------------------------------------------------------


@dataclass(frozen=True)
class Silent:
    """A live actor the driver has not heard from for ``quiet_s`` seconds."""

    index: int
    node_id: str
    quiet_s: float


def silent_losses(silent: Iterable[Silent], lease_s: float, alive_nodes: set[str] | None
                  ) -> list[tuple[int, tuple[str, str]]]:
    """The silent actors that are lost, as (index, (how detected, reason)): those whose
    node Ray reports dead (``alive_nodes``, None when Ray cannot tell), and those silent
    for ``lease_s`` (by then they have stopped sending by themselves)."""
    lost: list[tuple[int, tuple[str, str]]] = []
    for actor in silent:
        if alive_nodes is not None and actor.node_id not in alive_nodes:
            lost.append((actor.index, ("node", "node removed (Ray reports its node dead)")))
        elif actor.quiet_s >= lease_s:
            lost.append((actor.index, ("lease", f"lease expired: no answer for "
                                                f"{actor.quiet_s:.1f} s (lease_s {lease_s:g})")))
    return lost


# ----- from where the survivors take over, and the gap ----------------------------------


def boundary(schedule: Schedule, sched_now_s: float) -> int:
    """The common request from which new stripes hold: the one due RESTRIPE_AHEAD_S from
    now, which no actor has reached, so that no request or row is sent twice."""
    return schedule.count_due(sched_now_s + RESTRIPE_AHEAD_S)


def gap(schedule: Schedule | None, stripes: StripeLog, actor: int, last_second: int,
        paused_s: float, sched_now_s: float, at: int | None, mode: str, live: int
        ) -> tuple[dict[str, Any], list[list[tuple[int, int, int]]]]:
    """The requests of ``actor``'s stripe due since its last drained second and before
    the boundary ``at`` (its windows for them never arrived), and how the ``live``
    survivors share them: sent late (catch-up) or not (skip, or the schedule is over).
    Returns the gap as meta.json records it, and each survivor's share (empty unless
    caught up). With a feed sent once these are slots: the survivors send their next rows
    in them (the lost actor's rows are unknown, or resent with resend_unknown)."""
    if at is None or schedule is None:
        return {"mode": "none (closed model)", "requests": 0}, [[] for _ in range(live)]
    from_s = max(0.0, last_second + 1 - paused_s)
    spans = stripes.held(actor, schedule.count_due(from_s), at)
    total = sum(len(r) for r in spans)
    if mode == "catch-up" and sched_now_s >= schedule.duration_s:
        mode = "skip (the schedule had ended)"  # the survivors are done sending
    dealt = shares(spans, live) if mode == "catch-up" and total else [[] for _ in range(live)]
    to_s = schedule.time_of(at) if at < schedule.total() else schedule.duration_s
    return ({"mode": mode, "requests": total, "from_s": round(from_s, 3),
             "to_s": round(to_s, 3)}, dealt)


def unknown_rows(owner: np.ndarray, lost: list[int], reported: np.ndarray) -> np.ndarray:
    """The feed rows (below ``len(owner)``) that lost actors owned and never reported:
    resent by the survivors with resend_unknown (at-least-once)."""
    upto = len(owner)
    return np.flatnonzero(np.isin(owner, np.asarray(lost)) & ~reported[:upto])
