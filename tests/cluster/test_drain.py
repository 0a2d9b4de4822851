"""The driver's drain on an in-memory channel and a clock moved by hand: every answer taken
once, losses by each way they are detected, takeover from a common boundary, the gap caught
up or skipped, resends of a lost actor's rows, an actor that comes back, and the last
drain. No Ray, no network, no sleeping: each test runs in milliseconds. (One real lease run
per gap mode stays in test_leases.py; a real actor kill and a real node removal in
tests/faults/test_run_faults.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rafale.actors.answers import Phase
from rafale.analysis.outcomes import outcome_counts
from rafale.cluster.drain import END_TICK_S, END_TICKS_FOR_S, SILENT_NOTICE_S, Drain
from rafale.cluster.spec import RunSpec
from rafale.cluster.takeover import RESTRIPE_AHEAD_S
from tests.cluster.fakechannel import FakeChannel, FakeClock, tree_of

RATE, DURATION_S, LEASE_S = 100, 10, 2.0
AGGREGATION = {"mode": "flat"}


@pytest.fixture(autouse=True, params=["flat", "tree"])
def aggregation(request: pytest.FixtureRequest) -> None:
    """Every test twice: the driver polls the senders (flat), or each node's aggregator
    does (tree, cluster/tree.py): the same losses, takeovers and windows either way."""
    AGGREGATION["mode"] = request.param


def drain_of(actors: int = 2, *, nodes: tuple[str, ...] = ("node-a",), once_rows: int | None
             = None, **options: Any) -> tuple[Drain, FakeChannel, FakeClock]:
    settings: dict[str, Any] = {"urls": ("https://127.0.0.1:9/",), "rate_per_s": RATE,
                                "duration_s": DURATION_S, "actors": actors, "lease_s": LEASE_S}
    if "feed" in options:
        del settings["urls"]
    spec = RunSpec.parse(**{**settings, **options})
    clock = FakeClock()
    channel = FakeChannel(actors, nodes)
    polled = tree_of(channel, "run-1")[0] if AGGREGATION["mode"] == "tree" else channel
    drain = Drain(spec, "run-1", channel.books(clock.monotonic()), polled, clock.time(),
                  once_rows=once_rows, clock=clock)
    return drain, channel, clock


def run_seconds(drain: Drain, channel: FakeChannel, clock: FakeClock, seconds: range,
                **kwargs: Any) -> None:
    """Each second: the senders send, the clock moves a second, the drain ticks."""
    for second in seconds:
        channel.second(second, **kwargs)
        clock.advance(1.0)
        drain.tick()


def test_each_answer_is_appended_once_tagged_with_the_run_and_node() -> None:
    drain, channel, clock = drain_of(2, nodes=("node-a", "node-b"))
    run_seconds(drain, channel, clock, range(3))
    drain.tick()  # nothing new: nothing appended twice
    windows = drain.log.tables()[0].to_pandas()
    assert sorted(zip(windows["actor"], windows["second"], strict=True)) == [
        (a, s) for a in (0, 1) for s in range(3)]
    assert set(windows["run_id"]) == {"run-1"}
    assert dict(zip(windows["actor"], windows["node"], strict=True)) == {0: "node-a",
                                                                        1: "node-b"}
    assert drain.log.total().counters["sent"] == 2 * 3 * 10
    assert [a.last_second for a in drain.actors] == [2, 2]
    assert not drain.lost and drain.silent_warnings() == ()


@pytest.mark.parametrize(("at_s", "after_s"), [
    (0.0, 1.0), (DURATION_S - 2.0, 1.0),  # a second after each tick...
    (DURATION_S - 0.4, 0.4 + END_TICK_S),  # ...just past the planned end when it is near...
    (DURATION_S + 0.5, END_TICK_S),  # ...then every END_TICK_S...
    (DURATION_S + END_TICKS_FOR_S + 0.1, 1.0),  # ...for END_TICKS_FOR_S at most
])
def test_the_drain_ticks_each_second_and_just_past_the_planned_end(at_s: float,
                                                                   after_s: float) -> None:
    drain, _, clock = drain_of(1)
    clock.advance(at_s)
    assert drain.next_tick(clock.monotonic()) == pytest.approx(clock.monotonic() + after_s)
    drain.pause()
    assert drain.next_tick(clock.monotonic()) == pytest.approx(clock.monotonic() + 1.0)


def expected_gap(drain: Drain, lost: int, from_second: int, at_s: float) -> list[int]:
    """The lost actor's requests (every 2nd, from its stripe position) due from its first
    undrained second up to the request due RESTRIPE_AHEAD_S after the takeover."""
    assert drain.schedule is not None
    first = drain.schedule.count_due(from_second)
    boundary = drain.schedule.count_due(at_s + RESTRIPE_AHEAD_S)
    return [k for k in range(first, boundary) if k % 2 == lost]


def test_a_dead_actor_is_lost_at_once_and_the_survivor_takes_its_stripe_and_gap() -> None:
    drain, channel, clock = drain_of(2)
    run_seconds(drain, channel, clock, range(2))
    channel.senders[1].dead = True
    clock.advance(0.5)
    drain.tick()
    [lost] = drain.lost
    assert (lost["actor"], lost["detected"]) == (1, "ray")
    assert "Ray reported its death" in lost["reason"]
    assert lost["last_drained_second"] == 1 and lost["at_s"] == pytest.approx(2.5)
    assert [a.alive for a in drain.actors] == [True, False]
    # The survivor holds the whole schedule from the boundary on...
    [(actor, (position, count, from_row, boundary))] = channel.calls_of("set_stripe")
    assert (actor, position, count, from_row) == (0, 0, 1, None)
    assert drain.schedule is not None
    # (requests 0..300 are due by 3 s: k is due at k / 100 s)
    assert boundary == drain.schedule.count_due(2.5 + RESTRIPE_AHEAD_S) == 301
    # ...and sends the lost actor's requests from its first undrained second (2 s) to the
    # boundary, late: exactly its stripe's requests there, each once.
    gap = expected_gap(drain, 1, 2, 2.5)
    assert len(gap) == 50
    [(actor, (share,))] = channel.calls_of("catch_up")
    assert actor == 0
    assert [k for start, stop, step in share for k in range(start, stop, step)] == gap
    assert lost["gap"] == {"mode": "catch-up", "requests": 50, "from_s": 2.0, "to_s": 3.01}
    # The dead actor is not polled again; the run goes on with one.
    assert not drain.actors[1].awaited and not drain.finished()


def test_with_gap_skip_the_gap_is_counted_and_nothing_is_handed_over() -> None:
    drain, channel, clock = drain_of(2, gap="skip")
    run_seconds(drain, channel, clock, range(3))
    channel.senders[0].dead = True
    clock.advance(0.5)
    drain.tick()
    [lost] = drain.lost
    assert lost["gap"]["mode"] == "skip"
    assert lost["gap"]["requests"] == len(expected_gap(drain, 0, 3, 3.5)) == 50
    assert channel.calls_of("catch_up") == []
    assert [args[:2] for _, args in channel.calls_of("set_stripe")] == [(0, 1)]


def test_a_silent_actor_is_shown_then_lost_by_its_lease_not_before() -> None:
    drain, channel, clock = drain_of(2)
    run_seconds(drain, channel, clock, range(2))
    channel.senders[1].silent = True
    run_seconds(drain, channel, clock, range(2, 3))
    assert not drain.lost and drain.silent_warnings() == ()
    clock.advance(SILENT_NOTICE_S - 1.0)  # silent for SILENT_NOTICE_S since its last answer
    drain.tick()
    [warning] = drain.silent_warnings()
    assert warning.startswith("actor 1 on host-1: no answer for 2 s")
    assert f"lost after {LEASE_S:g} s" in warning and not drain.lost
    clock.advance(LEASE_S - SILENT_NOTICE_S - 0.01)
    drain.tick()
    assert not drain.lost, "lost before its lease ran out"
    clock.advance(0.01)
    drain.tick()
    [lost] = drain.lost
    assert (lost["actor"], lost["detected"]) == (1, "lease")
    assert lost["silent_s"] == pytest.approx(LEASE_S) and "lease expired" in lost["reason"]
    assert drain.actors[1].awaited, "a lost actor that may answer again is still polled"
    assert [args[:2] for _, args in channel.calls_of("set_stripe")] == [(0, 1)]


def test_an_actor_whose_node_is_gone_is_lost_at_once_with_its_node() -> None:
    drain, channel, clock = drain_of(4, nodes=("node-a", "node-b"))
    run_seconds(drain, channel, clock, range(2))
    for sender in channel.senders:
        sender.silent = sender.node_id == "node-b"
    channel.nodes.discard("node-b")
    clock.advance(SILENT_NOTICE_S)  # silent long enough to be looked at; lease not out
    drain.tick()
    assert sorted((x["actor"], x["detected"]) for x in drain.lost) == [(1, "node"), (3, "node")]
    assert drain.lost_nodes == ["node-b"]
    # One restripe for both: actors 0 and 2 share the schedule, positions 0 and 1.
    assert sorted((a, args[:2]) for a, args in channel.calls_of("set_stripe")) == [
        (0, (0, 2)), (2, (1, 2))]


def test_a_fenced_answer_is_a_loss_and_its_windows_are_kept() -> None:
    drain, channel, clock = drain_of(2)
    run_seconds(drain, channel, clock, range(2))
    channel.senders[1].fenced = {"at_s": 1.9, "why": "no poll for 2 s (lease_s 2)"}
    run_seconds(drain, channel, clock, range(2, 3))
    [lost] = drain.lost
    assert (lost["actor"], lost["detected"]) == (1, "fenced")
    assert "fenced itself at 1.9 s" in lost["reason"]
    assert drain.actors[1].last_second == 2, "the window that came with the fence is kept"


def test_a_lost_actor_that_answers_again_is_stopped_and_its_windows_kept() -> None:
    drain, channel, clock = drain_of(2)
    run_seconds(drain, channel, clock, range(2))
    frozen = channel.senders[1]
    frozen.silent = True
    clock.advance(LEASE_S + 1.0)
    drain.tick()
    assert [x["detected"] for x in drain.lost] == ["lease"]
    # It wakes: its lease had stopped it; it brings a window back with its fence.
    frozen.silent, frozen.fenced = False, {"at_s": 3.0, "why": "lease_s 2 ran out"}
    channel.second(2, sent=0)
    clock.advance(1.0)
    drain.tick()
    assert channel.calls_of("stop") == [(1, ())]
    [lost] = drain.lost
    assert lost["came_back_at_s"] == pytest.approx(6.0) and lost["fenced"]["at_s"] == 3.0
    assert any("answered again at 6.0 s" in n and "by its lease" in n for n in drain.notes)
    assert drain.actors[1].last_second == 2 and not drain.actors[1].alive
    assert len(drain.lost) == 1, "coming back is not a second loss"
    # Stopped: its last answer says done, and it is no longer polled.
    drain.tick()
    assert not drain.actors[1].awaited


def test_when_every_actor_is_lost_there_is_no_takeover_and_the_drain_is_finished() -> None:
    drain, channel, clock = drain_of(2)
    run_seconds(drain, channel, clock, range(1))
    for sender in channel.senders:
        sender.dead = True
    clock.advance(1.0)
    drain.tick()
    assert len(drain.lost) == 2 and "gap" not in drain.lost[0]
    assert channel.calls_of("set_stripe") == [] and drain.finished()


def test_control_calls_wait_only_for_the_actors_that_answer() -> None:
    drain, channel, clock = drain_of(3)
    run_seconds(drain, channel, clock, range(1))
    channel.senders[2].silent = True
    clock.advance(SILENT_NOTICE_S)
    drain.tick()
    drain.pause()
    assert channel.waited_for[-1] == [0, 1]
    assert [a for a, _ in channel.calls_of("pause")] == [0, 1, 2]
    at = drain.sched_now()
    clock.advance(5.0)
    assert drain.sched_now() == at, "schedule time holds still while paused"
    drain.resume()
    clock.advance(1.0)
    assert drain.sched_now() == pytest.approx(at + 1.0)


def test_set_rate_after_a_loss_restripes_on_the_new_schedule() -> None:
    drain, channel, clock = drain_of(2)
    run_seconds(drain, channel, clock, range(2))
    channel.senders[1].dead = True
    clock.advance(0.5)
    drain.tick()
    drain.set_rate(400.0)
    assert channel.calls_of("set_rate") == [(0, (400.0,))]
    first, second = (args[3] for _, args in channel.calls_of("set_stripe"))
    assert drain.schedule is not None
    # Requests 0..250 are due by 2.5 s at 100/s; at 400/s from then, 200 more are due in
    # the half second to the boundary (301 at 100/s before).
    assert (first, second) == (301, 251 + 200)


def feed_drain(resend_unknown: bool) -> tuple[Drain, FakeChannel, FakeClock]:
    rows = [{"url": f"https://127.0.0.1:9/{i}"} for i in range(400)]
    return drain_of(2, once_rows=len(rows), feed=rows, feed_mode="once",
                    resend_unknown=resend_unknown)


@pytest.mark.parametrize("resend", [True, False])
def test_a_lost_actors_unreported_rows_are_resent_or_unknown(resend: bool) -> None:
    drain, channel, clock = feed_drain(resend)
    # Each actor reported the even (0) or odd (1) rows of its first second but one each.
    reported = [[r for r in range(0, 100, 2) if r != 40], [r for r in range(1, 100, 2)
                                                            if r != 41]]
    run_seconds(drain, channel, clock, range(1), rows=reported)
    channel.senders[1].dead = True
    clock.advance(0.5)
    drain.tick()
    [(_, (_, _, from_row, boundary))] = channel.calls_of("set_stripe")
    assert from_row == boundary == 201, "feeds restripe from the boundary row"
    unreported = [41, *range(101, 200, 2)]
    if resend:
        [(actor, (rows,))] = channel.calls_of("add_rows")
        assert actor == 0 and rows == unreported
        assert drain.resent == len(unreported)
    else:
        assert channel.calls_of("add_rows") == [] and drain.resent == 0
    drain.last_drain()
    assert channel.killed and channel.released == []  # the survivor had not finished
    final = drain.outcomes_final
    assert final is not None and final.num_rows == 400
    counts = outcome_counts(final)
    outcome = dict(zip(final.column("row").to_pylist(), final.column("outcome").to_pylist(),
                       strict=True))
    # The lost actor's rows it never reported are unknown (it may have sent them), however
    # they were handed over; the survivor's own unreported row is unsent.
    assert outcome[40] == "unsent" and outcome[41] == "unknown"
    lost_rows = np.flatnonzero(drain.owners(400) == 1)
    assert counts["unknown"] == len(set(lost_rows.tolist()) - set(reported[1]))


def test_the_last_drain_takes_the_last_answers_and_the_kept_bodies() -> None:
    drain, channel, clock = drain_of(3, keep_answers=(503,))
    run_seconds(drain, channel, clock, range(2))
    for sender in channel.senders[:2]:
        sender.state = Phase.DONE
    channel.senders[2].dead = True
    channel.second(2)
    clock.advance(0.5)
    drain.last_drain()
    assert channel.released == [0, 1]  # finished and alive: they may serve the next run
    assert [a.last_second for a in drain.actors[:2]] == [2, 2]
    assert drain.answers == {"503": "busy, try later"}
    assert drain.log.total().counters["sent"] == 2 * 3 * 10 + 2 * 10 and channel.killed
    assert drain.finished()
