"""A matrix's baseline: every cell compared against the first (``rafale matrix``, ``make
demo``), with compare's verdict for the achieved rate, p50, p99 and the error rate.

Cells differ on purpose (protocol, DNS mode, actors, even the origin: h2c needs http://),
so runs of different origins are compared; a metric whose spec field differs (another
rate) stays ``not comparable``, as :func:`rafale.analysis.verdict.compare` decides.
Written into the matrix directory as baseline.md (for a reader) and baseline.csv (every
number, one row per cell × metric).
"""

from __future__ import annotations

import os
import secrets
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rafale.analysis.verdict.compare import (
    COLUMNS,
    NO_CHANGE,
    NOT_COMPARABLE,
    Options,
    Side,
    compare_series,
    side_series,
)
from rafale.analysis.verdict.series import Series
from rafale.analysis.verdict.text import SIDES_COLUMNS, cells, change

# The metrics compared (compare's row names) and their column headers.
METRICS: dict[str, str] = {"rate": "rate", "latency.p50": "p50", "latency.p99": "p99",
                           "error_rate": "errors"}
BASELINE_MD = "baseline.md"
BASELINE_CSV = "baseline.csv"
WIDTH = 100  # the text lines' width
_WORDS = {NO_CHANGE: "noise"}  # the table's short word for a verdict
_GAP = "  "


def _label(cell: Side, side: Series) -> str:
    """A cell's name: its run's label (a matrix gives each cell one), else the name of the
    directory given, else the run's."""
    meta = side.metas[0] if side.metas else {}
    given = Path(cell).name if isinstance(cell, str | os.PathLike) else ""
    return str(meta.get("label") or given or side.labels[0])


def against_first(results: Sequence[Side], labels: Sequence[str] | None = None, *,
                  min_effect: float = 0.05, resamples: int = 1000, seed: int | None = None
                  ) -> pd.DataFrame:
    """Every cell after the first against the first: one row per cell and metric of
    :data:`METRICS`, ``cell`` then compare's :data:`COLUMNS`. A cell is a result directory,
    a Result, or several runs (a list, or a ``--repeat`` directory). One seed for every
    cell, drawn when not given; ``attrs`` hold the base cell, the seed, the resamples,
    the confidence, the minimum effect and what the intervals cover."""
    sides = [side_series(r) for r in results]
    names = (list(labels) if labels is not None
             else [_label(r, s) for r, s in zip(results, sides, strict=True)])
    if len(names) != len(sides) or not sides:
        raise ValueError(f"{len(sides)} cells and {len(names)} labels: give one label a "
                         "cell, and at least one cell")
    options = Options(min_effect, resamples=resamples, allow_different=True,
                      seed=seed if seed is not None else secrets.randbits(63))
    frames, intervals = [], []
    for name, side in zip(names[1:], sides[1:], strict=True):
        compared = compare_series(sides[0], side, options)
        intervals.append(compared.attrs["interval"])
        frame = compared[compared["metric"].isin(list(METRICS))].copy()
        frame.insert(0, "cell", name)
        frames.append(frame)
    table = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=["cell", *COLUMNS]))
    table.attrs = {"base": names[0], "seed": options.seed, "resamples": resamples,
                   "confidence": options.confidence, "min_effect": min_effect,
                   "interval": list(dict.fromkeys(intervals))}
    return table


def _cell_text(row: Mapping[str, Any]) -> str:
    verdict = str(row["verdict"])
    if verdict == NOT_COMPARABLE:
        return verdict
    return f"{change(row)} {_WORDS.get(verdict, verdict)}"


def _notes(table: pd.DataFrame) -> list[str]:
    attrs = table.attrs
    notes = [f"noise: no significant change (the {attrs.get('confidence', 0.95):.0%} "
             "interval of the difference holds 0, or the change is under the minimum effect "
             f"of {attrs.get('min_effect', 0.05):.0%}); {attrs.get('resamples')} resamples, "
             f"seed {attrs.get('seed')}; {'; '.join(attrs.get('interval') or [])}"]
    blocked = table[table["verdict"] == NOT_COMPARABLE]
    for (cell, reason), rows in blocked.groupby(["cell", "reason"], sort=False):
        shown = ", ".join(METRICS[m] for m in rows["metric"])
        notes.append(f"not comparable: {cell} {shown}: {reason}")
    return notes


def baseline_lines(table: pd.DataFrame, width: int = WIDTH) -> list[str]:
    """The baseline as text: a line per cell (each metric's change and verdict, ``noise``
    for no significant change), then the notes, every line at most ``width`` long."""
    base = table.attrs.get("base", "the first cell")
    lines = textwrap.wrap(f"baseline: every cell against the first, {base}", width,
                          subsequent_indent="  ")
    if table.empty:
        return [*lines, "  (one cell: nothing to compare against)"]
    records = table.to_dict("records")
    order = list(dict.fromkeys(str(r["cell"]) for r in records))
    texts = {(str(r["cell"]), str(r["metric"])): _cell_text(r) for r in records}
    header = ["cell", *METRICS.values()]
    rows = [[cell, *(texts.get((cell, m), "-") for m in METRICS)] for cell in order]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    widths[0] = max(8, min(widths[0], width - sum(widths[1:]) - len(_GAP) * len(METRICS)))
    for cells_ in [header, *rows]:
        first = cells_[0] if len(cells_[0]) <= widths[0] else cells_[0][: widths[0] - 1] + "…"
        lines.append(_GAP.join([first.ljust(widths[0]), *(c.ljust(w) for c, w in
                                zip(cells_[1:], widths[1:], strict=True))]).rstrip())
    for note in _notes(table):
        lines += textwrap.wrap(note, width, subsequent_indent="  ")
    return lines


def baseline_text(table: pd.DataFrame, width: int = WIDTH) -> str:
    """:func:`baseline_lines` joined, ending with a newline."""
    return "\n".join(baseline_lines(table, width)) + "\n"


def write_baseline(directory: str | os.PathLike[str], table: pd.DataFrame) -> list[Path]:
    """Write baseline.md (the text, then every row with its interval and the reason of a
    verdict) and baseline.csv (``base_cell`` then the table's columns) into ``directory``."""
    from rafale.analysis.compare import to_markdown

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    shown = pd.DataFrame([{"cell": row["candidate"], **{c: row[c] for c in SIDES_COLUMNS}}
                          for row in cells(table.rename(columns={"cell": "candidate"}))],
                         columns=["cell", *SIDES_COLUMNS])
    md = path / BASELINE_MD
    md.write_text(f"# rafale baseline\n\n```\n{baseline_text(table)}```\n\n"
                  + to_markdown(shown), encoding="utf-8")
    csv = path / BASELINE_CSV
    rows = table.copy()
    rows.insert(0, "base_cell", table.attrs.get("base", ""))
    rows.to_csv(csv, index=False)
    return [md, csv]
