"""The outcome of every row of a feed sent once: appended as senders report rows, then
completed with the rows nobody reported (``unsent``, or ``unknown`` after a lost actor).

Columns are those of ``OUTCOMES_SCHEMA`` (actors/contract.py). No ray, no pycurl.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rafale.actors.contract import OUTCOME_FIELDS, OUTCOME_KINDS, OUTCOMES_SCHEMA

__all__ = ["OutcomeLog", "outcome_counts"]


def _outcomes(status: np.ndarray, error: pa.Array) -> pa.Array:
    """ok (status < 400), failed (an error or status >= 400), unknown (neither)."""
    no_error = np.asarray(pc.equal(error, "").to_numpy(zero_copy_only=False), dtype=bool)
    ok = no_error & (status > 0) & (status < 400)
    unknown = no_error & (status == 0)
    labels = np.where(ok, "ok", np.where(unknown, "unknown", "failed"))
    return pa.array(labels, pa.string())


def outcome_counts(table: pa.Table) -> dict[str, int]:
    """Rows per outcome, every kind present (0 when none)."""
    counts = dict.fromkeys(OUTCOME_KINDS, 0)
    if table.num_rows:
        for item in pc.value_counts(table.column("outcome")).to_pylist():
            counts[str(item["values"])] = int(item["counts"])
    return counts


class OutcomeLog:
    """Rows reported by the senders, as Arrow tables in ``OUTCOMES_SCHEMA``."""

    def __init__(self) -> None:
        self._tables: list[pa.Table] = []
        self._saved = 0
        self.rows = 0

    def __repr__(self) -> str:
        return f"OutcomeLog({self.rows} rows)"

    def __len__(self) -> int:
        return self.rows

    def append(self, columns: Mapping[str, Sequence[Any]],
               tags: pa.Array | Sequence[str]) -> None:
        """One sender's drained rows (``OUTCOME_FIELDS`` columns) with their tags."""
        if not columns or not len(columns["row"]):
            return
        status = np.asarray(columns["status"], dtype=np.int64)
        error = pa.array(columns["error"], pa.string())
        arrays = {name: pa.array(columns[name], OUTCOMES_SCHEMA.field(name).type)
                  for name in OUTCOME_FIELDS}
        arrays["error"] = error
        arrays["tag"] = pa.array(tags, pa.string())
        arrays["outcome"] = _outcomes(status, error)
        table = pa.Table.from_arrays([arrays[f.name] for f in OUTCOMES_SCHEMA],
                                     schema=OUTCOMES_SCHEMA)
        self._tables.append(table)
        self.rows += table.num_rows

    def table(self) -> pa.Table:
        """Every row reported so far (in the order reported)."""
        if not self._tables:
            return OUTCOMES_SCHEMA.empty_table()
        return pa.concat_tables(self._tables)

    def take_unsaved(self) -> pa.Table:
        """Rows reported since the last call (for an append-only checkpoint)."""
        fresh = self._tables[self._saved:]
        self._saved = len(self._tables)
        return pa.concat_tables(fresh) if fresh else OUTCOMES_SCHEMA.empty_table()

    def complete(self, all_rows: np.ndarray, tags: pa.Array | Sequence[str],
                 lost: np.ndarray) -> pa.Table:
        """Every row of ``all_rows``, sorted: those nobody reported are ``unknown`` where
        ``lost`` (a lost actor held them: it may have sent them), else ``unsent``."""
        reported = self.table()
        seen = np.isin(all_rows, reported.column("row").to_numpy())
        missing = np.flatnonzero(~seen)
        count = missing.size
        rest = pa.Table.from_arrays([
            pa.array(all_rows[missing], pa.int64()),
            pa.array(tags, pa.string()).take(pa.array(missing, pa.int64())),
            pa.array(np.where(lost[missing], "unknown", "unsent"), pa.string()),
            pa.array(np.zeros(count, np.int64)), pa.array([""] * count, pa.string()),
            pa.array(np.full(count, -1, np.int64)), pa.array(np.zeros(count, np.int64)),
            pa.array([""] * count, pa.string()), pa.array(np.full(count, -1, np.int64)),
            pa.array(np.full(count, -1, np.int64)),
        ], schema=OUTCOMES_SCHEMA)
        return pa.concat_tables([reported, rest]).sort_by("row")
