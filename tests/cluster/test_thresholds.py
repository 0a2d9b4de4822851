"""Thresholds: parsing (valid and invalid, with the error's position), exact evaluation on
merged histograms of synthetic windows (whole run, rolling windows, per-tag scope), and real
runs through the CLI that pass (exit 0), fail (exit 99) and abort early."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from rafale.actors.contract import LATENCY_CORRECTED
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.latency import percentiles
from rafale.analysis.log import WindowLog
from rafale.analysis.thresholds import ThresholdWatch, evaluate
from rafale.cluster.spec import RunSpec
from rafale.cluster.target import Target
from rafale.cluster.threshold_syntax import parse_threshold
from tests.analysis.windows_factory import RunShape, make_run, make_window
from tests.helpers import rafale, target_args
from tests.rayhead import RayHead


@pytest.mark.parametrize(("text", "metric", "op", "limit", "scope", "window", "abort"), [
    ("p99<250ms", "latency.p99", "<", 250_000.0, None, None, False),
    ("p99.9 <= 1s", "latency.p99.9", "<=", 1_000_000.0, None, None, False),
    ("latency_raw.p50<800us", "latency_raw.p50", "<", 800.0, None, None, False),
    ("send_lag.p99<5ms", "send_lag.p99", "<", 5000.0, None, None, False),
    ("connect.p99<100ms", "connect.p99", "<", 100_000.0, None, None, False),
    ("ttfb.p50[10s]<=20ms", "ttfb.p50", "<=", 20_000.0, None, 10, False),
    ("max<2", "latency.max", "<", 2000.0, None, None, False),  # ms by default
    ("error_rate<1%", "error_rate", "<", 0.01, None, None, False),
    ("status_5xx_rate<0.5%", "status_5xx_rate", "<", 0.005, None, None, False),
    ("rate>=99%", "rate", ">=", 0.99, None, None, False),
    ("late_rate<0.1", "late_rate", "<", 0.1, None, None, False),
    ("dropped<=0", "dropped", "<=", 0.0, None, None, False),
    ("p99[tag=checkout][10s]<400ms", "latency.p99", "<", 400_000.0, ("tag", "checkout"), 10,
     False),
    ("share[address=127.0.0.3]>=40%", "share", ">=", 0.4, ("address", "127.0.0.3"), None,
     False),
    ("p99<250ms:abort", "latency.p99", "<", 250_000.0, None, None, True),
    ("error_rate[1m]<5%:abort-after=5s", "error_rate", "<", 0.05, None, 60, True),
    ("sender_stall_s<1s", "sender_stall_s", "<", 1_000_000.0, None, None, False),
    ("sender_stall_s<=500ms", "sender_stall_s", "<=", 500_000.0, None, None, False),
    ("sender_stall_s<2", "sender_stall_s", "<", 2_000_000.0, None, None, False),  # s
    ("runq_wait_share[5s]<20%", "runq_wait_share", "<", 0.2, None, 5, False),
])
def test_valid_expressions_parse(text: str, metric: str, op: str, limit: float,
                                 scope: tuple[str, str] | None, window: int | None,
                                 abort: bool) -> None:
    threshold = parse_threshold(text)
    assert (threshold.metric, threshold.op, threshold.limit, threshold.scope,
            threshold.window_s, threshold.abort) == (metric, op, limit, scope, window, abort)


@pytest.mark.parametrize(("text", "position", "message"), [
    ("p99<<250ms", 4, "expected METRIC"),
    ("p99 250ms", 4, "expected METRIC"),
    ("foo<1", 0, "unknown metric 'foo'"),
    ("p100<1ms", 0, "unknown metric"),
    ("latency.p0<1ms", 8, "not between 0 and 100"),
    ("latency.median<1ms", 8, "unknown statistic"),
    ("p99[tag=a][0s]<1ms", 11, "window '0s'"),
    ("p99[color=red]<1ms", 4, "scope 'color=red'"),
    ("p99[address=1.2.3.4]<1ms", 3, "works with share only"),
    ("share<5%", 5, "share needs a scope"),
    ("p99<5%", 5, "not %"),
    ("error_rate<1ms", 12, "is a rate"),
    ("dropped<1%", 9, "no unit"),
    ("p99<1ms:explode", 8, "unknown option 'explode'"),
    ("sender_stall_s<5%", 16, "is a time"),
    ("runq_wait_share<5ms", 17, "is a rate"),
    ("sender_stall_s[tag=a]<1s", 14, "counted per run, not per tag"),
    ("ttfb.p99[tag=a]<1s", 8, "from the intended send time only"),
    ("handshake.p99<1s", 0, "unknown latency 'handshake'; expected latency, latency_raw, "
                            "send_lag, connect, ttfb"),
])
def test_bad_expressions_name_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_threshold(text)
    assert f"at position {position}" in str(caught.value)
    pointer = str(caught.value).splitlines()[-1]
    assert pointer.index("^") - 2 == position


def test_a_bad_expression_is_refused_by_the_spec() -> None:
    with pytest.raises(ValueError, match="threshold 'p99<<1ms'"):
        RunSpec.parse(urls="https://rafale.test/", rate_per_s=10, thresholds=("p99<<1ms",))


def aggregate(windows: list[dict[str, Any]]) -> Aggregate:
    total = Aggregate()
    for window in windows:
        total.add_window(window)
    return total


def test_latency_and_rates_are_exact_on_merged_histograms() -> None:
    windows, samples = make_run(RunShape(actors=3, seconds=6))
    total = WindowLog.of(windows).total()
    p99 = percentiles(total.hists[LATENCY_CORRECTED], (99.0,))[99.0]
    assert p99 is not None
    passing = parse_threshold(f"p99<={p99}us")
    failing = parse_threshold(f"p99<{p99}us")
    [ok, bad] = evaluate((passing, failing), total)
    assert ok["value"] == bad["value"] == p99 and ok["passed"] and not bad["passed"]
    finished = sum(w["completed"] + w["failed"] for w in windows)
    failed = sum(w["failed"] for w in windows)
    [rate] = evaluate((parse_threshold("error_rate<100%"),), total)
    assert rate["value"] == pytest.approx(failed / finished)
    [sent] = evaluate((parse_threshold("rate>=100%"),), total)
    assert sent["value"] == 1.0 and sent["passed"]  # the factory sends all that is due
    # connect: the new connections' histogram only; ttfb: every response's
    connect, ttfb = (total.hists[name] for name in ("connect_us", "ttfb_us"))
    [slow_connect, fast_ttfb] = evaluate((parse_threshold("connect.max<1ms"),
                                          parse_threshold("ttfb.p50<1s")), total)
    assert slow_connect["value"] == connect.get_max_value() > 1000 and not slow_connect["passed"]
    assert fast_ttfb["value"] == ttfb.get_value_at_percentile(50) and fast_ttfb["passed"]


def test_rolling_windows_catch_a_bad_stretch_that_the_whole_run_hides() -> None:
    fast, slow = [1_000] * 100, [900_000] * 100  # 1 ms, 900 ms
    windows = [make_window(0, s, slow if s in (5, 6) else fast, fast) for s in range(20)]
    watch = ThresholdWatch((parse_threshold("p50[3s]<100ms"), parse_threshold("p50<100ms")))
    log = WindowLog(open_s=0)
    log.on_seal = watch.add_second
    for window in windows:
        log.append([window])
    log.seal_all()
    [windowed, whole] = evaluate(watch.thresholds, log.total(), watch.failed_windows)
    assert whole["passed"]  # 10 % slow seconds: the median is fast
    assert not windowed["passed"]
    # Windows of 3 s that hold second 5 or 6 have a slow median only if 2 of 3 are slow.
    assert watch.failed_windows["p50[3s]<100ms"] == [4, 5]
    assert windowed["first_failed_window_s"] == 4 and windowed["failed_windows"] == 2


def test_tag_scope_uses_the_tag_histogram_and_counts() -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=3))
    total = aggregate(windows)
    t0 = [w for w in windows if w["actor"] % 2 == 0]
    p99_t0 = percentiles(aggregate(t0).hists[LATENCY_CORRECTED], (99.0,))[99.0]
    [result] = evaluate((parse_threshold("p99[tag=t0]<10s"),), total)
    assert result["value"] == p99_t0
    [share] = evaluate((parse_threshold("share[tag=t0]>=0%"),), total)
    done_t0 = sum(w["completed"] for w in t0)
    assert share["value"] == pytest.approx(done_t0 / sum(w["completed"] for w in windows))
    [missing] = evaluate((parse_threshold("p99[tag=nope]<1ms"),), total)
    assert missing["value"] is None and missing["passed"]


def rafale_run(target: Target, head: RayHead, *args: str) -> subprocess.CompletedProcess[str]:
    return rafale("run", target.https_url, *target_args(target), "--actors", "1", "--quiet",
                  "--no-charts", *args, head=head)


@pytest.mark.slow
def test_runs_pass_fail_and_abort_with_their_exit_codes(target: Target, tmp_path: Path,
                                                        ray_head: RayHead) -> None:
    passed = rafale_run(target, ray_head, "--rate", "100", "--duration", "2s", "--out",
                        str(tmp_path / "pass"), "--threshold", "p99<10s",
                        "--threshold", "error_rate<1%", "--threshold", "rate>=95%")
    assert passed.returncode == 0, passed.stderr
    assert "thresholds: 3 passed, 0 failed" in passed.stdout
    assert "Token authentication" not in passed.stderr  # Ray's start-up notice is silenced
    summary = json.loads((tmp_path / "pass" / "summary.json").read_text())
    assert summary["thresholds_passed"] and len(summary["thresholds"]) == 3

    # A failed threshold fails the run (exit 99), and ':abort' ends it early; the others
    # are still judged.
    aborted = rafale_run(target, ray_head, "--rate", "100", "--duration", "30s", "--out",
                         str(tmp_path / "abort"), "--threshold", "p99<1us:abort",
                         "--threshold", "error_rate<1%")
    assert aborted.returncode == 99, aborted.stderr
    assert "FAIL  p99<1us" in aborted.stdout and "pass  error_rate<1%" in aborted.stdout
    meta = json.loads((tmp_path / "abort" / "meta.json").read_text())
    assert meta["ended"] == "threshold failed"
    assert any("threshold p99<1us:abort failed" in note for note in meta["notes"])
    # Stopped well before its 30 s: the run's own span as the driver recorded it (not the
    # process's wall time, which a busy machine stretches with Ray's start-up).
    ran_s = (datetime.fromisoformat(meta["ended_at"])
             - datetime.fromisoformat(meta["started_at"])).total_seconds()
    assert ran_s < 15, ran_s
