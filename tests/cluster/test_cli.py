"""The rafale CLI: end to end in a subprocess against the embedded target, and bad input."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from rafale.analysis import frames, store
from rafale.analysis.verdict import VERDICTS, baseline, side_series
from rafale.cluster import cli, placement
from rafale.cluster.cli import common as cli_common
from rafale.cluster.meta import Ended
from rafale.cluster.target import Target
from tests.helpers import ROOT, rafale, target_args
from tests.rayhead import RayHead

SECRET = "s3cret-cli-token"


@pytest.mark.slow
@pytest.mark.xdist_group("own_ray_a")  # starts a Ray of its own: see tests/conftest.py
def test_run_end_to_end(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "run"
    began = time.time()
    done = rafale("run", target.https_url, "--rate", "200", "--duration", "2s", "--ramp", "0.5s",
                  "--http", "2", "--dns", "pinned", "--actors", "2", "--out", str(out),
                  "--header", f"Authorization: Bearer {SECRET}", "--no-charts",
                  *target_args(target))
    assert done.returncode == 0, done.stderr
    assert "latency (ms)" in done.stdout and "127.0.0.3" in done.stdout
    assert re.search(r"achieved \d+/s", done.stderr)  # progress lines
    assert SECRET not in done.stdout + done.stderr
    result = store.load(out)
    requests = result.summary["requests"]
    assert requests["completed"] == requests["sent"] > 300
    assert result.meta["ended"] == "completed" and result.meta["spec"]["dns"] == "pinned"
    # h2 pinned over two addresses: at least one connection per address and actor, timed
    summary = result.summary
    assert summary["connect_us"]["count"] == summary["new_connections"] >= 2
    assert summary["ttfb_us"]["count"] == requests["completed"]
    assert "time to first byte" in done.stdout and "connect (new connections)" in done.stdout
    assert frames.per_second(result)["p50_ttfb_us"].notna().any()
    for path in out.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    first_request_after_s = result.meta["start_at_s"] - began
    print(f"first request {first_request_after_s:.2f} s after `rafale run` started")
    # Ray's start and the actors' (~5 s quiet): a loose bound, which a busy machine
    # (the parallel test pass) stretches; it catches a start that waits on a timeout.
    assert first_request_after_s < 40


BAD_ARGS: list[tuple[list[str], str]] = [
    (["https://x.test/", "--rate", "abc"], "'abc'"),
    (["https://x.test/", "--rate", "nan"], "nan"),
    (["https://x.test/", "--rate", "0"], "'0'"),
    (["https://x.test/", "--duration", "-1s"], "'-1s'"),
    (["https://x.test/", "--rate", "5", "--ramp", "1m", "--duration", "10s"], "'1m'"),
    (["https://x.test/", "--stages", "10s-100"], "10s-100"),
    (["http://x.test/", "--http", "3"], "http://x.test/"),
    (["https://x.test/", "--http", "2c"], "https://x.test/"),
    (["gopher://x.test/"], "'gopher'"),
    (["https://x.test/", "--max-in-flight", "0"], "max_in_flight"),
    (["https://x.test/", "--resolve", "x.test:443"], "'x.test:443'"),
    (["https://x.test/", "--cacert", "/nonexistent.pem"], "/nonexistent.pem"),
    (["https://nonexistent.invalid/", "--rate", "5"], "nonexistent.invalid"),
    (["https://x.test/", "--header", "NoColon"], "NoColon"),
    (["https://x.test/", "--stall-after", "0ms"], "stall_after '0ms'"),
    (["https://x.test/", "--stall-after", "soon"], "stall_after"),
    (["https://x.test/", "--connect-rate", "0"], "connect_rate '0' must be a finite number > 0"),
    (["https://x.test/", "--connect-rate", "many"], "connect_rate 'many'"),
    (["https://x.test/", "--repeat", "0", "--out", "/tmp/unused-repeat"],
     "--repeat 0 is not a number of runs; expected 1 or more"),
    (["https://x.test/", "--repeat", "2"], "--repeat 2 needs --out DIR"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_run_bad_input_exits_nonzero(args: list[str], fragment: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ray(*_: Any, **__: Any) -> None:
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr(placement, "connect", no_ray)
    result = CliRunner().invoke(cli.app, ["run", *args])
    assert result.exit_code == cli.EXIT_BAD_INPUT, result.output
    assert fragment in result.output


@pytest.mark.real
def test_bad_input_in_a_subprocess_exits_2_fast() -> None:
    began = time.monotonic()
    done = rafale("run", "http://x.test/", "--http", "3", timeout_s=30)
    assert done.returncode == 2
    assert "http://x.test/" in done.stderr and "https" in done.stderr
    assert time.monotonic() - began < 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape_until_closed(port: int, scrapes: list[str], limit_s: float = 90) -> None:
    """Scrape http://127.0.0.1:PORT/metrics every 0.2 s, from before it opens until it has
    opened and closed again, keeping every page read."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
                scrapes.append(page.read().decode())
        except OSError:
            if scrapes:
                return
        time.sleep(0.2)


@pytest.mark.parametrize("command", [
    ["matrix", "https://x.test/", "--out", "/tmp/unused-matrix", "--metrics", "0.0.0.0:9464"],
    ["webpush", "send", "feed.parquet", "--rate", "5", "--out", "/tmp/unused-send",
     "--metrics", "0.0.0.0:9464"],
])
def test_matrix_and_send_refuse_a_remote_metrics_bind_before_ray(
        command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ray(*_: Any, **__: Any) -> None:
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr(placement, "connect", no_ray)
    result = CliRunner().invoke(cli.app, command)
    assert result.exit_code == cli.EXIT_BAD_INPUT, result.output
    assert "'0.0.0.0:9464' is not a loopback address" in result.output
    assert "--metrics-allow-remote" in result.output


def test_help_explains_units_and_defaults() -> None:
    done = CliRunner().invoke(cli.app, ["run", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    text = done.output
    for fragment in ("requests per second", "10s", "closed model", "HOST:PORT:ADDR",
                     "default: 100", "auto", "--insecure", "--nameserver"):
        assert fragment in text, fragment


@pytest.mark.real
def test_report_does_not_import_ray_or_pycurl(tmp_path: Path) -> None:
    from tests.analysis.windows_factory import make_run

    windows, _ = make_run()
    store.save(tmp_path / "r", windows, {"run_id": "r1", "spec": {"http": "2"}})
    code = ("import sys; from rafale.cluster.cli import main; rc = main(['report', sys.argv[1]]); "
            "assert 'ray' not in sys.modules and 'pycurl' not in sys.modules, 'imported'; "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "latency (ms)" in done.stdout


@pytest.mark.slow
def test_matrix_runs_every_valid_combination(target: Target, tmp_path: Path,
                                             ray_head: RayHead) -> None:
    """Every valid cell, compared; with --metrics one endpoint serves every cell's series
    (its own run label) and stays up until a scrape has read the last cell's final values."""
    out = tmp_path / "matrix"
    port = free_port()
    scrapes: list[str] = []
    scraper = threading.Thread(target=scrape_until_closed, args=(port, scrapes), daemon=True)
    scraper.start()
    done = rafale("matrix", target.https_url, "--http", "1.1,3,2c", "--dns", "system",
                  "--duration", "1s", "--rate", "100", "--out", str(out), *target_args(target),
                  "--metrics", f"127.0.0.1:{port}", head=ray_head)
    scraper.join(timeout=20)
    assert done.returncode == 0, done.stderr
    assert "metrics: final values scraped from http://127.0.0.1:" in done.stdout, done.stdout
    final = {(s.name, s.labels.get("run")): s.value
             for family in text_string_to_metric_families(scrapes[-1]) for s in family.samples
             if s.labels.get("outcome") == "completed"}
    for cell in ("http1.1-system-autoactors", "http3-system-autoactors"):
        completed = store.load(out / cell).summary["requests"]["completed"]
        assert final[("rafale_requests_total", cell)] == completed > 0, (cell, final)
    assert "skipped http 2c" in done.stderr
    table = (out / "comparison.md").read_text()
    assert "1.1" in table and "| 3 " in table.replace("|   3", "| 3")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "http1.1-system-autoactors", "http3-system-autoactors"]
    assert store.load(out / "http3-system-autoactors").summary["version"] == {
        "3": store.load(out / "http3-system-autoactors").summary["requests"]["completed"]}
    # The baseline: the other cell against the first (HTTP/1.1), a verdict per metric,
    # printed within 100 columns and written as baseline.md and baseline.csv.
    printed = done.stdout[done.stdout.index("baseline: "):done.stdout.index("full table:")]
    assert printed.startswith("baseline: every cell against the first, "
                              "http1.1-system-autoactors\n"), printed
    assert all(len(line) <= baseline.WIDTH for line in printed.splitlines()), printed
    [cell] = [line for line in printed.splitlines() if line.startswith("http3-")]
    assert len(re.findall(r"better|worse|noise|not comparable", cell)) == 4, cell
    rows = pd.read_csv(out / baseline.BASELINE_CSV)
    assert list(zip(rows["cell"], rows["metric"], strict=True)) == [
        ("http3-system-autoactors", metric) for metric in baseline.METRICS]
    assert set(rows["base_cell"]) == {"http1.1-system-autoactors"}
    assert set(rows["verdict"]) <= set(VERDICTS)
    assert f"wrote {out / baseline.BASELINE_MD}" in done.stdout


@pytest.mark.slow
def test_an_unreachable_rate_keeps_the_duration_and_says_so(
        target: Target, tmp_path: Path, ray_head: RayHead,
        capsys: pytest.CaptureFixture[str]) -> None:
    done = rafale("run", target.https_url, "--rate", "1e9", "--duration", "2s", "--actors", "1",
                  "--timeout", "2s", "--max-in-flight", "50", "--out", str(tmp_path / "fast"),
                  "--no-charts", *target_args(target), head=ray_head)
    assert done.returncode == 0, done.stderr
    assert "target not reached: achieved" in done.stdout, done.stdout
    result = store.load(tmp_path / "fast")
    summary = result.summary
    assert summary["requests"]["dropped"] > 0 and not summary["target"]["reached"]
    assert summary["target"]["rate_per_s"] == 1e9  # the schedule's rate, not counts / time
    # It kept its duration, by what it counted (not by the wall clock, which a loaded
    # machine stretches with the last drain): the engine sends only while the schedule
    # runs: every request went out in seconds 0 and 1 of the 2 s run, but for the loop turn
    # that crossed the end (it sends what was due before it, up to the in-flight cap of 50).
    sent = result.windows.groupby("second")["sent"].sum()
    assert set(sent[sent > 0].index) <= {0, 1, 2} and sent.get(0, 0) > 0, sent
    assert sent.get(2, 0) <= 50, sent
    ran_s = (datetime.fromisoformat(result.meta["ended_at"])
             - datetime.fromisoformat(result.meta["started_at"])).total_seconds()
    assert ran_s >= 2, ran_s

    # A reachable rate, twice in a row (--repeat 2): each run reaches it and says nothing;
    # each is a result directory of its own, listed in repeat.json, and the series'
    # directory stands for its two runs in rafale compare.
    series = tmp_path / "ok"
    done = rafale("run", target.https_url, "--rate", "100", "--duration", "1s", "--actors", "1",
                  "--repeat", "2", "--out", str(series), "--no-charts", *target_args(target),
                  head=ray_head)
    assert done.returncode == 0, done.stderr
    assert "target not reached" not in done.stdout
    assert done.stdout.count("latency (ms)") == 2, done.stdout  # each run's summary
    assert json.loads((series / store.REPEAT_FILE).read_text()) == {"runs": ["1", "2"]}
    run_ids, pids = set(), set()
    for run in ("1", "2"):
        result = store.load(series / run)
        summary = result.summary
        assert summary["requests"]["dropped"] == 0 and summary["target"]["reached"]
        assert summary["requests"]["sent"] == summary["target"]["scheduled"] == 100
        run_ids.add(result.meta["run_id"])
        pids.add(result.meta["actors"][0]["pid"])
    assert len(run_ids) == 2 and len(pids) == 1  # the second run reused the warm sender
    assert side_series(series).labels == (str(series / "1"), str(series / "2"))
    assert cli.main(["compare", str(series), str(series), "--resamples", "100"]) == 0
    assert "within-run noise only (2 vs 2 runs)" in capsys.readouterr().out


@pytest.mark.parametrize(("ended", "passed", "code"), [
    (Ended.COMPLETED, True, 0), (Ended.STOPPED, True, 0),
    (Ended.INTERRUPTED, True, cli_common.EXIT_INTERRUPTED),
    (Ended.INTERRUPTED, False, cli_common.EXIT_INTERRUPTED),
    (Ended.COMPLETED, False, cli_common.EXIT_THRESHOLDS),
    (Ended.THRESHOLD_FAILED, False, cli_common.EXIT_THRESHOLDS),
    (Ended.ABORTED, True, cli_common.EXIT_FAILED),
    (Ended.DRIVER_ERROR, True, cli_common.EXIT_FAILED),
    (Ended.ALL_LOST, True, cli_common.EXIT_FAILED),
])
def test_every_end_has_its_exit_code(ended: Ended, passed: bool, code: int) -> None:
    assert cli_common.exit_code(ended, passed) == code
    # As meta.json holds it (a plain string once saved and loaded), the same code.
    assert cli_common.exit_code(json.loads(json.dumps(ended)), passed) == code
