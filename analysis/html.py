"""One self-contained HTML report of a result (or of a matrix of results): report.html.

Everything is inline — CSS, and every chart as a base64 PNG — so the file can be mailed or
attached to a CI job and opened anywhere without a network fetch. A run's report holds the
summary, the thresholds with pass/fail, throughput and errors over time, latency (corrected
and raw), send lag, per-address and per-version shares, the per-tag table, the run's spec
(as saved: redacted) and the cluster's shape; a matrix's holds its comparison charts and
table. Reads saved results only (no ray, no pycurl).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from rafale.analysis import compare, frames, plots, store
from rafale.analysis.report import is_matrix_dir, summary_text
from rafale.analysis.result import Result

__all__ = ["REPORT_FILE", "matrix_html", "run_html", "send_lag", "write_html"]

REPORT_FILE = "report.html"
_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1d2733; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #d0d7de; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 12px;
      white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; }
th { background: #f6f8fa; } tr.pass td.verdict { color: #1a7f37; font-weight: bold; }
tr.fail td.verdict { color: #cf222e; font-weight: bold; }
img { max-width: 100%; display: block; margin: .5em 0 1.5em; }
"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=plots.DPI)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(str(fig.texts[0].get_text()) if fig.texts else "chart")}" ' \
           f'src="data:image/png;base64,{encoded}">'


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None,
           classes: Sequence[str] | None = None) -> str:
    head = ("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
            if header else "")
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if classes else ""
        cells = "".join(
            f'<td class="verdict">{html.escape(str(v))}</td>' if classes and j == 0
            else f"<td>{html.escape(str(v))}</td>" for j, v in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def send_lag(result: Result) -> Figure:
    """Send lag (actual minus intended send time) p50/p99 per second, ms."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    ax.set_title(f"Send lag per second — {plots.run_title(result)}")
    ps = frames.per_second(result, pcts=(50.0, 99.0))
    plots.shade_stalled(ax, ps)
    plotted = False
    for label, color in (("p50", "tab:blue"), ("p99", "tab:red")):
        column = f"{label}_send_lag_us"
        if column in ps and np.isfinite(ps[column].to_numpy(dtype="float64")).any():
            ax.plot(ps["second"], ps[column] / 1000.0, color=color, label=label)
            plotted = True
    if plotted:
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no send lag recorded (closed model)", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("run time (s)")
    ax.set_ylabel("send lag (ms)")
    ax.grid(alpha=0.3)
    return fig


def _threshold_rows(results: Sequence[Mapping[str, Any]]) -> str:
    if not results:
        return "<p>No thresholds were set (<code>--threshold</code>).</p>"
    rows, classes = [], []
    for r in results:
        value = r.get("value")
        shown = "no samples" if value is None else (
            f"{value / 1000.0:,.3f} ms" if "." in str(r.get("metric")) else
            f"{value:,.0f}" if r.get("metric") == "dropped" else f"{value:.3%}")
        windows = (f"{r['failed_windows']} failing of {r['window_s']} s windows"
                   if r.get("window_s") else "whole run")
        rows.append(["pass" if r["passed"] else "FAIL", r["threshold"], shown, windows])
        classes.append("pass" if r["passed"] else "fail")
    return _table(rows, ["verdict", "threshold", "value", "over"], classes)


def _shares(counts: Mapping[str, Any]) -> str:
    total = sum(counts.values()) or 1
    return _table([[k, f"{v:,}", f"{v / total:.1%}"] for k, v in counts.items()],
                  ["key", "completed", "share"])


def run_html(result: Result) -> str:
    """The report of one run."""
    s, meta = result.summary, result.meta
    title = f"rafale run {plots.run_title(result)}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             "<h2>Summary</h2>", f"<pre>{html.escape(summary_text(result))}</pre>",
             "<h2>Thresholds</h2>", _threshold_rows(s.get("thresholds") or []),
             "<h2>Throughput and errors</h2>", _png(plots.throughput(result)),
             "<h2>Latency: from the intended send time (corrected) and from the send</h2>",
             _png(plots.latency(result)),
             "<h2>Send lag</h2>", _png(send_lag(result)),
             "<h2>Connections: opened per second, connect time and time to first byte</h2>",
             _png(plots.connections(result)),
             "<h2>Per address</h2>", _png(plots.address_share(result)),
             _shares(s.get("address") or {}),
             "<h2>Per HTTP version</h2>", _shares(s.get("version") or {})]
    tags = frames.per_tag(result)
    if not tags.empty:
        parts += ["<h2>Per tag</h2>", _png(plots.tags(result)),
                  _table(tags.round(3).values.tolist(), list(tags.columns))]
    cluster = meta.get("cluster") or {}
    parts += ["<h2>Cluster</h2>", _table([[k, v] for k, v in cluster.items()
                                         if not isinstance(v, list | dict)], ["", ""])]
    spec = meta.get("spec") or {}
    parts += ["<h2>Spec (as saved: secrets redacted)</h2>",
              _table([[k, v] for k, v in spec.items()], ["option", "value"])]
    return _page(title, parts)


def matrix_html(results: Sequence[Result]) -> str:
    """The report of a matrix: comparison charts and table."""
    table = compare.compare(results)
    parts = ["<h1>rafale comparison</h1>",
             _png(plots.comparison(table)), _png(plots.scaling(table)),
             _table(table.round(3).values.tolist(), list(table.columns))]
    return _page("rafale comparison", parts)


def _page(title: str, parts: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write_html(directory: str | os.PathLike[str]) -> Path:
    """Write DIR/report.html for a result or a matrix directory; return its path."""
    path = Path(directory)
    text = (matrix_html(compare.load_all(path)) if is_matrix_dir(path)
            else run_html(store.load(path)))
    target = path / REPORT_FILE
    target.write_text(text, encoding="utf-8")
    return target
