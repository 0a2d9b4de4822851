"""Tests for actors/stats.py: windows, lossless merging, the vectorised fold, the recorder."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from rafale.actors import hist as stats_hist
from rafale.actors.contract import (
    COUNTERS,
    DIMENSIONS,
    HIST_HIGHEST_US,
    LATENCIES,
    counts_view,
    new_histogram,
    to_batches,
)
from rafale.actors.hist import fold_values
from rafale.actors.stats import Recorder, error_kind
from rafale.analysis.aggregate import Aggregate

CONTRACT_KEYS = ["actor", "second", *COUNTERS, *DIMENSIONS, *LATENCIES]

# ----- error kinds ------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "kind"), [
    (5, "dns"), (6, "dns"),
    (7, "connect"), (45, "connect"), (96, "connect"),
    (35, "tls"), (51, "tls"), (53, "tls"), (54, "tls"), (58, "tls"), (59, "tls"), (60, "tls"),
    (64, "tls"), (66, "tls"), (77, "tls"), (80, "tls"), (82, "tls"), (83, "tls"), (90, "tls"),
    (91, "tls"), (98, "tls"),
    (28, "timeout"),
    (55, "send"),
    (56, "recv"), (52, "recv"), (8, "recv"), (16, "recv"), (92, "recv"), (95, "recv"),
    (18, "recv"), (1, "recv"),
    (47, "other"), (0, "other"), (9999, "other"),
])
def test_error_kind(code: int, kind: str) -> None:
    assert error_kind(code) == kind


# ----- histogram fold ---------------------------------------------------------------------


def _reference(values: list[int]) -> HdrHistogram:
    hist = new_histogram()
    for value in values:
        assert hist.record_value(min(max(value, 1), HIST_HIGHEST_US))
    return hist


def _assert_same_histogram(got: HdrHistogram, want: HdrHistogram) -> None:
    assert got.equals(want)
    assert got.get_total_count() == want.get_total_count()
    assert got.get_min_value() == want.get_min_value()
    assert got.get_max_value() == want.get_max_value()
    assert got.encode() == want.encode()
    for pct in (0, 50, 90, 99, 99.9, 100):
        assert got.get_value_at_percentile(pct) == want.get_value_at_percentile(pct)


EXTREMES = [0, 1, 2, 3, 2047, 2048, 2049, 4095, 4096, 999_999, HIST_HIGHEST_US - 1,
            HIST_HIGHEST_US, HIST_HIGHEST_US + 1, 10**12, -5]


@pytest.mark.parametrize("vector", [True, False], ids=["numpy", "fallback"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fold_equals_record_value(seed: int, vector: bool, monkeypatch: pytest.MonkeyPatch
                                  ) -> None:
    monkeypatch.setattr(stats_hist, "VECTOR_FOLD", vector)
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(8, 2)) for _ in range(5000)] + EXTREMES
    rng.shuffle(values)
    hist = new_histogram()
    fold_values(hist, values[:2000])
    fold_values(hist, values[2000:])  # folding twice accumulates
    _assert_same_histogram(hist, _reference(values))


def test_vector_fold_is_active() -> None:
    assert stats_hist.VECTOR_FOLD, "hdrh internals changed: the fold fell back to record_value"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(-10, 10**10), st.sampled_from(EXTREMES)), max_size=200))
def test_fold_property(values: list[int]) -> None:
    hist = new_histogram()
    fold_values(hist, values)
    _assert_same_histogram(hist, _reference(values))


# ----- windows: round trip and lossless merge ---------------------------------------------

Event = tuple[Any, ...]

events_strategy = st.lists(st.one_of(
    st.tuples(st.just("intended"), st.integers(0, 5)),
    st.tuples(st.just("sent"), st.one_of(st.none(), st.integers(0, 10_000)), st.booleans()),
    st.tuples(st.just("completed"), st.sampled_from([200, 204, 503]),
              st.sampled_from(["1.1", "2", "3"]), st.sampled_from(["127.0.0.1", "::1"]),
              st.integers(0, 10_000), st.integers(0, 10**9), st.integers(0, 10**7),
              st.one_of(st.none(), st.integers(0, 10**7)), st.integers(0, 10**7)),
    st.tuples(st.just("failed"), st.sampled_from([6, 7, 28, 35, 56, 1]),
              st.integers(0, 10**7)),
), max_size=60)


def _apply(rec: Recorder, events: list[Event]) -> None:
    for event in events:
        name, args = event[0], event[1:]
        if name == "intended":
            rec.add_intended(args[0])
        elif name == "sent":
            rec.on_sent(args[0], args[1])
        elif name == "completed":
            rec.on_completed(*args)
        else:
            rec.on_failed(error_kind(args[0]), args[0], args[1])


def _record(events: list[Event], actor: int = 0, in_flight: int = 0, cpu_s: float = 0.0,
            loops: int = 0) -> dict[str, Any]:
    rec = Recorder(actor)
    _apply(rec, events)
    rec.finish(in_flight=in_flight, cpu_s_total=cpu_s, loops_total=loops)
    (data,) = rec.drain()
    return data


SAMPLE: list[Event] = [
    ("intended", 3), ("sent", 300, False), ("sent", 5000, True), ("sent", 2000, False),
    ("completed", 200, "2", "127.0.0.1", 100, 1500, 1200, 700, 1100),
    ("completed", 503, "1.1", "127.0.0.2", 7, 90_000, 80_000, None, 79_000),
    ("failed", 7, 2_000_000),
]


def test_window_data_shape() -> None:
    data = _record(SAMPLE, actor=4, in_flight=2, cpu_s=0.25, loops=9)
    assert list(data) == CONTRACT_KEYS
    assert data["actor"] == 4 and data["second"] == 0
    assert (data["intended"], data["sent"], data["late"]) == (3, 3, 2)  # lag > 1 ms
    assert (data["late_cap"], data["late_loop"], data["dropped"]) == (1, 1, 0)
    lag = HdrHistogram.decode(data["send_lag_us"])
    assert lag.get_total_count() == 3 and lag.get_max_value() == pytest.approx(5000, rel=1e-3)
    failed = HdrHistogram.decode(data["latency_failed_us"])
    assert failed.get_total_count() == 1
    assert failed.get_max_value() == pytest.approx(2_000_000, rel=1e-3)
    assert (data["completed"], data["failed"], data["in_flight"]) == (2, 1, 2)
    assert (data["bytes_in"], data["new_connections"]) == (107, 1)
    assert (data["cpu_s"], data["loops"]) == (0.25, 9)
    assert data["status"] == {"200": 1, "503": 1}
    assert data["error"] == {"connect:7": 1}
    assert data["address"] == {"127.0.0.1": 1, "127.0.0.2": 1}
    assert data["version"] == {"2": 1, "1.1": 1}
    assert isinstance(data["latency_corrected_us"], str)
    corrected = HdrHistogram.decode(data["latency_corrected_us"])
    raw = HdrHistogram.decode(data["latency_raw_us"])
    assert corrected.get_total_count() == raw.get_total_count() == 2
    assert corrected.get_max_value() == pytest.approx(90_000, rel=1e-3)
    assert raw.get_min_value() == pytest.approx(1200, rel=1e-3)
    connect = HdrHistogram.decode(data["connect_us"])  # the new connection's only
    assert connect.get_total_count() == 1
    assert connect.get_max_value() == pytest.approx(700, rel=1e-3)
    ttfb = HdrHistogram.decode(data["ttfb_us"])  # every response's
    assert ttfb.get_total_count() == 2
    assert (ttfb.get_min_value(), ttfb.get_max_value()) == (
        pytest.approx(1100, rel=1e-3), pytest.approx(79_000, rel=1e-3))


def _agg(windows: list[dict[str, Any]]) -> Aggregate:
    agg = Aggregate()
    for window in windows:
        agg.add_window(window)
    return agg


def _same(a: Aggregate, b: Aggregate) -> None:
    assert a.counters == pytest.approx(b.counters)
    assert a.maps == b.maps
    for name in LATENCIES:
        ha, hb = a.hists[name], b.hists[name]
        assert counts_view(ha).tolist() == counts_view(hb).tolist()
        assert (ha.total_count, ha.get_min_value(), ha.get_max_value()) == (
            hb.total_count, hb.get_min_value(), hb.get_max_value())


@pytest.mark.parametrize("events", [[], SAMPLE, SAMPLE * 3], ids=["empty", "sample", "x3"])
def test_round_trip_through_columns(events: list[Event]) -> None:
    """A window converted to the contract's columns and back merges to the same numbers."""
    data = _record(events, actor=1, in_flight=3, cpu_s=0.5, loops=4)
    windows_batch, counts_batch = to_batches([{**data, "node": "n1", "run_id": "r"}])
    (row,) = windows_batch.to_pylist()
    for dimension in DIMENSIONS:
        row[dimension] = {r["key"]: r["count"] for r in counts_batch.to_pylist()
                          if r["dimension"] == dimension}
    assert {k: row[k] for k in data} == data
    _same(_agg([row]), _agg([data]))


def _check_merge(events: list[Event], cut: int) -> None:
    whole = _record(events, in_flight=5, cpu_s=0.75, loops=30)
    a = _record(events[:cut], in_flight=2, cpu_s=0.25, loops=10)
    b = _record(events[cut:], in_flight=3, cpu_s=0.5, loops=20)
    _same(_agg([a, b]), _agg([whole]))
    _same(_agg([a, {**b, "actor": 1}]), _agg([whole]))  # across actors: the same sums


@pytest.mark.parametrize("cut", [0, 1, 3, 5, 7])
def test_merge_equals_record_into_one(cut: int) -> None:
    _check_merge(SAMPLE * 2, cut)


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.integers(0, 60))
def test_merge_property(events: list[Event], cut: int) -> None:
    _check_merge(events, min(cut, len(events)))


def test_merge_many_and_aggregates_add() -> None:
    parts = [SAMPLE[i::3] for i in range(3)]
    datas = [_record(part, actor=i) for i, part in enumerate(parts)]
    whole = _record([e for part in parts for e in part])
    _same(_agg(datas), _agg([whole]))
    added = _agg(datas[:1])
    added.add(_agg(datas[1:]))
    _same(added, _agg([whole]))
    assert added.actors == {0, 1, 2} and added.windows == 3


# ----- recorder ---------------------------------------------------------------------------


def test_a_send_held_by_the_connect_budget_is_late_for_that_cause() -> None:
    rec = Recorder(0)
    rec.on_sent(5_000, True, False, True)  # the budget held it (the cap was full too)
    rec.on_sent(5_000, True, True, True)  # a stalled sender is named first
    rec.on_sent(5_000, True, False, False)  # the in-flight cap
    rec.on_sent(500, False, False, True)  # on time: no cause
    rec.finish(0, 0.0, 0)
    (w,) = rec.drain()
    assert (w["late"], w["late_stall"], w["late_connect"], w["late_cap"], w["late_loop"]) == (
        3, 1, 1, 1, 0)


def test_roll_fills_skipped_seconds() -> None:
    rec = Recorder(3)
    rec.on_sent(0, False)
    rec.roll(0, in_flight=9, cpu_s_total=0.1, loops_total=1)  # same second: nothing
    rec.roll(1, in_flight=1, cpu_s_total=0.5, loops_total=10)
    rec.on_sent(5_000, True)
    rec.on_completed(200, "2", "127.0.0.1", 10, 100, 50, None, 40)
    rec.roll(4, in_flight=2, cpu_s_total=1.25, loops_total=30)
    rec.roll(2, in_flight=0, cpu_s_total=9.0, loops_total=99)  # backwards: ignored
    rec.on_failed("timeout", 28, 10_000_000)
    rec.finish(in_flight=0, cpu_s_total=1.5, loops_total=35)
    rec.finish(in_flight=0, cpu_s_total=9.0, loops_total=99)  # once only
    windows = rec.drain()
    assert rec.drain() == []
    got = [(w["second"], w["sent"], w["completed"], w["failed"], w["in_flight"], w["cpu_s"],
            w["loops"]) for w in windows]
    assert got == [
        (0, 1, 0, 0, 1, 0.5, 10),
        (1, 1, 1, 0, 2, 0.75, 20),
        (2, 0, 0, 0, 2, 0.0, 0),
        (3, 0, 0, 0, 2, 0.0, 0),
        (4, 0, 0, 1, 0, 0.25, 5),
    ]
    assert all(w["actor"] == 3 for w in windows)
    assert HdrHistogram.decode(windows[2]["latency_raw_us"]).get_total_count() == 0


def test_recorder_starting_totals() -> None:
    rec = Recorder(0, second=2, cpu_s_total=1.0, loops_total=100)
    rec.roll(3, in_flight=0, cpu_s_total=1.5, loops_total=150)
    (w,) = rec.drain()
    assert (w["second"], w["cpu_s"], w["loops"]) == (2, 0.5, 50)


def test_drain_from_another_thread_loses_nothing() -> None:
    rec = Recorder(0)
    drained: list[dict[str, Any]] = []
    stop = threading.Event()

    def drainer() -> None:
        while not stop.is_set():
            drained.extend(rec.drain())

    thread = threading.Thread(target=drainer)
    thread.start()
    n, per_second = 60_000, 700
    for i in range(n):
        if i % per_second == 0:
            rec.roll(i // per_second, in_flight=0, cpu_s_total=0.0, loops_total=i)
        rec.add_intended(1)
        rec.on_sent(5_000 if i % 7 == 0 else 10, i % 2 == 0)
        if i % 10 == 0:
            rec.on_failed("connect", 7, 1_000)
        else:
            rec.on_completed(200, "2", "127.0.0.1", 1, i % 5000 + 1, i % 3000 + 1, None,
                            i % 2000 + 1)
    rec.finish(in_flight=0, cpu_s_total=0.0, loops_total=n)
    stop.set()
    thread.join()
    drained.extend(rec.drain())
    seconds = [w["second"] for w in drained]
    assert seconds == list(range(len(seconds)))
    assert sum(w["sent"] for w in drained) == sum(w["intended"] for w in drained) == n
    assert sum(w["failed"] for w in drained) == n // 10
    assert sum(w["completed"] for w in drained) == n - n // 10
    assert sum(w["late"] for w in drained) == len(range(0, n, 7))
    assert sum(w["loops"] for w in drained) == n
    merged = _agg(drained)
    assert merged.hists["latency_raw_us"].get_total_count() == n - n // 10


def test_reused_histograms_do_not_carry_values_between_windows() -> None:
    rec = Recorder(0)
    for second, latency_us in enumerate((1_000, 50_000, 7)):
        rec.roll(second, in_flight=0, cpu_s_total=0.0, loops_total=0)
        for _ in range(10):
            rec.on_sent(0, False)
            rec.on_completed(200, "2", "127.0.0.2", 3, latency_us, latency_us, None,
                            latency_us)
    rec.finish(0, 0.0, 0)
    windows = rec.drain()
    for window, latency_us in zip(windows, (1_000, 50_000, 7), strict=True):
        hist = HdrHistogram.decode(window["latency_raw_us"])
        assert hist.get_total_count() == 10
        assert hist.get_min_value() == hist.get_lowest_equivalent_value(latency_us)
        assert hist.get_max_value() == hist.get_highest_equivalent_value(latency_us)


@pytest.mark.parametrize(("in_flight", "seconds"), [(0, [0, 1, 2]), (3, [0, 1, 2, 3])])
def test_an_idle_last_window_is_dropped(in_flight: int, seconds: list[int]) -> None:
    rec = Recorder(0)
    for second in range(3):
        rec.roll(second, in_flight=0, cpu_s_total=0.0, loops_total=0)
        rec.on_sent(0, False)
        rec.on_completed(200, "2", "127.0.0.2", 3, 100, 90, None, 80)
    rec.roll(3, in_flight=in_flight, cpu_s_total=0.0, loops_total=0)
    rec.finish(in_flight, 0.0, 0)
    assert [w["second"] for w in rec.drain()] == seconds
