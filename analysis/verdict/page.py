"""``rafale compare --html``: one self-contained compare.html (inline CSS and charts, as
``report --html`` writes): the verdicts, what the interval covers, the sides' charts."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rafale.analysis.html import _CSS, _png, _table
from rafale.analysis.verdict.charts import over_time, spectrum
from rafale.analysis.verdict.series import Series
from rafale.analysis.verdict.text import cells, notes

COMPARE_FILE = "compare.html"
_CLASSES = {"worse": "fail", "better": "pass", "changed": "pass"}


def compare_html(table: pd.DataFrame, base: Series, candidates: Sequence[Series],
                 fail_ifs: Sequence[Mapping[str, Any]] = ()) -> str:
    """The page's text."""
    rows = cells(table)
    several = any(r["candidate"] for r in rows)
    header = ["verdict", *(["candidate"] if several else []), "metric", "base", "cand",
              "change", "interval of the difference"]
    body = [[r["verdict"], *([r["candidate"]] if several else []), r["metric"], r["base"],
             r["cand"], r["change"], r["interval"]] for r in rows]
    classes = [_CLASSES.get(r["verdict"].split(":")[0], "") for r in rows]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>rafale comparison</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>rafale comparison</h1>",
             "<pre>" + html.escape("\n".join(notes(table.attrs))) + "</pre>"]
    if fail_ifs:
        parts.append("<h2>--fail-if</h2>")
        parts.append(_table([["FAIL" if f["failed"] else "pass", f["fail_if"],
                              f["candidate"], f["verdict"], f["shown"]] for f in fail_ifs],
                            ["verdict", "condition", "candidate", "metric's verdict",
                             "change"], ["fail" if f["failed"] else "pass" for f in fail_ifs]))
    parts += ["<h2>Metrics</h2>", _table(body, header, classes),
              "<h2>Over time</h2>", _png(over_time(base, candidates)),
              "<h2>Latency distribution</h2>", _png(spectrum(base, candidates)),
              "</body></html>"]
    return "\n".join(parts) + "\n"


def write_compare_html(path: str | os.PathLike[str], table: pd.DataFrame, base: Series,
                       candidates: Sequence[Series],
                       fail_ifs: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write :func:`compare_html` to ``path`` (a directory gets compare.html)."""
    target = Path(path)
    if target.is_dir():
        target = target / COMPARE_FILE
    target.write_text(compare_html(table, base, candidates, fail_ifs), encoding="utf-8")
    return target
