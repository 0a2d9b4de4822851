"""``--fail-if``: a comparison fails when a metric changed significantly past a limit.

An expression is ``METRIC[SCOPE] OP CHANGE UNIT``: METRIC and SCOPE as a threshold's
(``analysis/thresholds.py``; ``rate`` is the achieved rate and ``dropped_rate`` the share
of due requests dropped), OP ``<``, ``<=``, ``>``, ``>=``, CHANGE a signed number and UNIT
``%`` (relative to the base value), ``pp`` (percentage points: rates and shares) or ``us``,
``ms``, ``s`` (latencies). ``p99>+10%``, ``error_rate>+0.5pp``, ``rate<-2%``,
``p99[tag=api]>+20ms``. A condition counts only when the comparison's verdict for the
metric is significant (``better``, ``worse`` or ``changed``): noise never fails a run.
``cluster/threshold_syntax.py`` parses the expressions.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rafale.analysis.verdict.compare import SIGNIFICANT

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
RELATIVE = "relative"  # a fraction of the base value
ABSOLUTE = "absolute"  # in the metric's unit (µs, or a fraction for rates and shares)


@dataclass(frozen=True)
class FailIf:
    """One parsed condition: ``row`` is the comparison's metric name it reads."""

    expression: str
    row: str
    op: str
    limit: float
    kind: str = RELATIVE

    def __str__(self) -> str:
        return self.expression

    def change(self, row: pd.Series) -> float:
        """The metric's change as this condition measures it."""
        if self.kind == ABSOLUTE:
            return float(row["difference"])
        return float(row["difference"]) / float(row["base"]) if row["base"] else float("nan")

    def shown(self, change: float) -> str:
        """The change as the expression writes it: %, pp or ms."""
        if change != change:  # NaN
            return "-"
        if self.kind == RELATIVE:
            return f"{change:+.1%}"
        if "." in self.row.partition("[")[0]:
            return f"{change / 1000:+.2f}ms"
        return f"{change * 100:+.2f}pp"

    def check(self, table: pd.DataFrame) -> list[dict[str, Any]]:
        """One result per candidate block of ``table`` (the output of ``compare``)."""
        rows = table[table["metric"] == self.row]
        results = []
        for _, row in rows.iterrows():
            change = self.change(row)
            significant = row["verdict"] in SIGNIFICANT
            results.append({
                "fail_if": self.expression, "metric": self.row,
                "candidate": row.get("candidate", ""), "change": change,
                "shown": self.shown(change),
                "verdict": row["verdict"],
                "failed": bool(significant and _OPS[self.op](change, self.limit)),
            })
        if not results:
            results.append({"fail_if": self.expression, "metric": self.row, "candidate": "",
                            "change": float("nan"), "shown": "-",
                            "verdict": "not in the comparison",
                            "failed": False})
        return results


def check_all(conditions: Sequence[FailIf], table: pd.DataFrame) -> list[dict[str, Any]]:
    """Every condition's results (see :meth:`FailIf.check`)."""
    return [result for condition in conditions for result in condition.check(table)]
