from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from rafale.analysis import compare, frames, plots, store
from rafale.analysis.result import Result
from tests.analysis.conftest import SaveRun
from tests.analysis.windows_factory import RunShape

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def artists_with_data(ax: Axes) -> int:
    """Lines with points, bars with height or width, collections with paths, on one axes."""
    lines = [ln for ln in ax.get_lines() if len(np.asarray(ln.get_xdata())) > 0]
    bars = [p for p in ax.patches
            if isinstance(p, Rectangle) and (p.get_height() > 0 and p.get_width() > 0)]
    collections = [c for c in ax.collections
                   if isinstance(c, Collection) and len(c.get_paths()) > 0]
    return len(lines) + len(bars) + len(collections)


def assert_renders(fig: Figure, path: Path, min_axes_with_data: int = 1) -> None:
    assert sum(artists_with_data(ax) > 0 for ax in fig.axes) >= min_axes_with_data
    for ax in fig.axes:
        if artists_with_data(ax):
            assert ax.get_xlabel() or ax.get_ylabel()
    written = plots.save_png(fig, path)
    data = written.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000


RUN_PLOTS: list[tuple[Callable[[Result], Figure], int]] = [
    (plots.throughput, 2),  # lines above, error bars below
    (plots.latency, 1),
    (plots.address_share, 2),  # stacked area and overall bars
]


@pytest.mark.parametrize(("plot", "axes_with_data"), RUN_PLOTS)
def test_run_plots_have_data(small_result: Result, tmp_path: Path,
                             plot: Callable[[Result], Figure], axes_with_data: int) -> None:
    fig = plot(small_result)
    assert fig.get_suptitle() or fig.axes[0].get_title()
    assert_renders(fig, tmp_path / f"{plot.__name__}.png", axes_with_data)


def test_latency_lines_corrected_solid_raw_dashed(small_result: Result) -> None:
    ax = plots.latency(small_result).axes[0]
    styles = {ln.get_label(): ln.get_linestyle() for ln in ax.get_lines()}
    assert styles["p99 corrected"] == "-" and styles["p99 raw"] == "--"
    assert ax.get_yscale() == "log" and "ms" in ax.get_ylabel()


@pytest.mark.parametrize(("plot", "_"), RUN_PLOTS)
def test_run_plots_survive_an_empty_run(tmp_path: Path, plot: Callable[[Result], Figure],
                                        _: int) -> None:
    result = store.load(store.save(tmp_path / "empty", [], {}))
    path = plots.save_png(plot(result), tmp_path / "empty.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


@pytest.fixture
def matrix(save_run: SaveRun) -> list[Result]:
    results = []
    for i, (http, dns, actors) in enumerate(
        [("1.1", "system", 1), ("2", "system", 1), ("2", "pinned", 1), ("2", "pinned", 3),
         ("3", "pinned", 3), ("2", "system", 3)]
    ):
        shape = RunShape(actors=actors, seconds=2, run_id=f"m{i}", seed=i,
                         addresses=("127.0.0.2",) if dns == "system" else ("127.0.0.2", "::1"))
        results.append(store.load(save_run(f"m{i}", shape, http=http, dns=dns)))
    return results


@pytest.mark.parametrize("plot", [plots.comparison, plots.scaling])
def test_comparison_plots_have_data(matrix: list[Result], tmp_path: Path,
                                    plot: Callable[..., Figure]) -> None:
    fig = plot(compare.compare(matrix))
    assert_renders(fig, tmp_path / f"{plot.__name__}.png")


@pytest.mark.parametrize("plot", [plots.comparison, plots.scaling])
def test_comparison_plots_survive_no_runs(tmp_path: Path, plot: Callable[..., Figure]) -> None:
    path = plots.save_png(plot(compare.compare([])), tmp_path / "none.png")
    assert path.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(("duration_s", "partial"), [(5.0, [5]), (4.5, [4, 5]), (None, [])])
def test_the_run_end_is_marked_partial_and_drawn_apart(
        save_run: SaveRun, duration_s: float | None, partial: list[int]) -> None:
    """A second the schedule did not cover whole (the end, the grace) is `partial` in the
    frame, and the throughput chart's solid lines stop before it: no fall to zero drawn as
    a rate (it is dotted, on a shaded band)."""
    path = save_run("ends", RunShape(actors=2, seconds=6, run_id="ends"))
    result = store.load(path)
    if duration_s is not None:
        result.meta["schedule"] = {"duration_s": duration_s}
    frame = frames.per_second(result)
    assert frame.loc[frame["partial"], "second"].tolist() == partial
    ax = plots.throughput(result).axes[0]
    solid = [line for line in ax.get_lines() if line.get_linestyle() != ":"]
    assert solid and all(max(line.get_xdata()) == 5 - len(partial) for line in solid)
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == (3 if partial else 0)
    assert any("partial second" in str(t.get_text()) for t in ax.get_legend().get_texts()) \
        == bool(partial)


def test_stalled_seconds_are_shaded_on_every_run_chart(save_run: SaveRun) -> None:
    """A second in which a sender stalled is shaded (labelled once) on the throughput,
    latency, send lag and connections charts; a healthy run has no shading."""
    from rafale.analysis import html

    path = save_run("stalls", RunShape(actors=2, seconds=6, run_id="stalls"))
    healthy = store.load(path)
    stalled = store.load(path)
    stalled.windows.loc[stalled.windows["second"].isin([2, 3]), "stalled"] = 1
    charts = (plots.throughput, plots.latency, html.send_lag, plots.connections)
    for chart in charts:
        for result, spans in ((stalled, [(1.5, 2.5), (2.5, 3.5)]), (healthy, [])):
            ax = chart(result).axes[0]
            shaded = [p for p in ax.patches if p.get_label() == plots.STALLED_LABEL
                      or p.get_facecolor()[3] == pytest.approx(plots.STALLED_ALPHA)]
            found = sorted((round(p.get_x(), 1), round(p.get_x() + p.get_width(), 1))
                           for p in shaded if isinstance(p, Rectangle))
            assert found == spans, (chart.__name__, found)
        labels = [t.get_text() for t in chart(stalled).axes[0].get_legend().get_texts()]
        assert labels.count(plots.STALLED_LABEL) == 1, (chart.__name__, labels)
