"""The sender's health (actors/health.py): the schedstat parser, the stall rule, the loop's
gaps, and the engine on simulated time with a stall in it — each second flagged on its own,
late requests blamed on the stall, intended counted in the second the schedule meant."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rafale.actors.config import EngineConfig
from rafale.actors.engine import Engine
from rafale.actors.health import (
    LoopWatch,
    SchedStat,
    SenderHealth,
    is_stalled,
    parse_schedstat,
    read_schedstat,
)
from rafale.actors.pacing import Schedule
from tests.actors.simnet import START_S, SimNet
from tests.helpers import by_second, total

URL = ("https://rafale.test/",)


@pytest.mark.parametrize(("text", "expected"), [
    ("1051972 64019 12\n", SchedStat(1051972, 64019)),
    ("0 0 0", SchedStat(0, 0)),
    ("1051972 64019", None),  # two fields: not a schedstat line
    ("1 2 3 4", None),
    ("a b c", None),
    ("", None),
    ("-1 2 3", None),
])
def test_schedstat_parser(text: str, expected: SchedStat | None) -> None:
    assert parse_schedstat(text) == expected


def test_this_threads_schedstat_is_read_from_the_kernel() -> None:
    first = read_schedstat(threading.get_native_id())
    assert first is not None
    sum(range(2_000_000))  # some CPU time for this thread
    second = read_schedstat(threading.get_native_id())
    assert second is not None and second.cpu_ns > first.cpu_ns
    assert second.runq_wait_ns >= first.runq_wait_ns
    assert read_schedstat(2**31 - 1) is None  # no such thread here


@pytest.mark.parametrize(("gap_us", "wait_us", "window_us", "stalled"), [
    (50_000, 0, 1_000_000, False),  # at the tolerance: not over it
    (50_001, 0, 1_000_000, True),
    (0, 200_000, 1_000_000, False),  # 20 % of the second: not over it
    (0, 200_001, 1_000_000, True),
    (49_000, 199_000, 1_000_000, False),  # both near, neither over
    (0, 100_001, 500_000, True),  # a half second: 20 % of it
    (7_000, 3_200, 10_000, False),  # a run's last 10 ms: 32 % of it, but 3 ms lost
    (0, 50_001, 60_000, True),  # over the tolerance and the share
])
def test_the_stall_rule(gap_us: int, wait_us: int, window_us: int, stalled: bool) -> None:
    assert is_stalled(gap_us, wait_us, window_us, 50_000) is stalled


def test_the_loop_watch_measures_gaps_from_the_deadline_it_overslept() -> None:
    watch = LoopWatch(0.05, now=10.0)
    watch.waiting(10.001)  # a 1 ms turn
    watch.woke(10.010, until_s=10.010)  # on time
    watch.waiting(10.011)
    watch.woke(10.500, until_s=10.020)  # overslept its deadline by 480 ms
    assert watch.stalled_at(10.020, now=10.5) and watch.stalled_at(10.3, now=10.5)
    assert not watch.stalled_at(10.015, now=10.5)  # due while it waited, before the deadline
    watch.waiting(10.502)  # the gap 10.020 .. 10.502 ends
    watch.woke(10.503, until_s=10.6)  # woken early by the network
    assert watch.stalled_at(10.2, now=10.503)  # a remembered gap
    assert not watch.stalled_at(10.503, now=10.504)  # the new turn is short
    watch.waiting(10.504)
    watch.woke(11.0, until_s=11.0)  # the window's end
    gap_s, long_s = watch.close(10.0, 11.0, now=11.0)
    assert gap_s == pytest.approx(0.482) and long_s == pytest.approx(0.482)
    watch.waiting(11.001)
    watch.woke(12.0, until_s=12.0)
    assert watch.close(11.0, 12.0, now=12.0) == pytest.approx((0.001, 0.0))  # quiet


def test_an_open_gap_is_shared_among_the_windows_it_spans() -> None:
    watch = LoopWatch(0.05, now=0.0)
    watch.waiting(0.5)  # a long first turn: a gap 0 .. 0.5
    watch.woke(3.2, until_s=0.6)  # then no turn from 0.6 to 3.2
    assert watch.close(0.0, 1.0, now=3.2) == pytest.approx((2.6, 0.9))
    assert watch.close(1.0, 2.0, now=3.2) == pytest.approx((2.6, 1.0))
    assert watch.close(2.0, 3.0, now=3.2) == pytest.approx((2.6, 1.0))
    watch.waiting(3.3)  # the gap 0.6 .. 3.3 ends in the open window
    assert watch.close(3.0, 4.0, now=4.0) == pytest.approx((2.7, 0.3))


def test_a_gap_that_ends_after_two_windows_counts_in_both() -> None:
    watch = LoopWatch(0.05, now=0.0)
    watch.waiting(3.0)
    watch.woke(3.05, until_s=3.05)  # a turn begins at 3.05 and is preempted...
    watch.waiting(5.2)  # ...until 5.2, when it waits again
    watch.woke(5.3, until_s=5.3)  # both windows close now, after the gap ended
    assert watch.close(3.0, 4.0, now=5.3) == pytest.approx((2.15, 0.95))  # not 0 .. 3.0
    assert watch.close(4.0, 5.0, now=5.3) == pytest.approx((2.15, 1.0))
    assert watch.stalled_at(4.5, now=5.3) and not watch.stalled_at(5.25, now=5.3)


def test_schedstat_readings_are_shared_by_time_among_windows() -> None:
    readings = iter([SchedStat(0, 0), SchedStat(2_500_000_000, 500_000_000),
                     SchedStat(3_500_000_000, 1_100_000_000)])
    stamps = iter([0.0, 2.5, 3.5])  # when each reading is taken
    health = SenderHealth(0.05, read=lambda _tid: next(readings),
                          monotonic=lambda: next(stamps))
    health.begin(1, start_s=0.0)
    health.watch.waiting(0.0)
    for t in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5):  # a loop turning every 0.5 s, briefly
        health.watch.woke(t, t)
        health.watch.waiting(t + 0.001)
    health.watch.woke(3.5, 3.5)
    # Read at 2.5: 2.5 s on a CPU, 0.5 s waiting for one, shared by time.
    first = health.window(0.0, 1.0, now=2.5)
    second = health.window(1.0, 2.0, now=2.5, read=False)
    assert (first.thread_cpu_us, first.runq_wait_us) == (1_000_000, 200_000)
    assert (second.thread_cpu_us, second.runq_wait_us) == (1_000_000, 200_000)
    assert not first.stalled and not second.stalled and first.stall_us == 0
    # Read at 3.5: its 0.1 s of wait measured by 2.5, and half of the next 0.6 s.
    third = health.window(2.0, 3.0, now=3.5)
    assert (third.thread_cpu_us, third.runq_wait_us) == (1_000_000, 400_000)
    assert third.stalled == 1 and third.stall_us == 400_000
    assert third.loop_gap_max_us < 50_000


def test_a_reading_never_gives_more_wait_than_the_time_it_spans() -> None:
    # Stamped 2 s late the first time (preempted after its read): the next reading holds
    # that wait over a 1 s span; a window gets at most its own length.
    readings = iter([SchedStat(0, 0), SchedStat(0, 0), SchedStat(0, 2_500_000_000)])
    stamps = iter([0.0, 3.0, 4.0])
    health = SenderHealth(0.05, read=lambda _tid: next(readings),
                          monotonic=lambda: next(stamps))
    health.begin(1, start_s=0.0)
    health.window(0.0, 1.0, now=1.0)
    assert health.window(1.0, 2.0, now=1.0, read=False).runq_wait_us == 0
    assert health.window(2.0, 3.0, now=1.0, read=False).runq_wait_us == 0
    assert health.window(3.0, 4.0, now=4.0).runq_wait_us == 1_000_000


def test_a_late_stamp_is_shared_among_the_windows_it_reaches() -> None:
    # Read at 3.5 but stamped at 4.4 (preempted): its 2.4 s of wait spans 2.0 .. 4.4, so
    # windows 2 and 3 each get 1 s of it and window 4 its 0.4 s, not one window 1.4 s.
    readings = iter([SchedStat(0, 0), SchedStat(0, 2_400_000_000), SchedStat(0, 2_400_000_000)])
    stamps = iter([2.0, 4.4, 5.0])
    health = SenderHealth(0.05, read=lambda _tid: next(readings),
                          monotonic=lambda: next(stamps))
    health.begin(1, start_s=0.0)
    assert health.window(2.0, 3.0, now=3.5).runq_wait_us == 1_000_000
    assert health.window(3.0, 4.0, now=5.0).runq_wait_us == 1_000_000
    assert health.window(4.0, 5.0, now=5.0, read=False).runq_wait_us == 400_000


def engine_on(net: SimNet, rate_per_s: float = 100.0, duration_s: float = 6.0,
              **options: Any) -> Engine:
    schedstat = options.pop("schedstat", lambda _tid: None)
    config = EngineConfig(urls=URL, schedule=Schedule.constant(rate_per_s, duration_s),
                          duration_s=duration_s, slice_us=None, max_in_flight=1000,
                          in_flight_step=1000, **options)
    return Engine(config, clock=net, transfers=net.transfers, schedstat=schedstat)


def freeze(net: SimNet, at_s: float, for_s: float) -> None:
    """The loop's process gets no CPU from ``at_s`` for ``for_s`` (simulated seconds)."""
    net.at(at_s, lambda: setattr(net, "now", net.now + for_s))


def test_a_stalled_loop_flags_its_seconds_and_takes_the_blame_for_late_requests() -> None:
    net = SimNet(latency_s=0.004)
    freeze(net, 2.3, 1.5)  # no turn from 2.3 s to 3.8 s
    engine = engine_on(net)
    engine.run()
    windows = engine.drain()
    seconds = by_second(windows)
    assert [w["intended"] for w in windows] == [100] * 6  # as the schedule meant
    assert [w["stalled"] for w in windows] == [0, 0, 1, 1, 0, 0]
    assert seconds[2]["loop_gap_max_us"] == seconds[3]["loop_gap_max_us"] >= 1_400_000
    assert seconds[1]["loop_gap_max_us"] < 50_000 and seconds[4]["loop_gap_max_us"] < 50_000
    assert seconds[2]["stall_us"] == pytest.approx(700_000, abs=20_000)
    assert seconds[3]["stall_us"] == pytest.approx(800_000, abs=20_000)
    merged = total(windows)
    assert merged["late"] == merged["late_stall"] == 150  # every request due in the stall
    assert merged["late_cap"] == merged["late_loop"] == 0
    assert seconds[3]["sent"] == 150 + 20  # the stall's backlog, then on time
    assert merged["sent"] == merged["completed"] == 600 and merged["dropped"] == 0


def test_a_stall_longer_than_the_schedule_left_keeps_every_second_its_intended() -> None:
    net = SimNet(latency_s=0.004)
    freeze(net, 1.5, 3.0)  # from 1.5 s to 4.5 s: seconds 2 and 3 see no turn at all
    engine = engine_on(net, duration_s=5.0)
    engine.run()
    windows = engine.drain()
    assert [w["intended"] for w in windows] == [100] * 5
    assert [w["loops"] > 0 for w in windows] == [True, True, False, False, True]
    assert [w["stalled"] for w in windows] == [0, 1, 1, 1, 1]
    assert total(windows)["late_stall"] == 300


def test_a_run_queue_wait_over_a_fifth_of_a_second_stalls_it_without_a_gap() -> None:
    net = SimNet(latency_s=0.004)
    waits = {3: 0.35}  # second 3: the thread waited 350 ms for a CPU, in short spells

    def schedstat(_tid: int) -> SchedStat:
        t = net.now - START_S
        wait_s = sum(min(max(t - s, 0.0), 1.0) * share for s, share in waits.items())
        return SchedStat(int(t * 1e8), int(wait_s * 1e9))

    engine = engine_on(net, duration_s=5.0, schedstat=schedstat)
    engine.run()
    windows = engine.drain()
    assert [w["stalled"] for w in windows] == [0, 0, 0, 1, 0]
    assert by_second(windows)[3]["runq_wait_us"] == pytest.approx(350_000, abs=5_000)
    assert by_second(windows)[3]["stall_us"] == by_second(windows)[3]["runq_wait_us"]
    assert max(w["loop_gap_max_us"] for w in windows) < 50_000
    assert total(windows)["late"] == 0  # slow, not late: a wait is not a gap


def test_a_quiet_run_flags_nothing_and_a_tolerance_is_its_own() -> None:
    net = SimNet(latency_s=0.004)
    engine = engine_on(net)
    freeze(net, 2.3, 0.03)  # a 30 ms hiccup: under the 50 ms default
    engine.run()
    windows = engine.drain()
    assert not any(w["stalled"] for w in windows) and total(windows)["late_stall"] == 0
    strict = engine_on(net := SimNet(latency_s=0.004), stall_after_s=0.02)
    freeze(net, 2.3, 0.03)
    strict.run()
    flagged = strict.drain()
    assert [w["stalled"] for w in flagged] == [0, 0, 1, 0, 0, 0]
    assert total(flagged)["late_stall"] == total(flagged)["late"] == 3
