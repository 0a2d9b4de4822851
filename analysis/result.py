"""A run's result: its windows and counts as DataFrames, meta and summary (and, for a run
measured in this process, the window log that answers the per-second frame)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
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

    def __repr__(self) -> str:
        run_id = self.summary.get("run_id") or self.meta.get("run_id") or "?"
        return (
            f"Result(run_id={run_id!r}, windows={len(self.windows)}, "
            f"counts={len(self.counts)}, path={str(self.path) if self.path else None!r})"
        )
