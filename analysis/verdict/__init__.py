"""Compare runs and say what changed: a bootstrap interval over the runs' seconds and a
verdict per metric (``rafale.compare``, ``rafale compare``)."""

from __future__ import annotations

from rafale.analysis.verdict.compare import (
    BETTER,
    CHANGED,
    NO_CHANGE,
    NOT_COMPARABLE,
    SIGNIFICANT,
    VERDICTS,
    WORSE,
    Options,
    compare,
    compare_series,
    compare_sides,
    side_series,
)

__all__ = ["BETTER", "CHANGED", "NOT_COMPARABLE", "NO_CHANGE", "SIGNIFICANT", "VERDICTS",
           "WORSE", "Options", "compare", "compare_series", "compare_sides", "side_series"]
