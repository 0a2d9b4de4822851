"""Warm senders: the actors of one run kept alive for the next run of a series.

Placing a sender starts a Ray worker process (Python, Ray and the actor module imported:
1-3 s on a busy two-core machine, measured in the closing note of the change that added
this), and a series (a matrix, ``--repeat``, the demo's cells) places one run after another
on the same nodes. A :class:`WarmSenders` holds the senders that finished a run cleanly;
the next run of the series takes one per planned CPU of the same node and resets it (a new
engine in the same worker, ``SenderActor.reset``) instead of starting a new worker.

Idle senders hold their CPU, so a pool lives only as long as its series (a ``with``
block): closing it kills them. Outside a series nothing is kept, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

__all__ = ["WarmSenders"]


class WarmSenders:
    """Idle senders by node id, for the next run of a series; killed by :meth:`close`."""

    def __init__(self) -> None:
        self._idle: dict[str, list[Any]] = {}  # node id -> idle actor handles
        self.reused = 0  # senders taken again (for tests and the closing summary)

    def __repr__(self) -> str:
        return f"WarmSenders({self.idle()} idle, {self.reused} reused)"

    def idle(self) -> int:
        return sum(len(handles) for handles in self._idle.values())

    def take(self, node_id: str) -> Any | None:
        """An idle sender on ``node_id`` (now the caller's), or None."""
        handles = self._idle.get(node_id)
        if not handles:
            return None
        self.reused += 1
        return handles.pop()

    def give(self, handles: Sequence[Any], node_ids: Sequence[str]) -> None:
        """Senders that finished their run cleanly, each on its node, for the next run."""
        for handle, node_id in zip(handles, node_ids, strict=True):
            self._idle.setdefault(node_id, []).append(handle)

    def close(self) -> None:
        """Kill every idle sender (their CPUs freed)."""
        from rafale.cluster.placement import kill_all

        handles = [h for group in self._idle.values() for h in group]
        self._idle.clear()
        if handles:
            with contextlib.suppress(Exception):  # Ray already shut down: nothing to free
                kill_all(handles)

    def __enter__(self) -> WarmSenders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
