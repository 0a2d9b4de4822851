"""Compare runs: one row per run, a markdown table, comparison and scaling charts."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from rafale.analysis import frames, plots, store
from rafale.analysis.result import Result

COMPARISON_MD = "comparison.md"
COMPARISON_CSV = "comparison.csv"
COMPARISON_PNG = "comparison.png"
SCALING_PNG = "scaling.png"
SORT_COLUMNS = ("http", "dns", "actors", "run_id")


def compare(results: Iterable[Result]) -> pd.DataFrame:
    """One `frames.run_row` per result, sorted by http, dns, actors, run_id."""
    rows = [frames.run_row(r) for r in results]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    keys = [c for c in SORT_COLUMNS if c in frame]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-style markdown table (numbers right-aligned); no tabulate needed."""
    if df.empty:
        return "_no runs_\n"
    columns = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) for c in df.columns]
    body = [[_cell(v.item() if hasattr(v, "item") else v) for v in row]
            for row in df.itertuples(index=False, name=None)]
    widths = [max(len(c), 3, *(len(r[i]) for r in body)) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1))
        for w, num in zip(widths, numeric, strict=True)
    ) + "|"
    return "\n".join([line(columns), rule, *(line(r) for r in body)]) + "\n"


# The columns a terminal shows (the full table stays in comparison.md and .csv).
TERMINAL_COLUMNS = {"label": "run", "achieved_per_s": "req/s", "held_per_s": "held/s",
                    "p50_corrected_us": "p50 ms",
                    "p99_corrected_us": "p99 ms", "error_share": "errors",
                    "late_share": "late", "addresses_used": "addrs",
                    "stalled_seconds": "stalled s"}


def to_terminal(df: pd.DataFrame, width: int = 120) -> str:
    """The key columns as a plain table that fits ``width`` columns (run labels cut)."""
    if df.empty:
        return "no runs\n"
    # "held/s" (the rate after the ramp) only when some run ramped up to a rate.
    shown = [c for c in TERMINAL_COLUMNS if c != "held_per_s"
             or ("held_per_s" in df and df["held_per_s"].notna().any())]
    rows = []
    for record in df.to_dict("records"):
        row = []
        for column in shown:
            value = record.get(column)
            if column.endswith("_us"):
                row.append("-" if value is None or pd.isna(value) else f"{value / 1000:,.2f}")
            elif column.endswith("_share"):
                row.append(f"{float(value or 0):.1%}")
            elif column in ("achieved_per_s", "held_per_s"):
                row.append("-" if value is None or pd.isna(value) else f"{float(value):,.0f}")
            else:
                row.append(str(value))
        rows.append(row)
    header = [TERMINAL_COLUMNS[c] for c in shown]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    room = width - sum(widths[1:]) - 2 * (len(widths) - 1)
    widths[0] = max(8, min(widths[0], room))
    lines = []
    for cells in [header, *rows]:
        first = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "…"
        lines.append("  ".join([first.ljust(widths[0]),
                                *(c.rjust(w) for c, w in zip(cells[1:], widths[1:],
                                                             strict=True))]))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_comparison(
    directory: str | os.PathLike[str], results: Iterable[Result]
) -> list[Path]:
    """Write comparison.md, comparison.csv, comparison.png, and scaling.png when the runs
    have more than one actor count; return the paths."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    df = compare(results)
    md = path / COMPARISON_MD
    md.write_text("# rafale comparison\n\n" + to_markdown(df), encoding="utf-8")
    csv = path / COMPARISON_CSV
    df.to_csv(csv, index=False)
    written = [md, csv]
    written.append(plots.save_png(plots.comparison(df), path / COMPARISON_PNG))
    if "actors" in df and df["actors"].nunique() > 1:
        written.append(plots.save_png(plots.scaling(df), path / SCALING_PNG))
    else:
        (path / SCALING_PNG).unlink(missing_ok=True)
    return written


def result_dirs(directory: str | os.PathLike[str]) -> list[Path]:
    """Subdirectories (any depth, sorted) holding a meta.json: the runs of a matrix."""
    root = Path(directory)
    return sorted(p.parent for p in root.rglob(store.META_FILE) if p.parent != root)


def load_all(directory: str | os.PathLike[str]) -> list[Result]:
    """Load every result subdirectory of a matrix output directory."""
    return [store.load(p) for p in result_dirs(directory)]
