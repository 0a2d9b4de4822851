"""A run's result: its windows and counts as DataFrames, meta and summary (and, for a run
measured in this process, the window log that answers the per-second frame)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

    from rafale.analysis.log import WindowLog


@dataclass(frozen=True)
class Result:
    """One run: per actor × second windows, long-form counts, meta and summary."""

    windows: pd.DataFrame
    counts: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    log: WindowLog | None = field(default=None, compare=False, repr=False)
    outcomes: pa.Table | None = field(default=None, compare=False, repr=False)

    def outcome_frame(self) -> pd.DataFrame:
        """One row per feed row of a feed sent once: outcome, status, error, latency...
        (from the run in memory, else from the result directory's outcomes.parquet)."""
        if self.outcomes is not None:
            return self.outcomes.to_pandas()
        if self.path is None:
            raise ValueError("this result has no outcomes: only runs that send a feed once "
                             "(feed_mode 'once') record them")
        from rafale.analysis.store import load_outcomes

        return load_outcomes(self.path)

    def __repr__(self) -> str:
        run_id = self.summary.get("run_id") or self.meta.get("run_id") or "?"
        return (
            f"Result(run_id={run_id!r}, windows={len(self.windows)}, "
            f"counts={len(self.counts)}, path={str(self.path) if self.path else None!r})"
        )
