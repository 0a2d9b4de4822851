"""A comparison as text cells: values in their units, changes, intervals, and the sides.

Pure formatting (the CLI draws the table with rich; a notebook may style the frame)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

SIDES_COLUMNS: tuple[str, ...] = ("metric", "base", "cand", "change", "interval", "verdict")


def value(amount: float, unit: str) -> str:
    """A value in its unit: ms for latencies, /s for rates, % for shares."""
    if amount is None or (isinstance(amount, float) and math.isnan(amount)):
        return "-"
    if unit == "us":
        return f"{amount / 1000:,.2f} ms"
    if unit == "per_s":
        return f"{amount:,.1f}/s"
    return f"{amount:.2%}"


def _signed(amount: float, unit: str) -> str:
    if unit == "us":
        return f"{amount / 1000:+,.2f} ms"
    if unit == "per_s":
        return f"{amount:+,.1f}/s"
    return f"{amount * 100:+.2f} pp"


def change(row: Mapping[str, Any]) -> str:
    """The change: relative for latencies and rates (+12.3 %), in points for shares."""
    unit, difference = str(row["unit"]), float(row["difference"])
    if math.isnan(difference):
        return "-"
    if unit == "share" or not row["base"]:
        return _signed(difference, unit)
    return f"{difference / float(row['base']):+.1%}"


def interval(row: Mapping[str, Any]) -> str:
    """The interval of the difference, in the metric's unit."""
    low, high, unit = float(row["ci_low"]), float(row["ci_high"]), str(row["unit"])
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{_signed(low, unit)}, {_signed(high, unit)}]"


def cells(table: pd.DataFrame) -> list[dict[str, str]]:
    """One dict of text cells per row (SIDES_COLUMNS, plus candidate and reason)."""
    out = []
    for row in table.to_dict("records"):
        unit = str(row["unit"])
        verdict = str(row["verdict"])
        if row.get("reason") and verdict != "no significant change":
            verdict += f": {row['reason']}"
        out.append({"candidate": str(row.get("candidate", "")), "metric": str(row["metric"]),
                    "base": value(row["base"], unit), "cand": value(row["cand"], unit),
                    "change": change(row), "interval": interval(row), "verdict": verdict})
    return out


def notes(attrs: Mapping[str, Any]) -> list[str]:
    """What the reader must know: the sides, what the interval covers, the seed, the spec
    fields that differ."""
    lines = [f"base: {' '.join(attrs.get('base', []))}"]
    cands = attrs.get("cand", [])
    for cand in cands if cands and isinstance(cands[0], list) else [cands]:
        lines.append(f"cand: {' '.join(cand)}")
    lines.append(f"{attrs.get('interval', '')}; {attrs.get('confidence', 0.95):.0%} interval "
                 f"of {attrs.get('resamples')} resamples, seed {attrs.get('seed')}, minimum "
                 f"effect {attrs.get('min_effect', 0.05):.0%}")
    for name, (base, cand) in (attrs.get("differences") or {}).items():
        lines.append(f"differs: {name}: {base} vs {cand}")
    return lines
