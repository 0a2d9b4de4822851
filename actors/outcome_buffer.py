"""The outcome of every feed row a sender finished (``once`` feeds), handed over per second.

The engine loop appends one tuple per finished row (``add``); ``roll`` (once a second, from
the loop) moves them into a queue that ``drain`` empties from any thread, in the order of
``OUTCOME_FIELDS`` of the contract. Rows still open when the engine ends are reported with
outcome ``unknown`` by ``finish``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rafale.actors.contract import OUTCOME_FIELDS

__all__ = ["OutcomeBuffer"]

# What the engine appends: every outcome field but "actor" (added by drain).
_RECORDED = OUTCOME_FIELDS[:-1]


class OutcomeBuffer:
    """Finished rows of one actor: appended by the loop, drained by the driver."""

    __slots__ = ("actor", "_open", "_closed")

    def __init__(self, actor: int) -> None:
        self.actor = actor
        self._open: list[tuple[Any, ...]] = []
        self._closed: deque[list[tuple[Any, ...]]] = deque()

    def __repr__(self) -> str:
        return f"OutcomeBuffer(actor={self.actor}, open={len(self._open)})"

    def add(self, row: int, status: int, error: str, latency_us: int, attempts: int,
            address: str, second: int) -> None:
        self._open.append((row, status, error, latency_us, attempts, address, second))

    def roll(self) -> None:
        """Hand the rows finished so far to ``drain`` (loop thread only)."""
        if self._open:
            self._closed.append(self._open)
            self._open = []

    def drain(self) -> dict[str, list[Any]]:
        """Rows handed over since the last drain, as columns named by the contract."""
        rows: list[tuple[Any, ...]] = []
        while self._closed:
            rows += self._closed.popleft()
        columns: dict[str, list[Any]] = {name: [] for name in OUTCOME_FIELDS}
        if rows:
            for name, values in zip(_RECORDED, zip(*rows, strict=True), strict=True):
                columns[name] = list(values)
            columns["actor"] = [self.actor] * len(rows)
        return columns
