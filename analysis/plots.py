"""Charts of one run or many, as matplotlib Figures (no pyplot, no global state), saved as PNG.

Each function returns a `matplotlib.figure.Figure`; `save_png` writes it atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from rafale.actors.contract import RATES
from rafale.analysis import frames
from rafale.analysis.latency import percentile_label
from rafale.analysis.result import Result

LATENCY_PCTS = (50.0, 90.0, 99.0)
STALLED_LABEL = "sender stalled: these seconds measure rafale, not the target"
STALLED_ALPHA = 0.12
PCT_COLORS = {50.0: "tab:blue", 90.0: "tab:orange", 99.0: "tab:red"}
MAX_ADDRESSES = 12
DPI = 110


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write fig as PNG (tmp file + os.replace) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(tmp_name, format="png", dpi=DPI)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def show(fig: Figure, dpi: int = 80) -> None:
    """In a notebook: display ``fig`` inline as a PNG (these functions return Figures)."""
    import io

    from IPython.display import Image, display  # lazy: only notebooks have IPython

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    display(Image(buffer.getvalue()))


def run_title(result: Result) -> str:
    """'run-1 · HTTP/2 · DNS pinned · 12 actors' from the run's labels."""
    row = frames.run_row(result)
    parts = [str(row["label"] or row["run_id"] or "run")]
    if row["http"]:
        parts.append(_http_label(row["http"]))
    if row["dns"]:
        parts.append(f"DNS {row['dns']}")
    if row["actors"]:
        parts.append(f"{row['actors']} actor{'s' if row['actors'] != 1 else ''}")
    return " · ".join(parts)


def _plain_log_y(ax: Axes) -> None:
    """Log y axis labelled 0.5, 1, 2, 5, 10 … instead of 10^0 notation."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="gray")


# --------------------------------------------------------------------------- one run


def rate_lines(ax: Axes, ps: pd.DataFrame) -> None:
    """Target (intended), sent and completed per second of a per-second frame; the seconds
    marked ``partial`` (the run's end) dotted and shaded, as they are not full-second rates."""
    ax.set_ylabel("requests/s")
    ax.grid(alpha=0.3)
    if ps.empty:
        no_data(ax, "no windows recorded")
        return
    x = ps["second"].to_numpy()
    partial = (ps["partial"].to_numpy(dtype=bool) if "partial" in ps
               else np.zeros(len(ps), dtype=bool))
    whole = np.flatnonzero(~partial)
    end = int(whole[-1]) + 1 if whole.size else 0  # the partial seconds come last
    styles: tuple[tuple[str, dict[str, Any]], ...] = (
        ("intended", {"color": "gray", "lw": 4, "alpha": 0.45, "label": "target (intended)"}),
        ("sent", {"color": "tab:blue", "ls": "--", "lw": 1.5, "label": "sent"}),
        ("completed", {"color": "tab:green", "lw": 1.5, "label": "completed"}))
    for column, style in styles:
        values = ps[column].to_numpy()
        ax.plot(x[:end], values[:end], **style)
        if end < len(x):  # dotted from the last whole second: not a rate, not a fall
            ax.plot(x[max(end - 1, 0):], values[max(end - 1, 0):], color=style["color"],
                    ls=":", lw=1.0, alpha=0.7)
    if end < len(x):
        ax.axvspan(x[end] - 0.5, x[-1] + 0.5, color="0.85", alpha=0.5,
                   label="partial second (the run's end: not a full-second rate)")
    ax.legend(loc="lower right")
    peak = float(ps[list(RATES)].to_numpy().max())
    ax.set_ylim(0, max(peak, 1.0) * 1.1)


def shade_stalled(ax: Axes, ps: pd.DataFrame) -> bool:
    """Shade the seconds of a per-second frame in which a sender was stalled (its loop or
    its CPU: actors/health.py), labelled once; whether there was one."""
    if ps.empty or "stalled" not in ps:
        return False
    seconds = ps.loc[ps["stalled"] > 0, "second"].to_numpy()
    for i, second in enumerate(seconds):
        ax.axvspan(second - 0.5, second + 0.5, color="tab:red", alpha=STALLED_ALPHA, lw=0,
                   label=STALLED_LABEL if i == 0 else None)
    return bool(len(seconds))


def throughput(result: Result) -> Figure:
    """Target vs sent vs completed req/s over time; failed requests by kind stacked below."""
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    ax, ax_err = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    fig.suptitle(f"Throughput — {run_title(result)}")
    ps = frames.per_second(result, pcts=())
    rate_lines(ax, ps)
    if shade_stalled(ax, ps):
        shade_stalled(ax_err, ps)
        ax.legend(loc="lower right")

    errors = frames.key_per_second(result, "error", by_kind=True)
    if errors.empty or int(errors.to_numpy().sum()) == 0:
        no_data(ax_err, "no failed requests")
    else:
        bottom = np.zeros(len(errors))
        for kind in errors.columns:
            values = errors[kind].to_numpy()
            ax_err.bar(errors.index, values, bottom=bottom, width=0.9, label=str(kind))
            bottom += values
        ax_err.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                      title="error kind")
    ax_err.set_ylabel("failed/s")
    ax_err.set_xlabel("run time (s)")
    ax_err.grid(alpha=0.3)
    return fig


# The latency chart's kinds of a per-second frame and their line styles.
LATENCY_KINDS: tuple[tuple[str, dict[str, Any]], ...] = (("corrected", {"ls": "-"}),
                                                         ("raw", {"ls": "--"}))


def latency_lines(ax: Axes, ps: pd.DataFrame, pcts: Sequence[float],
                  kinds: Sequence[tuple[str, dict[str, Any]]] = LATENCY_KINDS) -> bool:
    """Percentiles per second in ms of a per-second frame holding them, one line per kind
    and percentile (by default from the intended send time, corrected, solid, and from the
    actual send, raw, dashed), on a log axis; False if none had a value."""
    x = ps["second"].to_numpy()
    plotted = False
    for pct in pcts:
        label = percentile_label(pct)
        for kind, style in kinds:
            values_ms = ps[f"{label}_{kind}_us"].to_numpy(dtype="float64") / 1000.0
            if np.isfinite(values_ms).any():
                ax.plot(x, values_ms, color=PCT_COLORS[pct], label=f"{label} {kind}", **style)
                plotted = True
    if plotted:
        _plain_log_y(ax)
    return plotted


def latency(result: Result) -> Figure:
    """p50/p90/p99 per second: corrected (from intended time, solid) and raw (dashed), log ms."""
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    ax = fig.subplots()
    ax.set_title(f"Latency per second — {run_title(result)}")
    ps = frames.per_second(result, pcts=LATENCY_PCTS)
    shade_stalled(ax, ps)
    if latency_lines(ax, ps, LATENCY_PCTS):
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                  title="solid: from intended time\ndashed: from send time")
    else:
        no_data(ax, "no completed requests")
    ax.set_xlabel("run time (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.grid(alpha=0.3, which="both")
    return fig


def connections(result: Result) -> Figure:
    """Connections opened per second (bars) and their connect time p50/p99 (ms, log), with
    the time to first byte p50/p99 of every response for scale."""
    fig = Figure(figsize=(10, 6), layout="constrained")
    ax, ax_ms = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    fig.suptitle(f"Connections — {run_title(result)}")
    ps = frames.per_second(result, pcts=(50.0, 99.0))
    shade_stalled(ax, ps)
    shade_stalled(ax_ms, ps)
    ax.set_ylabel("opened/s")
    ax.grid(alpha=0.3)
    if ps.empty or int(ps["new_connections"].sum()) == 0:
        no_data(ax, "no connection opened")
    else:
        ax.bar(ps["second"], ps["new_connections"], width=0.9, color="tab:purple",
               label="connections opened")
        ax.legend(loc="upper right")
    # connect: marked points, as connections open in a few seconds only
    kinds = (("connect", {"ls": "-", "marker": "."}), ("ttfb", {"ls": ":"}))
    if latency_lines(ax_ms, ps, (50.0, 99.0), kinds):
        ax_ms.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                     title="connect: new connections\nttfb: every response")
    else:
        no_data(ax_ms, "no completed requests")
    ax_ms.set_ylabel("ms (log scale)")
    ax_ms.set_xlabel("run time (s)")
    ax_ms.grid(alpha=0.3, which="both")
    return fig


def _top_columns(wide: pd.DataFrame, limit: int) -> pd.DataFrame:
    if len(wide.columns) <= limit:
        return wide
    top = wide.iloc[:, : limit - 1].copy()
    top["other"] = wide.iloc[:, limit - 1 :].sum(axis=1)
    return top


def share_bars(ax: Axes, counts: pd.Series) -> None:
    """One bar per key (address…) with its share of ``counts`` in %, in the order given,
    coloured as the stacked areas of :func:`address_share`."""
    labels = [str(k) for k in counts.index]
    pct = counts.to_numpy(dtype="float64") / max(float(counts.sum()), 1.0) * 100.0
    ax.barh(labels[::-1], pct[::-1], color=[f"C{i}" for i in range(len(labels))][::-1])
    for y, value in enumerate(pct[::-1]):
        ax.text(value, y, f" {value:.1f}%", va="center", fontsize="small")
    ax.set_xlim(0, 115)


def address_share(result: Result) -> Figure:
    """Share of completed requests per remote address: over time (stacked) and overall (bars)."""
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    ax, ax_total = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    table = frames.per_address(result)
    count = len(table)
    top = f"{table['share'].iloc[0]:.0%} on {table['key'].iloc[0]}" if count else "none"
    fig.suptitle(
        f"Requests per remote address — {run_title(result)}\n"
        f"{count} address{'es' if count != 1 else ''} used, largest share {top}"
    )
    wide = _top_columns(frames.key_per_second(result, "address"), MAX_ADDRESSES)
    if wide.empty or int(wide.to_numpy().sum()) == 0:
        no_data(ax, "no completed requests")
        no_data(ax_total, "no data")
    else:
        totals = wide.sum(axis=1).replace(0, np.nan)
        shares = wide.div(totals, axis=0).fillna(0.0) * 100.0
        labels = [str(c) for c in shares.columns]
        ax.stackplot(shares.index.to_numpy(), shares.T.to_numpy(), labels=labels, alpha=0.85)
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.15), ncols=min(4, len(labels)),
                  fontsize="small", title="remote address")
        share_bars(ax_total, wide.sum(axis=0))
    ax.set_ylim(0, 100)
    ax.set_xlabel("run time (s)")
    ax.set_ylabel("share of completed requests (%)")
    ax_total.set_xlabel("share over the whole run (%)")
    ax_total.set_title("overall")
    return fig


def tags(result: Result) -> Figure:
    """Per feed tag: latency percentiles of its completed requests (from the intended send
    time, ms) and its share of failed requests."""
    table = frames.per_tag(result)
    fig = Figure(figsize=(11, 0.9 + 0.45 * max(len(table), 2)), layout="constrained")
    ax, ax_failed = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]}, sharey=True)
    fig.suptitle(f"Per tag — {run_title(result)}\n{len(table)} tags")
    if table.empty:
        no_data(ax, "no tagged rows")
        no_data(ax_failed, "no data")
        return fig
    y = np.arange(len(table))
    height = 0.8 / 3
    for i, (label, color) in enumerate((("p50", "tab:blue"), ("p90", "tab:orange"),
                                        ("p99", "tab:red"))):
        ax.barh(y + (i - 1) * height, table[f"{label}_ms"].fillna(0).to_numpy(), height,
                color=color, label=label)
    ax.set_yticks(y, [str(t) for t in table["tag"]])
    ax.invert_yaxis()
    ax.set_xlabel("latency from intended send time (ms)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3, axis="x")
    failed_pct = table["failed_share"].to_numpy() * 100.0
    ax_failed.barh(y, failed_pct, color="tab:red")
    for row, value in enumerate(failed_pct):
        ax_failed.text(value, row, f" {value:.1f}%", va="center", fontsize="small")
    ax_failed.set_xlim(0, max(10.0, float(failed_pct.max()) * 1.3))
    ax_failed.set_xlabel("failed (%)")
    return fig


# --------------------------------------------------------------------------- many runs


def _config_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean req/s, median p50/p99 (ms) per (http, dns, actors); repeats are pooled."""
    frame = rows.copy()
    for col, default in (("http", ""), ("dns", ""), ("actors", 0)):
        if col not in frame:
            frame[col] = default
    frame["http"] = frame["http"].fillna("").astype("str")
    frame["dns"] = frame["dns"].fillna("").astype("str")
    frame["actors"] = pd.to_numeric(frame["actors"], errors="coerce").fillna(0).astype("int64")
    for col in ("achieved_per_s", "p50_corrected_us", "p99_corrected_us"):
        frame[col] = pd.to_numeric(frame.get(col), errors="coerce")
    table = frame.groupby(["http", "dns", "actors"], sort=True).agg(
        achieved_per_s=("achieved_per_s", "mean"),
        p50_ms=("p50_corrected_us", lambda s: s.median() / 1000.0),
        p99_ms=("p99_corrected_us", lambda s: s.median() / 1000.0),
        runs=("achieved_per_s", "size"),
    )
    return table.reset_index()


def _http_label(http: str) -> str:
    """'HTTP/2', 'HTTP auto' (negotiated per connection), 'HTTP ?'."""
    if http == "auto":
        return "HTTP auto"
    return f"HTTP/{http}" if http else "HTTP ?"


def comparison(rows_df: pd.DataFrame) -> Figure:
    """Grouped bars of achieved req/s per (HTTP version, actors), one bar per DNS mode, with
    p50/p99 latency (corrected, ms) as markers on a secondary log axis."""
    table = _config_table(rows_df) if not rows_df.empty else pd.DataFrame()
    fig = Figure(figsize=(min(18.0, max(8.0, 0.9 * len(table) + 4)), 6), layout="constrained")
    ax = fig.subplots()
    ax.set_title("Achieved requests/s and latency by HTTP version, DNS mode and actors")
    if table.empty:
        no_data(ax, "no runs to compare")
        return fig
    groups = table[["http", "actors"]].drop_duplicates().sort_values(["http", "actors"])
    group_keys = list(groups.itertuples(index=False, name=None))
    modes = sorted(table["dns"].unique())
    width = 0.8 / len(modes)
    ax_lat = ax.twinx()
    for m, mode in enumerate(modes):
        sub = table[table["dns"] == mode]
        xs: list[float] = []
        rates: list[float] = []
        p50s: list[float] = []
        p99s: list[float] = []
        for g, (http, actors) in enumerate(group_keys):
            hit = sub[(sub["http"] == http) & (sub["actors"] == actors)]
            if hit.empty:
                continue
            xs.append(g - 0.4 + width * (m + 0.5))
            rates.append(float(hit["achieved_per_s"].iloc[0]))
            p50s.append(float(hit["p50_ms"].iloc[0]))
            p99s.append(float(hit["p99_ms"].iloc[0]))
        bars = ax.bar(xs, rates, width=width * 0.95, color=f"C{m}", alpha=0.8,
                      label=f"req/s · DNS {mode or '?'}")
        ax.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize="small", padding=2)
        ax_lat.plot(xs, p50s, "o", color="black", mfc=f"C{m}", ms=7)
        ax_lat.plot(xs, p99s, "^", color="black", mfc=f"C{m}", ms=8)
    ax.set_xticks(range(len(group_keys)))
    ax.set_xticklabels(
        [f"{_http_label(h)}\n{a} actor{'s' if a != 1 else ''}" for h, a in group_keys]
    )
    ax.set_ylabel("achieved requests/s (bars)")
    ax.set_ylim(bottom=0, top=float(np.nanmax(table["achieved_per_s"].to_numpy()) or 1) * 1.15)
    ax.grid(axis="y", alpha=0.3)
    latencies = table[["p50_ms", "p99_ms"]].to_numpy(dtype="float64")
    if np.isfinite(latencies).any() and np.nanmin(latencies) > 0:
        _plain_log_y(ax_lat)
    ax_lat.set_ylabel("latency from intended time (ms, markers)")
    marker_handles = [
        ax_lat.plot([], [], "o", color="black", mfc="white", label="p50 latency")[0],
        ax_lat.plot([], [], "^", color="black", mfc="white", label="p99 latency")[0],
    ]
    handles, labels = ax.get_legend_handles_labels()
    all_handles: list[Artist] = [*handles, *marker_handles]
    all_labels: list[str] = [*labels, "p50 latency", "p99 latency"]
    ax.legend(all_handles, all_labels, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncols=len(all_labels), fontsize="small")
    return fig


def scaling(rows_df: pd.DataFrame) -> Figure:
    """Achieved req/s against the number of actors, one line per (HTTP version, DNS mode),
    with a dotted linear-scaling reference from each line's smallest actor count."""
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    ax.set_title("Scaling: achieved requests/s against actors")
    table = _config_table(rows_df) if not rows_df.empty else pd.DataFrame()
    if table.empty:
        no_data(ax, "no runs to compare")
        return fig
    for i, ((http, mode), sub) in enumerate(table.groupby(["http", "dns"], sort=True)):
        sub = sub.sort_values("actors")
        actors = sub["actors"].to_numpy(dtype="float64")
        rates = sub["achieved_per_s"].to_numpy(dtype="float64")
        label = f"{_http_label(http)} · DNS {mode or '?'}"
        ax.plot(actors, rates, "o-", color=f"C{i}", label=label)
        if len(actors) > 1 and actors[0] > 0:
            ax.plot(actors, rates[0] * actors / actors[0], ":", color=f"C{i}", alpha=0.6)
    ticks: Sequence[Any] = sorted(table["actors"].unique())
    ax.set_xticks(list(ticks))
    ax.set_xlabel("actors (sender processes)")
    ax.set_ylabel("achieved requests/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(ax.plot([], [], ":", color="gray")[0])
    labels.append("linear scaling")
    ax.legend(handles, labels, loc="upper left", fontsize="small")
    return fig
