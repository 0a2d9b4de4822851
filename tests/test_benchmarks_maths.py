"""The harness's maths, without traffic: every expected value is computed by hand."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from benchmarks import compare_example, run, table, wakeup
from benchmarks.accuracy import AccuracyRound, summarize
from benchmarks.cpu import CpuSample, cpu_at, window
from benchmarks.peers import prorated
from benchmarks.shapes import Measurement, shape_named
from benchmarks.summary import (
    CLIENTS,
    ShapeSummary,
    median,
    ratios,
    summarize_rates,
    summarize_shapes,
)
from rafale.actors.contract import encode, new_histogram


def m(client: str, round_: int, succeeded: int, cpu_us_per_req: float = 10.0,
      failed: int = 0, duration_s: float = 1.0, shape: str = "h1-100") -> Measurement:
    return Measurement(client, shape, round_, duration_s, succeeded, failed,
                       cpu_s=cpu_us_per_req * succeeded / 1e6)


# ----- medians and per-round ratios ------------------------------------------------------


@pytest.mark.parametrize(("values", "expected"), [
    ([3.0, 1.0, 2.0], 2.0),
    ([1.0, 2.0, 3.0, 10.0], 2.5),
    ([3.0, math.nan, 1.0, 2.0], 2.0),  # NaN is left out, not sorted anywhere
    ([7.0], 7.0),
])
def test_median(values: list[float], expected: float) -> None:
    assert median(values) == expected


def test_median_of_nothing_is_nan() -> None:
    assert math.isnan(median([])) and math.isnan(median([math.nan]))


def test_ratios_pair_the_same_round_only() -> None:
    mine = [m("rafale", 0, 90), m("rafale", 1, 100), m("rafale", 2, 30)]
    theirs = [m("libcurl-c", 1, 200), m("libcurl-c", 0, 100), m("libcurl-c", 3, 50)]
    # round 0: 90/100, round 1: 100/200; round 2 has no partner, round 3 no rafale
    assert ratios(mine, theirs, lambda x: x.req_per_s) == pytest.approx([0.9, 0.5])


def test_ratios_skip_a_zero_or_nan_denominator() -> None:
    mine = [m("rafale", 0, 90), m("rafale", 1, 80)]
    theirs = [m("libcurl-c", 0, 0), m("libcurl-c", 1, 40)]
    assert ratios(mine, theirs, lambda x: x.req_per_s) == [2.0]
    # libcurl-c's round 0 has no request: its CPU per request is NaN, not a ratio
    assert ratios(mine, theirs, lambda x: x.cpu_us_per_req) == [1.0]


def test_summary_ratio_is_the_median_of_per_round_ratios_not_of_medians() -> None:
    results = [
        m("rafale", 0, 90, cpu_us_per_req=10), m("libcurl-c", 0, 100, cpu_us_per_req=10),
        m("rafale", 1, 100, cpu_us_per_req=20), m("libcurl-c", 1, 200, cpu_us_per_req=10),
        m("rafale", 2, 30, cpu_us_per_req=30, failed=2),
        m("libcurl-c", 2, 60, cpu_us_per_req=10),
        m("wrk", 0, 120, cpu_us_per_req=5, failed=1),
    ]
    [row] = summarize_shapes([shape_named("h1-100")], results)
    # req ratios per round 0.9, 0.5, 0.5 -> 0.5 (the ratio of medians would be 90/100 = 0.9)
    assert row.req_ratio == pytest.approx(0.5)
    # CPU ratios per round 1, 2, 3 -> 2
    assert row.cpu_ratio == pytest.approx(2.0)
    assert [c.client for c in row.clients] == ["libcurl-c", "rafale", "wrk"]
    rafale = row.figures("rafale")
    assert rafale is not None
    assert (rafale.rounds, rafale.req_per_s, rafale.failed) == (3, 90.0, 2)
    assert rafale.cpu_us_per_req == pytest.approx(20.0)
    assert row.req_met() is False and row.cpu_met() is False and row.met() is False
    assert row.figures("h2load") is None


def test_goals_met_at_their_bounds_and_unknown_without_reference() -> None:
    # 95/100 = 0.95 (goal >= 0.95) and 11/10 = 1.1 (goal <= 1.10): both met
    results = [m("rafale", 0, 95, cpu_us_per_req=11), m("libcurl-c", 0, 100, cpu_us_per_req=10)]
    [row] = summarize_shapes([shape_named("h1-100")], results)
    assert row.req_met() is True and row.cpu_met() is True and row.met() is True
    [alone] = summarize_shapes([shape_named("h1-100")], results[:1])
    assert math.isnan(alone.req_ratio) and alone.met() is None


def test_the_floor_splits_the_cpu_gap_per_round() -> None:
    results = [
        m("rafale", 0, 90, cpu_us_per_req=15), m("libcurl-c", 0, 100, cpu_us_per_req=10),
        m("pycurl-floor", 0, 95, cpu_us_per_req=12),
        m("rafale", 1, 90, cpu_us_per_req=30), m("libcurl-c", 1, 100, cpu_us_per_req=20),
        m("pycurl-floor", 1, 95, cpu_us_per_req=30),
    ]
    [row] = summarize_shapes([shape_named("h1-100")], results)
    assert [c.client for c in row.clients] == ["libcurl-c", "rafale", "pycurl-floor"]
    assert row.floor_cpu_ratio == pytest.approx((1.2 + 1.5) / 2)  # floor / libcurl-c
    assert row.over_floor_cpu_ratio == pytest.approx((1.25 + 1.0) / 2)  # rafale / floor
    assert ShapeSummary.from_data(row.to_data()) == row
    without = {k: v for k, v in row.to_data().items() if "floor" not in k}  # an older file
    assert math.isnan(ShapeSummary.from_data(without).floor_cpu_ratio)


def test_summary_round_trips_through_its_data() -> None:
    results = [m("rafale", 0, 95), m("libcurl-c", 0, 100)]
    [row] = summarize_shapes([shape_named("h1-100")], results)
    assert ShapeSummary.from_data(row.to_data()) == row


# ----- CPU over a wall-clock window ------------------------------------------------------


SAMPLES = [CpuSample(10.0, 0.0), CpuSample(11.0, 0.5), CpuSample(13.0, 1.5)]


@pytest.mark.parametrize(("at", "expected"), [
    (10.0, 0.0), (10.5, 0.25), (11.0, 0.5), (12.0, 1.0), (12.5, 1.25),
    (9.0, 0.0),  # before launch: nothing used
    (20.0, 1.5),  # after the last (exit) sample: no more CPU
])
def test_cpu_at_interpolates_between_samples(at: float, expected: float) -> None:
    assert cpu_at(SAMPLES, at) == pytest.approx(expected)


def test_window_subtracts_the_start_from_the_end() -> None:
    w = window(list(reversed(SAMPLES)), 10.5, 12.5)  # any order
    assert w.cpu_s == pytest.approx(1.25 - 0.25)
    assert w.wall_s == pytest.approx(2.0) and w.samples == 3


def test_window_after_exit_counts_only_what_ran_inside_it() -> None:
    # exited at 13 s with 1.5 s used: the window 12..14 holds 1.5 - 1.0
    assert window(SAMPLES, 12.0, 14.0).cpu_s == pytest.approx(0.5)
    assert window(SAMPLES, 14.0, 15.0).cpu_s == 0.0


def test_window_with_two_samples_at_one_instant() -> None:
    samples = [CpuSample(0.0, 0.0), CpuSample(1.0, 0.4), CpuSample(1.0, 0.6)]
    assert cpu_at(samples, 1.0) == pytest.approx(0.4)  # the first pair that spans it
    assert window(samples, 0.0, 2.0).cpu_s == pytest.approx(0.6)


def test_window_rejects_a_reversed_window_and_no_samples() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        window(SAMPLES, 12.0, 11.0)
    with pytest.raises(ValueError, match="no CPU samples"):
        cpu_at([], 1.0)


@pytest.mark.parametrize(("whole", "duration_s", "run_s", "expected"), [
    (3000, 1.0, 3.0, 1000),  # 1 s of a 3 s run at its mean rate
    (20900, 1.0, 2.03, 10296),  # 20900 / 2.03 = 10295.6 -> 10296
    (10, 5.0, 2.0, 10),  # never more than the whole run
    (10, 1.0, 0.0, 0),
])
def test_prorated(whole: int, duration_s: float, run_s: float, expected: int) -> None:
    assert prorated(whole, duration_s, run_s) == expected


# ----- rate accuracy summaries -----------------------------------------------------------


def lag_histogram(values_us: Sequence[int]) -> str:
    hist = new_histogram()
    for value in values_us:
        hist.record_value(value)
    return encode(hist)


def accuracy_round(round_: int, sent: int, intended: int, ideal: int,
                   deviations: tuple[float, ...], lag_us: tuple[int, ...], *, failed: int = 0,
                   late: int = 0, cpu_s: float = 0.0) -> AccuracyRound:
    return AccuracyRound(rate_per_s=1000.0, round=round_, seconds=len(deviations),
                         intended=intended, sent=sent, ideal=ideal, completed=sent,
                         failed=failed, late=late, cpu_s=cpu_s, deviations=deviations,
                         send_lag=lag_histogram(lag_us))


def test_accuracy_summary() -> None:
    rounds = [
        accuracy_round(0, 1990, 2000, 2000, (0.01, 0.0), (1000, 1000, 1000), failed=1,
                       late=3, cpu_s=0.02),
        accuracy_round(1, 2000, 2000, 1990, (0.02, 0.04), (2000,), cpu_s=0.03),
        accuracy_round(2, 2010, 2000, 2010, (0.0, 0.01), (), late=1, cpu_s=0.05),
    ]
    s = summarize(rounds)
    assert s.rounds == 3 and s.sent == 6000
    assert s.achieved_per_s == 1000.0  # medians of 995, 1000, 1005
    assert s.run_error == pytest.approx(0.005)  # median of 0.005, 0, 0.005
    assert s.schedule_error == pytest.approx(0.005)  # median of 10/2000, 10/1990, 0
    assert s.mean_deviation == pytest.approx(0.005)  # median of 0.005, 0.03, 0.005
    assert s.worst_deviation == pytest.approx(0.04)
    # pooled sorted 0, 0, 0.01, 0.01, 0.02, 0.04: p99 at index 4.95 -> 0.02 + 0.95 × 0.02
    assert s.p99_deviation == pytest.approx(0.039)
    assert (s.failed, s.late) == (1, 4)
    assert s.late_share == pytest.approx(4 / 6000)
    assert s.cpu_us_per_req == pytest.approx(0.10 * 1e6 / 6000)
    assert (s.lag_p50_us, s.lag_p99_us, s.lag_max_us) == (1000, 2000, 2000)
    assert s.met() is False  # p99 0.039 > 0.02
    assert s.met(p99_limit=0.04) is True and s.met(0.004, 0.04) is False


def test_accuracy_summary_without_lag_and_of_nothing() -> None:
    s = summarize([accuracy_round(0, 500, 1000, 1000, (0.5,), ())])
    assert (s.lag_p50_us, s.lag_p99_us, s.lag_max_us) == (None, None, None)
    assert s.run_error == 0.5 and s.p99_deviation == 0.5
    with pytest.raises(ValueError):
        summarize([])


def test_summarize_rates_one_summary_per_rate_in_order() -> None:
    fast = accuracy_round(0, 100, 100, 100, (0.0,), ())
    slow = dataclasses.replace(fast, rate_per_s=10.0)
    summaries = summarize_rates([fast, slow, fast])
    assert [(s.rate_per_s, s.rounds) for s in summaries] == [(10.0, 1), (1000.0, 2)]


def test_rates_compare_cpu_per_request_sent_with_libcurl_in_the_same_round() -> None:
    mine = [accuracy_round(0, 1000, 1000, 1000, (0.0,), (), cpu_s=0.2),  # 200 µs/req
            accuracy_round(1, 1000, 1000, 1000, (0.0,), (), cpu_s=0.3)]  # 300 µs/req
    def c_rate(round_: int, cpu_s: float, sent: int, rate: float = 1000.0) -> Measurement:
        return Measurement("libcurl-c", "rate-h2-4x100", round_, 1.0, sent, 0, cpu_s,
                           extra={"sent": sent, "rate_per_s": rate})
    theirs = [c_rate(0, 0.1, 1000), c_rate(1, 0.3, 2000), c_rate(0, 9.0, 10, rate=5.0)]
    [row] = summarize_rates(mine, theirs)
    assert row.reference_cpu_us_per_req == pytest.approx(125.0)  # median of 100 and 150
    assert row.cpu_ratio == pytest.approx((2.0 + 2.0) / 2)  # 200/100 and 300/150
    [alone] = summarize_rates(mine)
    assert math.isnan(alone.reference_cpu_us_per_req) and math.isnan(alone.cpu_ratio)
    assert "libcurl-c CPU µs/req" in table.rates_table([row])
    assert "libcurl-c CPU µs/req" not in table.rates_table([alone])


# ----- run's client plan and the results file's name -------------------------------------


def test_clients_rotate_by_round_among_those_that_apply() -> None:
    h1, h3 = shape_named("h1-100"), shape_named("h3-1x100")
    every = list(run.APPLIES)
    assert run.clients_for(h1, every, 0) == ["libcurl-c", "rafale", "pycurl-floor", "h2load",
                                             "wrk", "locust"]
    assert run.clients_for(h1, every, 2) == ["pycurl-floor", "h2load", "wrk", "locust",
                                             "libcurl-c", "rafale"]
    assert run.clients_for(h3, every, 0) == ["libcurl-c", "rafale", "pycurl-floor"]
    assert run.clients_for(h3, every, 1) == ["rafale", "pycurl-floor", "libcurl-c"]
    assert run.needed_clients(every, [h3]) == ["libcurl-c", "rafale", "pycurl-floor"]


def test_every_client_has_a_rule_and_a_column() -> None:
    assert tuple(run.APPLIES) == CLIENTS


def test_results_file_name() -> None:
    assert run.results_name("2026-11-27", "bench host/1") == "2026-11-27-bench_host_1.json"


def test_latest_results_file_is_the_last_by_name(tmp_path: Path) -> None:
    directory = tmp_path
    for name in ("2026-11-27-b.json", "2026-11-28-a.json", "latest.json", "notes.md"):
        (directory / name).write_text("{}")
    assert table.latest_file(directory).name == "2026-11-28-a.json"
    assert [p.name for p in table.results_files(directory)] == [
        "2026-11-27-b.json", "2026-11-28-a.json"]


# ----- the wake-up cost probe ------------------------------------------------------------


def test_wakeup_probe_prints_one_line_per_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert wakeup.main(["--turns", "50", "--sleeps-ms", "0,0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].strip() for line in lines] == ["back to back",
                                                               "after a 0.2 ms sleep"]
    assert all(float(line.split(":")[1].split()[0]) > 0 for line in lines)
    with pytest.raises(SystemExit):
        wakeup.main(["--sleeps-ms", "fast"])


def test_the_readme_comparison_is_what_compare_says_of_the_committed_runs() -> None:
    """README's real comparison (benchmarks/compare_example.py): comparing the committed
    runs again with the recorded seed gives the committed rows; the 2 ms the target added
    is found in the median, and no error appears."""
    data = json.loads((compare_example.ROOT / "docs" / "results"
                       / compare_example.RESULTS_NAME).read_text())
    assert compare_example.rows(compare_example.table()) == data["rows"]
    verdicts = {row["metric"]: row["verdict"] for row in data["rows"]}
    assert verdicts["latency.p50"] == "worse"
    assert verdicts["error_rate"] == "no significant change"
    assert data["runs_a_side"] == 3 and "between-run" in data["interval"]
