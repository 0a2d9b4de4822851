"""The benchmark harness must not rot: parse h2load's report, and run it tiny for real.

No speed assertions: the smoke run checks that every piece runs and writes its results.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from benchmarks import driver_scale, run
from benchmarks.h2load import parse_report
from benchmarks.shapes import SHAPES, Shape, shape_named

H2LOAD_OUTPUT = """\
starting benchmark...
Warm-up phase is over for thread #0.
finished in 4.00s, 20178.67 req/s, 551.83KB/s
requests: 60536 total, 60536 started, 60536 done, 60530 succeeded, 6 failed, 2 errored, 1 timeout
status codes: 60545 2xx, 0 3xx, 0 4xx, 0 5xx
"""


@pytest.mark.parametrize(
    ("field", "expected"),
    [("finished_s", 4.0), ("req_per_s", 20178.67), ("total", 60536), ("succeeded", 60530),
     ("failed", 6), ("errored", 2), ("timeout", 1)],
)
def test_parse_report(field: str, expected: float) -> None:
    assert getattr(parse_report(H2LOAD_OUTPUT), field) == expected


def test_parse_report_rejects_output_without_summary() -> None:
    with pytest.raises(ValueError, match="finished in"):
        parse_report("starting benchmark...\n")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_shapes_are_named_uniquely(shape: Shape) -> None:
    assert shape_named(shape.name) is shape


@pytest.mark.slow
def test_harness_runs_one_round_of_one_shape(tmp_path: Path) -> None:
    clients = "rafale,h2load" if shutil.which("h2load") else "rafale"
    argv = ["--quick", "--duration", "1", "--shapes", "h2-1x100", "--clients", clients,
            "--rates", "500", "--ramp-s", "1", "--hold-s", "1", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    assert "h2-1x100" in (tmp_path / "latest.md").read_text()
    raw = json.loads((tmp_path / "latest.json").read_text())
    measured = {m["client"]: m for m in raw["shapes"]}
    assert set(measured) == set(clients.split(","))
    assert all(m["succeeded"] > 0 for m in measured.values())
    assert set(measured["rafale"]["extra"]["version"]) == {"2"}
    assert [r["rate_per_s"] for r in raw["accuracy"]] == [500.0]
    assert raw["accuracy"][0]["sent"] > 0


def test_driver_scale_quick_writes_every_figure_of_every_case(tmp_path: Path) -> None:
    argv = ["--quick", "--actors", "2,3", "--seconds", "5,6", "--out", str(tmp_path)]
    assert driver_scale.main(argv) == 0
    raw = json.loads((tmp_path / "driver_scale.json").read_text())
    cases = {(c["actors"], c["seconds"]): c for c in raw["cases"]}
    assert set(cases) == {(2, 5), (2, 6), (3, 5), (3, 6)}
    for (actors, seconds), case in cases.items():
        assert case["windows"] == actors * seconds and not case["cut"]
        assert case["checkpoints"] == 1
        for name in driver_scale.FIGURES:
            assert 0 < case[name] < math.inf, (actors, seconds, name, case[name])
        assert math.isfinite(case["rss_bytes_per_window"])
    assert len(raw["verdicts"]) == 3
    assert raw["machine"]["cpu_count"] >= 1
    assert "| N | T (s) |" in (tmp_path / "driver_scale.md").read_text()


@pytest.mark.slow
def test_feeds_benchmark_runs_small_and_renders(tmp_path: Path) -> None:
    from benchmarks import feeds

    argv = ["--rows", "40000", "--paths", "1000", "--rounds", "1", "--warmup", "1",
            "--duration", "1", "--memory-seconds", "3", "--out", str(tmp_path)]
    assert feeds.main(argv) == 0
    report = json.loads((tmp_path / "feeds.json").read_text())
    assert [r["side"] for r in report["cpu"]["rows"]] == ["single", "feed"]
    assert all(r["req_per_s"] > 0 and r["failed"] == 0 for r in report["cpu"]["rows"])
    assert report["prepare"]["rows"] == 40000 and report["prepare"]["chunks"] == 3
    assert report["memory"]["sent"] > 0 and len(report["memory"]["actors"]) == 2
    table = feeds.markdown(report)
    assert "40,000 rows" in table and "feed / one URL" in table


@pytest.mark.slow
def test_webpush_benchmark_runs_small_and_renders(tmp_path: Path) -> None:
    from benchmarks import webpush

    assert webpush.main(["--messages", "600", "--rounds", "1", "--rates", "300",
                         "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "webpush.json").read_text())
    assert [p["workers"] for p in report["prepare"]] == [1, 2]
    assert all(p["messages"] == 600 and p["messages_per_s"] > 0 for p in report["prepare"])
    costs = report["encoders"]
    assert costs["rafale_us"] > 0 and costs["pywebpush_us"] > 0
    # The floor is the sum of its parts, and no encoder beats it.
    parts = costs["keygen_us"] + costs["ecdh_us"] + costs["decode_us"]
    assert costs["floor_us"] == pytest.approx(parts) and costs["rafale_us"] > costs["floor_us"]
    [sent] = report["send"]
    assert sent["delivered"] == 594 and sent["gone"] == 6
    assert 0 <= sent["late_cap_share"] <= sent["late_share"] <= 1
    assert "speed-up" in webpush.markdown(report) and "P-256 floor" in webpush.markdown(report)
