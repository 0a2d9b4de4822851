"""The driver's side of a stalled sender (issue 28): the tolerance as an option, the
summary's ``sender`` part and its printed lines, the thresholds and the progress line."""

from __future__ import annotations

import pytest

from rafale.analysis.log import WindowLog
from rafale.analysis.report import _threshold_value
from rafale.analysis.thresholds import ThresholdWatch, evaluate
from rafale.cluster.progress import format_line, snapshot
from rafale.cluster.spec import RunSpec
from rafale.cluster.threshold_syntax import parse_thresholds
from tests.analysis.test_sender import SHAPE, stalled_run
from tests.analysis.windows_factory import make_run

URL = "https://x.test/"


@pytest.mark.parametrize(("given", "seconds"), [("80ms", 0.08), ("1s", 1.0), (0.2, 0.2)])
def test_stall_after_reaches_every_engine(given: object, seconds: float) -> None:
    spec = RunSpec.parse(URL, rate_per_s=10, stall_after_s=given)
    assert spec.stall_after_s == seconds
    assert spec.engine_config(0, 1, ()).stall_after_s == seconds
    assert RunSpec.parse(URL).stall_after_s == 0.05  # the default


@pytest.mark.parametrize("bad", ["0ms", "-1s", "soon", "nan", float("inf"), None])
def test_a_bad_stall_after_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="stall_after"):
        RunSpec.parse(URL, rate_per_s=10, stall_after_s=bad)


def test_sender_thresholds_fail_a_run_whose_sender_was_the_bottleneck() -> None:
    windows = stalled_run()
    total = WindowLog.of(windows).total()
    results = evaluate(parse_thresholds(["sender_stall_s<1s", "sender_stall_s<3s",
                                         "runq_wait_share<10%", "runq_wait_share<20%"]),
                       total)
    assert [r["passed"] for r in results] == [False, True, False, True]
    assert results[0]["value"] == 2_320_000.0  # µs, as latencies
    assert results[2]["value"] == pytest.approx(total.counters["runq_wait_us"] / 16e6)
    assert _threshold_value(results[0]) == "2.32 s"
    healthy = WindowLog.of(make_run(SHAPE)[0]).total()
    assert all(r["passed"] for r in evaluate(parse_thresholds(["sender_stall_s<1ms"]),
                                             healthy))


def test_rolling_windows_catch_the_stalled_stretch() -> None:
    watch = ThresholdWatch(parse_thresholds(["runq_wait_share[2s]<20%"]))
    log = WindowLog(open_s=0)
    log.on_seal = watch.add_second
    log.append(stalled_run())
    log.seal_all()
    # Two actors: a 2 s window holds four windows; seconds 2-3 and 3-4 are over 20 %.
    assert watch.failed_windows == {"runq_wait_share[2s]<20%": [2, 3]}


def test_the_progress_line_names_a_stalled_actor() -> None:
    log = WindowLog()
    windows = stalled_run()
    log.append([w for w in windows if w["second"] <= 4])
    shot = snapshot(log, elapsed_s=5.0, total_s=8.0, state="running", actors_alive=2,
                    actors_total=2)
    assert shot.stalled == ("actor 0: stalled 2.2 s (run-queue wait 72%)",)
    assert format_line(shot).endswith("  actor 0: stalled 2.2 s (run-queue wait 72%)")
    log.append([w for w in windows if w["second"] > 4])  # actor 0 fine again, 1 stalled at 6
    later = snapshot(log, elapsed_s=8.0, total_s=8.0, state="running", actors_alive=2,
                     actors_total=2)
    assert later.stalled == ("actor 1: stalled 0.1 s (run-queue wait 3%)",)
    quiet = WindowLog.of(make_run(SHAPE)[0])
    assert snapshot(quiet, elapsed_s=8.0, total_s=8.0, state="running", actors_alive=2,
                    actors_total=2).stalled == ()
