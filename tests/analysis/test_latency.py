"""The numpy percentiles and mean equal hdrh's own, on any histogram of the contract."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rafale.actors.contract import HIST_HIGHEST_US, new_histogram
from rafale.analysis.latency import counts_at_or_below, latency_summary, mean, percentiles

PCTS = [0.0, 0.1, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]


# 20 examples: each costs ~0.2 s (hdrh's own percentile walks every bucket in Python).
@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(1, HIST_HIGHEST_US), st.integers(1, 1000)),
                min_size=1, max_size=40))
def test_percentiles_and_mean_equal_hdrh(values: list[tuple[int, int]]) -> None:
    hist = new_histogram()
    for value, count in values:
        hist.record_value(value, count)
    assert percentiles(hist, PCTS) == {p: hist.get_value_at_percentile(p) for p in PCTS}
    assert mean(hist) == hist.get_mean_value()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, HIST_HIGHEST_US), st.integers(1, 1000)),
                min_size=0, max_size=40),
       st.lists(st.integers(0, HIST_HIGHEST_US), min_size=1, max_size=8))
def test_counts_at_bucket_tops_are_the_exact_counts_of_the_values(
        values: list[tuple[int, int]], nominal_us: list[int]) -> None:
    """At an edge that tops an HdrHistogram bucket, the count is that of the values
    recorded at or below it: no estimate."""
    hist = new_histogram()
    for value, count in values:
        hist.record_value(value, count)
    edges = sorted({int(hist.get_highest_equivalent_value(v)) for v in nominal_us})
    expected = [sum(c for v, c in values if v <= edge) for edge in edges]
    assert counts_at_or_below(hist, edges) == expected


def test_empty_histogram_has_no_values() -> None:
    hist = new_histogram()
    assert percentiles(hist, [50, 99]) == {50.0: None, 99.0: None}
    assert mean(hist) is None
    assert latency_summary(hist) == {"count": 0, "mean": None, "p50": None, "p90": None,
                                     "p99": None, "p99.9": None, "max": None}
