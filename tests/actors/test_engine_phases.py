"""The engine's loop on simulated time (tests/actors/simnet.py): pause, set_rate, stop, the
lease and the end, checked to the request and without sleeping. The real engine runs; only
its clock and its transfers are simulated. Real traffic is in test_engine.py."""

from __future__ import annotations

from typing import Any

import pycurl
import pytest

from rafale.actors.config import EngineConfig
from rafale.actors.engine import Engine, Phase
from rafale.actors.pacing import Schedule
from tests.actors.simnet import SimNet
from tests.helpers import by_second, total

URL = ("https://rafale.test/",)


def engine_on(net: SimNet, rate_per_s: float = 100.0, duration_s: float = 3.0,
              **options: Any) -> Engine:
    config = EngineConfig(urls=URL, schedule=Schedule.constant(rate_per_s, duration_s),
                          duration_s=duration_s, slice_us=None, **options)
    return Engine(config, clock=net, transfers=net.transfers)


def test_a_constant_rate_sends_every_request_on_time_and_counts_it_in_its_second() -> None:
    net = SimNet(latency_s=0.004)
    engine = engine_on(net)
    engine.run()
    windows = engine.drain()
    merged = total(windows)
    assert (merged["intended"], merged["sent"], merged["completed"]) == (300, 300, 300)
    assert merged["late"] == merged["dropped"] == merged["failed"] == 0
    assert [w["sent"] for w in windows[:3]] == [100, 100, 100]
    assert net.starts == pytest.approx([k / 100 for k in range(300)], abs=1e-9)
    assert merged["status"] == {"200": 300} and merged["version"] == {"2": 300}
    assert engine.phase is Phase.DONE and engine.status()["state"] == "done"


def test_pause_sends_nothing_and_the_schedule_resumes_where_it_stopped() -> None:
    net = SimNet()
    engine = engine_on(net)
    states: list[str] = []
    net.at(1.0, engine.pause)
    net.at(1.5, lambda: states.append(engine.status()["state"]))
    net.at(2.0, engine.resume)
    engine.run()
    assert states == ["paused"]
    assert not [t for t in net.starts if 1.0 < t < 2.0]
    # Schedule time leaves the pause out: all 300 are sent, the last 100 a second later.
    assert len(net.starts) == 300 and net.starts[-1] == pytest.approx(3.99, abs=1e-6)
    merged = total(engine.drain())
    assert (merged["intended"], merged["sent"], merged["late"]) == (300, 300, 0)


def test_set_rate_changes_the_rate_from_that_instant() -> None:
    net = SimNet()
    engine = engine_on(net)
    net.at(1.0, lambda: engine.set_rate(300.0))
    engine.run()
    windows = engine.drain()
    per_second = {second: w["sent"] for second, w in by_second(windows).items()}
    assert per_second[0] == 100 and per_second[1] == per_second[2] == 300
    merged = total(windows)
    assert merged["intended"] == merged["sent"] == 700


def test_stop_ends_sending_at_once_and_lets_the_requests_in_flight_finish() -> None:
    net = SimNet(latency_s=0.5)
    engine = engine_on(net)
    phases: list[Phase] = []
    net.at(1.505, engine.stop)
    net.at(1.6, lambda: phases.append(engine.phase))
    engine.run()
    assert phases == [Phase.STOPPED]
    assert len(net.starts) == 151 and max(net.starts) <= 1.505
    merged = total(engine.drain())
    assert merged["intended"] == merged["sent"] == merged["completed"] == 151
    assert merged["dropped"] == 0 and merged["in_flight"] == 0
    assert net.now - 1_000.0 == pytest.approx(2.0, abs=1e-6)  # the last answer, 0.5 s on


def test_the_end_gives_requests_in_flight_their_grace_then_leaves_them_in_flight() -> None:
    net = SimNet(answer=lambda n: (0.01 if n < 250 else 60.0, 200, 0))
    engine = engine_on(net, drain_s=2.0)
    engine.run()
    merged = total(engine.drain())
    assert merged["sent"] == 300 and merged["completed"] == 250
    assert merged["in_flight"] == 50  # still open after the grace: counted in flight
    assert net.now - 1_000.0 == pytest.approx(3.0 + 2.0, abs=0.02)


def test_failures_are_counted_by_kind_with_their_latency() -> None:
    net = SimNet(answer=lambda n: (0.02, 0, pycurl.E_COULDNT_CONNECT) if n % 4 == 0
                 else (0.02, 503, 0))
    engine = engine_on(net, duration_s=1.0)
    engine.run()
    merged = total(engine.drain())
    assert merged["failed"] == 25 and merged["completed"] == 75
    assert merged["error"] == {f"connect:{pycurl.E_COULDNT_CONNECT}": 25}
    assert merged["status"] == {"503": 75}


def test_a_lease_not_renewed_fences_the_engine_at_its_expiry() -> None:
    net = SimNet()
    engine = engine_on(net, lease_s=0.5)
    for t in (0.25, 0.5, 0.75, 1.0):  # drained until 1.0 s, then never again
        net.at(t, engine.renew)
    engine.run()
    fence = engine.fenced
    assert fence is not None and fence["at_s"] == pytest.approx(1.5)
    assert engine.status()["fenced"] == fence
    assert len(net.starts) == 150 and max(net.starts) < 1.5
    merged = total(engine.drain())
    # What fell due after the fence is the others' to send: not intended here.
    assert merged["intended"] == merged["sent"] == 150 and merged["dropped"] == 0


def test_the_in_flight_cap_holds_and_what_waits_for_it_is_late_because_of_the_cap() -> None:
    net = SimNet(latency_s=0.1)  # 100/s for 0.1 s: 10 in flight; a cap of 5 holds them
    engine = engine_on(net, duration_s=1.0, max_in_flight=5, in_flight_step=5)
    engine.run()
    merged = total(engine.drain())
    assert max(b - a for a, b in zip(net.starts, net.starts[5:], strict=False)) >= 0.1 - 1e-9
    assert merged["late"] == merged["late_cap"] > 0 and merged["late_loop"] == 0
    assert merged["intended"] == 100 and merged["sent"] + merged["dropped"] == 100


def test_catch_up_sends_a_lost_actors_requests_first_and_counts_them_late() -> None:
    net = SimNet()
    engine = Engine(EngineConfig(urls=URL, schedule=Schedule.constant(200, 2.0), duration_s=2.0,
                                 slice_us=None, actor_index=0, actor_count=2),
                    clock=net, transfers=net.transfers)
    net.at(1.0, lambda: engine.catch_up([(1, 101, 2)]))  # actor 1's first 50, all due
    engine.run()
    merged = total(engine.drain())
    assert merged["intended"] == merged["sent"] == 200 + 50
    assert merged["late"] >= 50 and merged["dropped"] == 0
    assert engine.status()["catch_up_left"] == 0


def test_drains_renew_the_lease_and_an_engine_drained_in_time_is_never_fenced() -> None:
    net = SimNet()
    engine = engine_on(net, lease_s=2.0, duration_s=4.0)
    for t in (1.0, 2.5, 4.0):  # every 1.5 s, within the 2 s lease
        net.at(t, engine.drain)
    engine.run()
    assert engine.fenced is None and engine.status()["fenced"] is None
    assert len(net.starts) == 400


def test_a_fence_says_why_and_from_when_in_status_even_before_the_loop_turns() -> None:
    net = SimNet()
    engine = engine_on(net, lease_s=0.5)
    seen: list[object] = []
    net.at(0.75, lambda: seen.append(engine.status()["fenced"]))  # within the wait
    engine.run()
    [fence] = seen
    assert isinstance(fence, dict) and fence["at_s"] == pytest.approx(0.5)
    assert "lease_s" in fence["why"] and "other actors" in fence["why"]
    assert len(net.starts) == 50  # due at 0.00 .. 0.49: the one due at 0.50 is fenced


def test_a_stripe_switch_heard_before_its_boundary_takes_effect_there() -> None:
    net = SimNet()
    engine = Engine(EngineConfig(urls=URL, schedule=Schedule.constant(200, 2.0), duration_s=2.0,
                                 slice_us=None, actor_index=1, actor_count=2),
                    clock=net, transfers=net.transfers)
    net.at(0.5, lambda: engine.set_stripe(0, 1, None, 200))  # alone from request 200 (1.0 s)
    engine.run()
    assert len(net.starts) == 100 + 200  # odd requests before 200, every one from 200 on
    assert [t for t in net.starts if t < 1.0] == pytest.approx([k / 200 for k in range(1, 200, 2)])
    assert engine.late_switches == 0


def test_a_stripe_switch_heard_after_its_boundary_is_counted_late_and_acts_from_now() -> None:
    net = SimNet()
    engine = Engine(EngineConfig(urls=URL, schedule=Schedule.constant(200, 2.0), duration_s=2.0,
                                 slice_us=None, actor_index=1, actor_count=2),
                    clock=net, transfers=net.transfers)
    net.at(1.5, lambda: engine.set_stripe(0, 1, None, 200))  # its boundary was at 1.0 s
    engine.run()
    assert engine.late_switches == 1
    # Every request due after 1.5 s (the one due at 1.5 s was the other stripe's).
    assert len([t for t in net.starts if t >= 1.5]) == 99 and min(net.starts[150:]) > 1.5
    merged = total(engine.drain())
    assert merged["intended"] == merged["sent"] == 150 + 99


def test_the_closed_model_keeps_the_cap_full_and_intends_what_it_sends() -> None:
    net = SimNet(latency_s=0.05)  # a cap of 10 for 0.05 s each: 10 at 0.00, 0.05, .. 1.00
    engine = Engine(EngineConfig(urls=URL, schedule=None, duration_s=1.0, slice_us=None,
                                 max_in_flight=10, in_flight_step=10),
                    clock=net, transfers=net.transfers)
    engine.run()
    merged = total(engine.drain())
    assert merged["sent"] == 210 and merged["intended"] == merged["sent"]
    assert sorted({round(t, 6) for t in net.starts}) == [round(n * 0.05, 6) for n in range(21)]
    assert merged["late"] == 0


def test_set_rate_gives_the_closed_model_a_schedule_from_then_on() -> None:
    net = SimNet(latency_s=0.05)
    engine = Engine(EngineConfig(urls=URL, schedule=None, duration_s=2.0, slice_us=None,
                                 max_in_flight=10, in_flight_step=10),
                    clock=net, transfers=net.transfers)
    net.at(1.0, lambda: engine.set_rate(50.0))
    engine.run()
    assert len([t for t in net.starts if t >= 1.0]) == 50
    assert engine.slots.schedule is not None
