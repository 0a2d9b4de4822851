"""The live view's picture, from the per-second frame of a window log (as ``run.frame()``)."""

from __future__ import annotations

import pytest

from rafale.analysis import live_chart
from rafale.analysis.log import WindowLog
from tests.analysis.test_plots import PNG_MAGIC, artists_with_data
from tests.analysis.windows_factory import RunShape, make_run


def test_the_four_panels_show_the_frame() -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=6, error_every=10))
    frame = WindowLog.of(windows).per_second()
    fig = live_chart.figure(frame, {"127.0.0.2": 0.5, "127.0.0.3": 0.5}, "run-1", "status")
    titles = {ax.get_title(): ax for ax in fig.axes}
    assert set(titles) == {"throughput", "latency per second", "failed requests",
                           "share per address, so far"}
    assert all(artists_with_data(ax) for ax in fig.axes)
    labels = {line.get_label() for line in titles["throughput"].get_lines()}
    assert {"target (intended)", "sent", "completed"} <= labels
    assert {"p50 corrected", "p99 corrected"} <= {
        line.get_label() for line in titles["latency per second"].get_lines()}
    bars = titles["failed requests"].patches
    assert sum(b.get_height() for b in bars) == frame["failed"].sum() > 0
    assert fig.get_suptitle() == "run-1\nstatus"
    assert live_chart.png(fig).startswith(PNG_MAGIC)


@pytest.mark.parametrize("addresses", [0, 3, 20])
def test_before_the_first_second_and_with_many_addresses(addresses: int) -> None:
    """Addresses in a stable order (their colours do not swap from one second to the next);
    past 12, the 11 largest and the rest as 'other'."""
    frame = WindowLog().per_second()
    shares = {f"127.0.0.{i + 2}": (i + 1) / (addresses * (addresses + 1) / 2)
              for i in range(addresses)}
    fig = live_chart.figure(frame, shares, "run-1", "starting")
    panel = [ax for ax in fig.axes if ax.get_title() == "share per address, so far"][0]
    if not addresses:
        assert [t.get_text() for t in panel.texts] == ["no requests yet"]
    else:
        top_down = [t.get_text() for t in panel.get_yticklabels()][::-1]
        largest = sorted(shares, key=lambda a: -shares[a])
        expected = sorted(largest[:11]) + ["other"] if addresses > 12 else sorted(largest)
        assert top_down == expected
    assert live_chart.png(fig).startswith(PNG_MAGIC)
