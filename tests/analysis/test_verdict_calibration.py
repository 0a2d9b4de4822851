"""rafale compare's calibration on a recorded run (docs/results/compare/recorded): noise is
seldom called a change (A/A), a known change is found (A/B). Pure numpy over the
recording's per-second histograms, 200 pairs a case; the same function writes
docs/results/compare_calibration.json (benchmarks/compare_calibration.py), and the committed
figures are checked to be what the recording gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import compare_calibration as calibration
from rafale.analysis import store
from rafale.analysis.verdict.series import Series, series_of

# 200 pairs a case: seconds, not milliseconds. Not traced for line coverage: the same
# functions are covered by tests/analysis/test_verdict.py, and tracing 400 verdicts cost
# a sixth more CPU (15.0 against 17.7 CPU-s alone, measured).
pytestmark = [pytest.mark.slow, pytest.mark.no_cover]

RESULTS = calibration.ROOT / "docs" / "results" / calibration.RESULTS_NAME


@pytest.fixture(scope="module")
def recorded() -> Series:
    return series_of(store.load(calibration.RECORDING))


@pytest.fixture(scope="module")
def committed() -> dict[str, dict[str, object]]:
    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    return {str(case["mode"]): case for case in data["cases"]}


def test_independent_seconds_noise_is_seldom_a_change_and_a_shift_is_found(
        recorded: Series, committed: dict[str, dict[str, object]]) -> None:
    """Sides of 30 s drawn second by second from the recording (the interval's own
    assumption): at most 5 % of the verdicts call noise a change; the median latency x1.15
    and errors +1 % are both found in at least 95 % of the pairs."""
    found = calibration.calibrate(recorded, "seconds", pairs=200, seconds=30)
    assert found["aa_false_positive_share"] <= 0.05
    assert found["ab_detection_share"] >= 0.95
    assert found["ab_detected_by_metric"]["error_rate"] == 1.0
    case = committed["seconds"]
    assert (case["aa_false_positive_share"], case["ab_detection_share"]) == (
        found["aa_false_positive_share"], found["ab_detection_share"])


def test_three_runs_a_side_cover_the_noise_between_runs(
        recorded: Series, committed: dict[str, dict[str, object]]) -> None:
    """Three stretches of 15 s a side, from different times of the recording (its slow
    spells included): the hierarchical interval calls noise a change in at most 5 % of the
    verdicts, and still finds the errors every time. (One stretch a side, within-run noise
    only, calls it a change far more often: the committed figures say how much.)"""
    found = calibration.calibrate(recorded, "stretches3", pairs=200, seconds=15)
    assert found["aa_false_positive_share"] <= 0.05
    assert found["ab_detected_by_metric"]["error_rate"] == 1.0
    assert committed["stretches3"]["aa_false_positive_share"] == found[
        "aa_false_positive_share"]
    assert committed["stretches"]["aa_false_positive_share"] > 0.05  # why runs are needed


def test_the_shift_moves_every_percentile_by_the_factor(recorded: Series) -> None:
    """The A/B candidate is what it says: latencies x1.15 (to the histogram's precision)
    and 1 % more of the finished requests failed."""
    shifted = calibration.shifted(recorded)
    weights = np.ones((1, recorded.seconds))
    for name in ("latency_corrected_us", "latency_raw_us"):
        before, after = recorded.hists[name], shifted.hists[name]
        pcts = (50.0, 90.0, 99.0)
        old = calibration.bootstrap_percentiles(weights, before, pcts)
        new = calibration.bootstrap_percentiles(weights, after, pcts)
        assert new == pytest.approx(old * 1.15, rel=0.01)
        assert after.counts.sum() == before.counts.sum()
    finished = recorded.counters["completed"] + recorded.counters["failed"]
    added = shifted.counters["failed"].sum() - recorded.counters["failed"].sum()
    assert added == pytest.approx(0.01 * finished.sum(), rel=0.01)
