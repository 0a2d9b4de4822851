"""A comparison's charts: the sides' throughput and latency over time overlaid, and their
latency distributions (the percentile spectrum, on a log axis) on one axis. matplotlib
Figures from the sides' per-second arrays (no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from rafale.actors.contract import LATENCY_CORRECTED
from rafale.analysis.verdict.bootstrap import percentiles, whole
from rafale.analysis.verdict.series import Series

# The spectrum's percentiles: 0 .. 99.9999 spaced evenly in 1 / (1 - q) on a log axis.
SPECTRUM = tuple(100 * (1 - 10 ** -x) for x in np.linspace(0, 6, 121))
_PLAIN = FuncFormatter(lambda y, _: f"{y:g}")
_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")


def _label(side: Series, prefix: str) -> str:
    """The side's run label (``--label``), else its directory's name (a series': the
    directory that holds its runs), and how many runs it has."""
    runs = f" ({len(side.runs)} runs)" if len(side.runs) > 1 else ""
    path = side.labels[0].rstrip("/").split("/")
    named = (side.metas[0].get("label") if side.metas else None) or (
        path[-2] if len(side.runs) > 1 and len(path) > 1 else path[-1])
    return f"{prefix}: {named}{runs}"


def _named(base: Series, candidates: Sequence[Series]) -> list[tuple[str, Series, str]]:
    sides = [(_label(base, "base"), base, _COLOURS[0])]
    for i, cand in enumerate(candidates):
        sides.append((_label(cand, "cand"), cand, _COLOURS[(i + 1) % len(_COLOURS)]))
    return sides


def over_time(base: Series, candidates: Sequence[Series]) -> Figure:
    """Completed requests per second, and p50 / p99 per second (ms), every side overlaid
    (a side of several runs: its runs one after the other)."""
    fig = Figure(figsize=(10, 6.5), layout="constrained")
    rate_ax, latency_ax = fig.subplots(2, 1, sharex=True)
    fig.suptitle("Throughput and latency per second")
    for label, side, colour in _named(base, candidates):
        seconds = np.arange(side.seconds)
        rate_ax.plot(seconds, side.counters["completed"], color=colour, label=label)
        hist = side.hists[LATENCY_CORRECTED]
        per_second = percentiles(np.eye(side.seconds), hist.counts, hist.buckets, (50.0, 99.0))
        latency_ax.plot(seconds, per_second[:, 0] / 1000, color=colour, label=f"{label} p50")
        latency_ax.plot(seconds, per_second[:, 1] / 1000, color=colour, linestyle="--",
                        label=f"{label} p99")
    rate_ax.set_ylabel("completed / s")
    rate_ax.set_ylim(bottom=0)
    latency_ax.set_ylabel("latency (ms, from intended send)")
    latency_ax.set_yscale("log")
    latency_ax.yaxis.set_major_formatter(_PLAIN)
    latency_ax.yaxis.set_minor_formatter(_PLAIN)
    latency_ax.set_xlabel("second of the side (runs one after the other)")
    for ax in (rate_ax, latency_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    return fig


def spectrum(base: Series, candidates: Sequence[Series]) -> Figure:
    """Latency (ms, log) at every percentile of each side's merged histogram, the
    percentile axis spread as 1 / (1 - q) so that the tail has room."""
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    fig.suptitle("Latency by percentile (whole sides)")
    spread = 1 / (1 - np.array(SPECTRUM) / 100)
    for label, side, colour in _named(base, candidates):
        hist = side.hists[LATENCY_CORRECTED]
        values = percentiles(whole(side.seconds), hist.counts, hist.buckets, SPECTRUM)[0]
        ax.plot(spread, values / 1000, color=colour, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10_000, 100_000, 1_000_000]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"p{100 * (1 - 1 / x):g}"))
    ax.yaxis.set_major_formatter(_PLAIN)
    ax.yaxis.set_minor_formatter(_PLAIN)
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, from intended send)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    return fig
