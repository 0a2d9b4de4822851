"""Tests for actors/pacing.py: schedules, due times, striping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rafale.actors.pacing import Pacer, Schedule, Stage, StripedPacer, UnlimitedPacer

# ----- tables -----------------------------------------------------------------------------

CASES = [
    # (id, schedule, total, {k: expected time_of(k)})
    ("constant", Schedule.constant(10, 1), 10, {0: 0.0, 1: 0.1, 5: 0.5, 9: 0.9}),
    ("constant-fraction", Schedule.constant(2.5, 2), 5, {0: 0.0, 1: 0.4, 4: 1.6}),
    ("ramp-from-zero", Schedule.ramp_then_constant(100, 2, 2), 100,
     {0: 0.0, 1: math.sqrt(2 / 50), 25: 1.0, 99: math.sqrt(2 * 99 / 50)}),
    ("ramp-then-constant", Schedule.ramp_then_constant(100, 2, 4), 300,
     {0: 0.0, 100: 2.0, 150: 2.5, 299: 3.99}),
    ("multi-stage", Schedule.from_stages([(1, 10), (1, 10), (1, 0)]), 20,
     {0: 0.0, 5: 1.0, 10: 1.5, 15: 2.0, 19: 2.0 + (1 - math.sqrt(1 / 5))}),
    ("zero-rate-first", Schedule((Stage(1, 0, 0), Stage(1, 10, 10))), 10,
     {0: 1.0, 1: 1.1, 9: 1.9}),
    ("zero-rate-middle", Schedule((Stage(1, 10, 10), Stage(2, 0, 0), Stage(1, 10, 10))), 20,
     {9: 0.9, 10: 3.0, 11: 3.1, 19: 3.9}),
    ("ramp-down", Schedule((Stage(2, 10, 0),)), 10, {0: 0.0, 5: 2 - math.sqrt(2)}),
    ("zero-everywhere", Schedule((Stage(3, 0, 0),)), 0, {}),
]


@pytest.mark.parametrize(("schedule", "total", "times"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_table(schedule: Schedule, total: int, times: dict[int, float]) -> None:
    assert schedule.total() == total
    assert schedule.time_of(total) == math.inf
    assert schedule.count_due(schedule.duration_s) == total
    assert schedule.count_due(-0.001) == 0
    for k, expected in times.items():
        assert schedule.time_of(k) == pytest.approx(expected, abs=1e-9)
        assert schedule.count_due(schedule.time_of(k)) >= k + 1


@pytest.mark.parametrize(("schedule", "t_s", "expected"), [
    (Schedule.constant(10, 2), 1.0, 10.0),
    (Schedule.constant(10, 2), 5.0, 20.0),
    (Schedule.constant(10, 2), -1.0, 0.0),
    (Schedule.ramp_then_constant(100, 2, 4), 1.0, 25.0),
    (Schedule.ramp_then_constant(100, 2, 4), 3.0, 200.0),
    (Schedule.from_stages([(1, 10), (1, 0)]), 1.5, 5.0 + 3.75),
])
def test_integral(schedule: Schedule, t_s: float, expected: float) -> None:
    assert schedule.integral(t_s) == pytest.approx(expected)


def test_constant_count_due_steps() -> None:
    s = Schedule.constant(10, 1)
    assert [s.count_due(t) for t in (0.0, 0.05, 0.1, 0.15, 0.95, 1.0)] == [1, 1, 2, 2, 10, 10]


def test_from_stages_shape() -> None:
    s = Schedule.from_stages([(2, 100), (3, 100), (1, 0)])
    assert s.stages == (Stage(2, 0, 100), Stage(3, 100, 100), Stage(1, 100, 0))
    assert s.duration_s == 6
    assert s.total() == 100 + 300 + 50
    assert "Stage(duration_s=2" in repr(s)


@pytest.mark.parametrize(("make", "words"), [
    (lambda: Stage(-1, 1, 1), ["duration_s", "-1", "> 0"]),
    (lambda: Stage(0, 1, 1), ["duration_s", "0"]),
    (lambda: Stage(1, math.nan, 1), ["start_rate_per_s", "nan"]),
    (lambda: Stage(1, 1, -2), ["end_rate_per_s", "-2", ">= 0"]),
    (lambda: Stage(math.inf, 1, 1), ["duration_s", "inf"]),
    (lambda: Stage(1, "10", 1), ["start_rate_per_s", "'10'"]),  # type: ignore[arg-type]
    (lambda: Schedule(()), ["stages", "non-empty"]),
    (lambda: Schedule((1, 2)), ["stages[0]", "Stage"]),  # type: ignore[arg-type]
    (lambda: Schedule.ramp_then_constant(10, 5, 2), ["ramp_s", "5", "duration_s"]),
    (lambda: Schedule.constant(-5, 1), ["rate_per_s", "-5"]),
    (lambda: Schedule.from_stages([]), ["at least one"]),
    (lambda: Schedule.from_stages([(1,)]), ["stage 0", "(1,)"]),  # type: ignore[list-item]
    (lambda: Schedule.constant(1, 1).with_rate_from(-1, 5), ["at_s", "-1"]),
    (lambda: Schedule.constant(1, 1).with_rate_from(0.5, -3), ["rate_per_s", "-3"]),
    (lambda: StripedPacer(Schedule.constant(1, 1), 3, 2), ["index", "0..1", "3"]),
    (lambda: StripedPacer(Schedule.constant(1, 1), 0, 0), ["count", ">= 1", "0"]),
    (lambda: StripedPacer(Schedule.constant(1, 1), 0, 1, -4), ["start_k", "-4"]),
    (lambda: UnlimitedPacer(-1), ["total_requests", "-1"]),
])
def test_validation_names_bad_value(make, words: list[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_time_of_negative_k_raises() -> None:
    with pytest.raises(ValueError, match="-1"):
        Schedule.constant(1, 1).time_of(-1)


# ----- striping ---------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "count", "start_k", "first_ks"), [
    (0, 1, 0, [0, 1, 2]),
    (1, 3, 0, [1, 4, 7]),
    (2, 3, 0, [2, 5, 8]),
    (0, 3, 5, [6, 9, 12]),
    (2, 3, 5, [5, 8, 11]),
    (1, 4, 5, [5, 9, 13]),
])
def test_global_k(index: int, count: int, start_k: int, first_ks: list[int]) -> None:
    pacer = StripedPacer(Schedule.constant(100, 1), index, count, start_k)
    assert [pacer.global_k(j) for j in range(3)] == first_ks
    assert pacer.due_s(0) == pacer.schedule.time_of(first_ks[0])


def test_stripes_count_due_and_total() -> None:
    schedule = Schedule.constant(10, 1)
    pacers = [StripedPacer(schedule, i, 3) for i in range(3)]
    assert [p.total() for p in pacers] == [4, 3, 3]
    assert [p.count_due(0.0) for p in pacers] == [1, 0, 0]
    assert [p.count_due(0.45) for p in pacers] == [2, 2, 1]
    assert pacers[1].due_s(pacers[1].total()) == math.inf


def test_unlimited_pacer() -> None:
    pacer: Pacer = UnlimitedPacer()
    assert pacer.due_s(0) == pacer.due_s(10**9) == 0.0
    assert pacer.count_due(0.0) == pacer.total() > 10**15
    assert pacer.count_due(-1.0) == 0
    assert UnlimitedPacer(3).due_s(3) == math.inf


# ----- properties -------------------------------------------------------------------------

rates = st.one_of(st.just(0.0), st.floats(0.01, 200.0), st.integers(0, 200).map(float))
durations = st.one_of(st.floats(0.01, 4.0), st.sampled_from([0.1, 0.5, 1.0, 2.0]))
stage_lists = st.lists(st.builds(Stage, durations, rates, rates), min_size=1, max_size=4)
SETTINGS = settings(max_examples=60, deadline=None)


def _times(schedule: Schedule) -> list[float]:
    return [schedule.time_of(k) for k in range(schedule.total())]


@SETTINGS
@given(stage_lists, st.floats(-0.5, 1.1))
def test_count_due_tracks_integral(stages: list[Stage], frac: float) -> None:
    schedule = Schedule(tuple(stages))
    t_s = frac * schedule.duration_s
    assert abs(schedule.count_due(t_s) - schedule.integral(t_s)) <= 1


@SETTINGS
@given(stage_lists)
def test_time_of_monotonic_and_consistent(stages: list[Stage]) -> None:
    schedule = Schedule(tuple(stages))
    times = _times(schedule)
    assert all(a <= b for a, b in zip(times, times[1:], strict=False))
    assert all(0.0 <= t <= schedule.duration_s for t in times)
    assert schedule.time_of(schedule.total()) == math.inf
    for k, t in enumerate(times):
        assert schedule.count_due(t) >= k + 1
        assert schedule.count_due(math.nextafter(t, -math.inf)) <= k
        assert schedule.integral(t) == pytest.approx(k, rel=1e-6, abs=1e-6)
    # No request is due strictly inside a zero-rate stage.
    start = 0.0
    for stage in schedule.stages:
        if stage.start_rate_per_s == stage.end_rate_per_s == 0:
            assert not [t for t in times if start < t < start + stage.duration_s]
        start += stage.duration_s


@SETTINGS
@given(stage_lists, st.integers(1, 8), st.floats(0.0, 1.0))
def test_stripes_partition_the_schedule(stages: list[Stage], n: int, frac: float) -> None:
    schedule = Schedule(tuple(stages))
    pacers = [StripedPacer(schedule, i, n) for i in range(n)]
    seen: list[int] = []
    for pacer in pacers:
        ks = [pacer.global_k(j) for j in range(pacer.total())]
        due = [pacer.due_s(j) for j in range(pacer.total())]
        assert all(a <= b for a, b in zip(due, due[1:], strict=False))
        assert pacer.due_s(pacer.total()) == math.inf
        seen.extend(ks)
    assert sorted(seen) == list(range(schedule.total()))
    t_s = frac * schedule.duration_s
    assert sum(p.count_due(t_s) for p in pacers) == schedule.count_due(t_s)


@SETTINGS
@given(stage_lists, st.integers(1, 5), st.integers(0, 50))
def test_stripes_from_start_k(stages: list[Stage], n: int, start_k: int) -> None:
    schedule = Schedule(tuple(stages))
    seen = sorted(StripedPacer(schedule, i, n, start_k).global_k(j)
                  for i in range(n)
                  for j in range(StripedPacer(schedule, i, n, start_k).total()))
    assert seen == list(range(start_k, max(start_k, schedule.total())))


fractions = st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-6, 1.0))  # no sub-µs at_s


@SETTINGS
@given(stage_lists, fractions, rates)
def test_with_rate_from(stages: list[Stage], frac: float, rate_per_s: float) -> None:
    old = Schedule(tuple(stages))
    at_s = frac * old.duration_s
    new = old.with_rate_from(at_s, rate_per_s)
    assert new.duration_s == pytest.approx(old.duration_s)
    # Identical before at_s.
    for k, t in enumerate(_times(old)):
        if t >= at_s:
            break
        assert new.time_of(k) == t
    # Continuous at at_s (no burst, no gap), then constant.
    assert new.integral(at_s) == pytest.approx(old.integral(at_s), abs=1e-9)
    later = at_s + 0.5 * (old.duration_s - at_s)
    if old.duration_s - at_s > 1e-6:
        assert new.integral(later) == pytest.approx(
            old.integral(at_s) + rate_per_s * (later - at_s), rel=1e-9, abs=1e-9)
        assert new.rate_at(later) == pytest.approx(rate_per_s)
    times = _times(new)
    assert all(a <= b for a, b in zip(times, times[1:], strict=False))


@pytest.mark.parametrize(("stages", "at_s", "rate_per_s", "times"), [
    # Found by hypothesis (seed 17): the ramp's request 0 was due at 0 before the rate fell
    # to 0 at 1 µs; it stays, at 0 (it was inf: the new integral never reaches 1).
    ([Stage(1.0, 0.0, 1.0)], 1e-6, 0.0, [0.0]),
    ([Stage(1.0, 0.0, 1.0)], 0.5, 0.0, [0.0]),
    ([Stage(2.0, 3.0, 3.0)], 1.0, 0.0, [0.0, 1 / 3, 2 / 3, 1.0]),
    ([Stage(2.0, 3.0, 3.0)], 1.0, 1.5, [0.0, 1 / 3, 2 / 3, 1.0, 1.0 + 1 / 1.5]),
])
def test_with_rate_from_keeps_what_was_due(stages: list[Stage], at_s: float, rate_per_s: float,
                                           times: list[float]) -> None:
    new = Schedule(tuple(stages)).with_rate_from(at_s, rate_per_s)
    got = _times(new)
    assert got == pytest.approx(times, abs=1e-6)


def test_with_rate_from_table() -> None:
    old = Schedule.ramp_then_constant(100, 2, 4)
    new = old.with_rate_from(1.0, 10)
    assert new.total() == 25 + 30
    assert new.time_of(24) == old.time_of(24)
    assert new.time_of(25) == pytest.approx(1.0)
    assert new.time_of(26) == pytest.approx(1.1)
    assert old.with_rate_from(4.0, 5) is old
    assert old.with_rate_from(0.0, 5) == Schedule.constant(5, 4)
