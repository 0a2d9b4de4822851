"""The live view's picture of a run so far, from its per-second frame (``run.frame()``).

One Figure of four panels, drawn with the charts' own pieces (:mod:`rafale.analysis.plots`):
throughput (target, sent, completed per second), latency p50 and p99 per second (from the
intended send time, solid, and from the actual send, dashed), failed requests per second,
and each address's share of the requests so far. ``cluster/live.py`` redraws it every
second while a run goes; the last one drawn is the run's final frame.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from rafale.analysis import plots

__all__ = ["LIVE_PCTS", "figure", "png"]

LIVE_PCTS = (50.0, 99.0)
LIVE_DPI = 80


def figure(frame: pd.DataFrame, address_share: Mapping[str, float], title: str,
           status: str) -> Figure:
    """The four panels of ``frame`` (per-second rows, with p50/p99 columns) and of
    ``address_share`` (address -> share of requests so far), under ``title`` and ``status``."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    axes = fig.subplot_mosaic([["rate", "latency"], ["failed", "addresses"]],
                              gridspec_kw={"height_ratios": [3, 1.6], "width_ratios": [3, 2]})
    fig.suptitle(f"{title}\n{status}", fontsize="medium")
    rate, failed = axes["rate"], axes["failed"]
    failed.sharex(rate)
    axes["latency"].sharex(rate)
    plots.rate_lines(rate, frame)
    rate.set_title("throughput", fontsize="medium")
    if not frame.empty:  # room above the lines for the legend
        rate.set_ylim(0, rate.get_ylim()[1] * 1.3)
        rate.legend(loc="upper left", ncols=2, fontsize="small")
    _latency(axes["latency"], frame)
    failed.set_title("failed requests", fontsize="medium")
    failed.set_ylabel("failed/s")
    failed.set_xlabel("run time (s)")
    failed.grid(alpha=0.3)
    counts = frame["failed"].to_numpy() if not frame.empty else np.zeros(0)
    if counts.sum() > 0:
        failed.bar(frame["second"].to_numpy(), counts, width=0.9, color="tab:red")
    else:
        plots.no_data(failed, "no failed requests")
    _addresses(axes["addresses"], address_share)
    last_s = int(frame["second"].max()) if not frame.empty else 0
    rate.set_xlim(-0.5, max(last_s, 4) + 0.5)  # the first seconds are not a dot in the middle
    rate.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (rate, axes["latency"]):
        for line in ax.get_lines():  # a line of one second alone shows as a dot
            if len(line.get_xdata()) == 1:  # type: ignore[arg-type]
                line.set_marker("o")
    return fig


def _latency(ax: Axes, frame: pd.DataFrame) -> None:
    ax.set_title("latency per second", fontsize="medium")
    ax.set_ylabel("ms (log scale)")
    ax.set_xlabel("run time (s)")
    ax.grid(alpha=0.3, which="both")
    if frame.empty or not plots.latency_lines(ax, frame, LIVE_PCTS):
        plots.no_data(ax, "no completed requests yet")
        return
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * 4)  # room above the lines for the legend (log scale)
    ax.legend(loc="upper left", fontsize="small", ncols=2,
              title="solid: from intended time, dashed: from send", title_fontsize="small")


def _addresses(ax: Axes, address_share: Mapping[str, float]) -> None:
    ax.set_title("share per address, so far", fontsize="medium")
    ax.set_xlabel("share of requests (%)")
    if not address_share:
        plots.no_data(ax, "no requests yet")
        return
    limit = plots.MAX_ADDRESSES
    largest = sorted(address_share, key=lambda a: -address_share[a])
    shown = sorted(largest if len(largest) <= limit else largest[:limit - 1])  # stable colours
    shares = pd.Series({a: address_share[a] for a in shown}, dtype="float64")
    if len(shown) < len(largest):
        shares["other"] = sum(address_share[a] for a in largest[limit - 1:])
    plots.share_bars(ax, shares)


def png(fig: Figure, dpi: int = LIVE_DPI) -> bytes:
    """``fig`` as PNG bytes (what the notebook view displays)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
