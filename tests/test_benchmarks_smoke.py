"""The benchmark harness must not rot: parse the tools' reports, and run it tiny for real.

No speed assertions: the smoke run checks that every piece runs and writes its results.
The external clients are installed on demand (apt-get, as root or with sudo); a client that
cannot be installed skips the smoke run, except under CI=true where it fails it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import curl_ref, driver_scale, metrics_cost, run, table
from benchmarks.cpu import run_tool
from benchmarks.h2load import ensure_h2load, ensure_tool, parse_report
from benchmarks.peers import (
    LOCUST_REPORT,
    LOCUST_WARMED_UP,
    LOCUSTFILE,
    ensure_nss_wrapper,
    parse_wrk,
)
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


WRK_OUTPUT = """\
Running 3s test @ https://rafale.test:40000/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     7.29ms    2.11ms  40.12ms   88.02%
    Req/Sec    13.86k     1.02k   15.20k    70.00%
  41581 requests in 3.00s, 8.65MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 5
Requests/sec:  13860.33
Transfer/sec:      2.88MB
"""


def test_parse_wrk() -> None:
    report = parse_wrk(WRK_OUTPUT)
    assert (report.requests, report.run_s, report.non_2xx) == (41581, 3.0, 5)
    assert dict(report.socket_errors) == {"connect": 0, "read": 3, "write": 1, "timeout": 2}
    assert (report.succeeded, report.failed) == (41576, 11)


def test_parse_wrk_without_errors_in_milliseconds() -> None:
    report = parse_wrk("  120 requests in 500.00ms, 1.00KB read\n")
    assert (report.requests, report.run_s, report.failed) == (120, 0.5, 0)
    with pytest.raises(ValueError, match="requests in"):
        parse_wrk("unable to connect to rafale.test:1 Connection refused\n")


def test_the_locustfile_prints_the_lines_the_harness_waits_for() -> None:
    text = LOCUSTFILE.read_text()
    assert f'WARMED_UP = "{LOCUST_WARMED_UP}"' in text
    assert f'REPORT = "{LOCUST_REPORT}"' in text


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_shapes_are_named_uniquely(shape: Shape) -> None:
    assert shape_named(shape.name) is shape


BUSY = """\
import time
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
spin(0.3)
print("warm", flush=True)
spin(0.4)
time.sleep(0.3)
"""


def test_run_tool_measures_the_window_from_the_marker() -> None:
    ran = run_tool([sys.executable, "-c", BUSY], warmup_s=0.3, duration_s=0.4, marker="warm",
                   interval_s=0.05)
    assert ran.returncode == 0 and "warm" in ran.output
    assert ran.window.start_s - ran.launched_s >= 0.3
    assert ran.window.wall_s == pytest.approx(0.4)
    # CPU of a spinning process over 0.4 s of wall time: at most the wall time (+ ticks), and
    # less than its whole run's (start-up and the first 0.3 s of spinning are outside)
    assert 0 < ran.window.cpu_s <= 0.4 + 0.03
    assert ran.window.cpu_s < ran.cpu_s_whole_run
    assert ran.window.samples >= 4  # launch, start, end, exit at least


def test_run_tool_without_the_marker_fails() -> None:
    with pytest.raises(RuntimeError, match="never printed"):
        run_tool([sys.executable, "-c", "print('hello')"], warmup_s=0, duration_s=1,
                 marker="warm")


def _require(what: str, ensure: Callable[[], object]) -> None:
    try:
        ensure()
    except (RuntimeError, OSError) as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {what} cannot be installed: {error}")
        pytest.skip(f"{what} cannot be installed: {error}")


def _locust() -> None:
    if importlib.util.find_spec("locust") is None:
        raise RuntimeError("locust is not installed: pip install -e '.[bench]'")


@pytest.mark.slow
def test_harness_runs_one_round_of_one_shape_with_every_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require("h2load", ensure_h2load)
    _require("wrk", lambda: ensure_tool("wrk", "wrk"))
    _require("nss_wrapper", ensure_nss_wrapper)
    _require("the C reference client", curl_ref.build)
    _require("locust", _locust)
    argv = ["--quick", "--warmup", "1", "--duration", "1", "--shapes", "h1-100",
            "--rates", "500", "--ramp-s", "0", "--hold-s", "1", "--out", str(tmp_path)]
    assert run.main(argv) == 0
    [dated] = table.results_files(tmp_path)
    raw = json.loads(dated.read_text())
    assert json.loads((tmp_path / "latest.json").read_text()) == raw
    measured = {m["client"]: m for m in raw["shapes"]}
    assert set(measured) == {"rafale", "libcurl-c", "pycurl-floor", "h2load", "wrk", "locust"}
    for client, m in measured.items():
        assert m["succeeded"] > 0 and m["failed"] == 0, (client, m)
        assert m["cpu_s"] > 0, (client, m)
        if client not in ("rafale", "pycurl-floor"):  # external: the same sampled window
            assert m["extra"]["cpu_window"]["wall_s"] == pytest.approx(1.0), client
    assert set(measured["rafale"]["extra"]["version"]) == {"1.1"}
    assert measured["libcurl-c"]["extra"]["version"] == {"1.1": measured["libcurl-c"]["succeeded"]}
    assert "prorated" in measured["wrk"]["extra"]["counted"]
    assert [r["rate_per_s"] for r in raw["accuracy"]] == [500.0]
    assert raw["accuracy"][0]["sent"] > 0
    [c_rate] = raw["accuracy_reference"]  # libcurl-c's open model at the same rate
    assert c_rate["extra"]["rate_per_s"] == 500.0 and c_rate["extra"]["sent"] > 0
    assert math.isfinite(raw["summary"]["accuracy"][0]["cpu_ratio"])
    # provenance, and the tables rendered from the file alone
    assert raw["machine"]["cores"] >= 1 and raw["machine"]["cpu_model"]
    assert all(v != "missing" for v in raw["versions"].values()), raw["versions"]
    assert raw["args"]["argv"] == argv
    [summary] = raw["summary"]["shapes"]
    assert math.isfinite(summary["req_ratio"]) and math.isfinite(summary["cpu_ratio"])
    assert math.isfinite(summary["floor_cpu_ratio"])
    assert math.isfinite(summary["over_floor_cpu_ratio"])
    assert measured["pycurl-floor"]["extra"]["version"] == {"1.1": 100}  # every handle
    rendered = table.markdown(raw)
    assert "| h1-100 (HTTP/1.1 TLS, 100 connections) |" in rendered
    assert "locust req/s" in rendered and "rafale / libcurl-c" in rendered
    assert "| pycurl-floor / libcurl-c | rafale / pycurl-floor |" in rendered
    assert "| libcurl-c CPU µs/req | rafale / libcurl-c | targets |" in rendered
    assert rendered in (tmp_path / "latest.md").read_text()
    capsys.readouterr()
    assert table.main([str(dated)]) == 0
    assert capsys.readouterr().out == rendered + "\n"


def test_metrics_cost_measures_a_real_scrape_of_the_endpoint(tmp_path: Path) -> None:
    """Each simulated second scrapes a real endpoint over HTTP: the page holds the run's
    families, and the scrape's CPU is counted in the driver's process."""
    argv = ["--actors", "4", "--seconds", "5", "--rounds", "1", "--out", str(tmp_path)]
    assert metrics_cost.main(argv) == 0
    [case] = json.loads((tmp_path / "metrics_cost.json").read_text())["cases"]
    assert case["actors"] == 4 and case["page_bytes"] > 2000
    assert 0 < case["scrape_cpu_median_s"] <= case["scrape_cpu_max_s"]
    assert case["extra_share"] == pytest.approx(case["scrape_cpu_median_s"]
                                                / case["plain_cpu_per_s_mean_s"])
    assert "| 4 |" in metrics_cost.markdown([case])


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


def test_driver_scale_tree_mode_gives_the_flat_summary_for_less_driver_cpu(
        tmp_path: Path) -> None:
    argv = ["--mode", "flat,tree", "--senders", "32", "--nodes", "2", "--seconds", "5",
            "--quick", "--out", str(tmp_path)]
    assert driver_scale.main(argv) == 0
    raw = json.loads((tmp_path / "driver_tree.json").read_text())
    flat, tree = raw["cases"]
    assert (flat["mode"], tree["mode"]) == ("flat", "tree")
    assert flat["windows"] == tree["windows"] == 32 * 5
    assert flat["summary_sha256"] == tree["summary_sha256"]  # lossless
    assert flat["aggregator_cpu_s_per_s"] == 0 < tree["aggregator_cpu_s_per_s"]
    # the driver decodes 2 nodes' histograms a second, not 32 senders'
    assert tree["driver_cpu_median_s"] < flat["driver_cpu_median_s"], (flat, tree)
    assert raw["verdicts"][-1].endswith("met: 1 of 1 cases"), raw["verdicts"]
    assert "| tree | 32 | 2 | 16 |" in (tmp_path / "driver_tree.md").read_text()
    with pytest.raises(SystemExit):
        driver_scale.main(["--mode", "bush", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        driver_scale.main(["--mode", "tree", "--senders", "4", "--nodes", "8"])


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
    # The floor is the sum of its parts. (Whether an encoder beats it is a timing, left to
    # the benchmark's own rounds: one small round on a loaded box measured rafale 131 µs
    # under a floor of 140 µs.)
    parts = costs["keygen_us"] + costs["ecdh_us"] + costs["decode_us"]
    assert costs["floor_us"] == pytest.approx(parts)
    [sent] = report["send"]
    assert sent["delivered"] == 594 and sent["gone"] == 6
    assert 0 <= sent["late_cap_share"] <= sent["late_share"] <= 1
    assert "speed-up" in webpush.markdown(report) and "P-256 floor" in webpush.markdown(report)
