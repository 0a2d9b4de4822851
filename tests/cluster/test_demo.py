"""`make demo` tells the story: the closed-model comparison differs by protocol (the data
behind the chart), pinned DNS spreads over both addresses, each phase's cells are compared
against its first (the baseline), the terminal tables fit 120 columns, and the scaling
chart is drawn only for several actor counts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rafale.analysis.verdict import baseline
from rafale.cluster import demo


@pytest.mark.slow
@pytest.mark.xdist_group("own_ray_a")  # starts a Ray of its own: see tests/conftest.py
def test_the_demo_compares_protocol_ceilings_and_dns_modes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, publish = tmp_path / "demo", tmp_path / "published"
    code = demo.main(["--duration", "1", "--rate", "300", "--out", str(out),
                      "--publish", str(publish), "--no-run-charts"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    table = pd.read_csv(out / "max" / "comparison.csv", dtype={"http": str})
    assert len(table) == 8 and (table["completed"] > 0).all()
    # The bars are each protocol's ceiling (closed model, no target rate), not eight runs
    # at one fixed rate: they differ.
    assert table["rate_target_per_s"].isna().all()
    rates = table["achieved_per_s"]
    print(table.groupby(["http", "dns"])["achieved_per_s"].mean().to_dict())
    assert rates.max() / rates.min() > 1.02 and rates.round(-1).nunique() >= 4
    used = table.groupby("dns")["addresses_used"].agg(["min", "max"])
    assert used.loc["pinned", "min"] == 2 and used.loc["system", "max"] == 1
    latency = pd.read_csv(out / "latency" / "comparison.csv", dtype={"http": str})
    assert sorted(latency["http"]) == ["1.1", "2", "2c", "3"]
    assert (latency["rate_target_per_s"] == 300).all()
    assert not (out / "max" / "scaling.png").exists()  # one actor count: no scaling chart
    tables = printed[printed.index("maximum throughput (closed model):"):
                     printed.index("full tables:")]
    assert tables.count("\n") >= 12  # two headers, 8 + 4 rows
    assert all(len(line) <= 120 for line in tables.splitlines()), tables
    # Each phase ends with its baseline: every other cell against the phase's first
    # (HTTP/1.1 system DNS, then HTTP/1.1 pinned), 4 metrics each, printed and written.
    for phase, first, cells in (("max", "http1.1-system-autoactors", 8),
                                ("latency", "http1.1-pinned-autoactors", 4)):
        assert f"baseline: every cell against the first, {first}\n" in tables
        labels = set(pd.read_csv(out / phase / "comparison.csv")["label"]) - {first}
        rows = pd.read_csv(out / phase / baseline.BASELINE_CSV)
        assert len(labels) == cells - 1 and len(rows) == (cells - 1) * len(baseline.METRICS)
        assert set(zip(rows["cell"], rows["metric"], strict=True)) == {
            (cell, metric) for cell in labels for metric in baseline.METRICS}
        assert set(rows["base_cell"]) == {first}
    published = json.loads((publish / "demo.json").read_text())
    assert len(published["max"]) == 8 and len(published["latency"]) == 4
    # Each cell says how many of its seconds were sender-stalled (the README's column).
    assert all(isinstance(row["stalled_seconds"], int)
               for phase in ("max", "latency") for row in published[phase])
    assert tables.splitlines()[1].endswith("stalled s")
    assert (publish / "max-comparison.png").stat().st_size > 10_000
    assert (publish / "address-share-pinned.png").exists()
    # --no-run-charts: only the two published runs got their address-share chart
    drawn = sorted(p.parent.name for p in out.glob("*/*/address_share.png"))
    assert len(drawn) == 2 and not list(out.glob("*/*/throughput.png")), drawn
