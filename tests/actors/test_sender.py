"""SenderActor in-process (no Ray) against the embedded target."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest
import ray

from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.pacing import Schedule
from rafale.actors.sender import SenderActor
from rafale.cluster.target import Target


def config_for(target: Target, **overrides: Any) -> EngineConfig:
    options: dict[str, Any] = {
        "urls": (target.https_url,),
        "http": "2",
        "resolve": tuple(ResolveEntry.parse(r) for r in target.resolve),
        "cacert": str(target.ca_file),
        "schedule": Schedule.constant(100, 2.0),
        "duration_s": 2.0,
        "max_in_flight": 20,
        "timeout_s": 5.0,
    }
    options.update(overrides)
    return EngineConfig(**options)


def sum_of(windows: list[dict[str, Any]], key: str) -> int:
    return sum(int(w[key]) for w in windows)


def config_for_unstarted() -> EngineConfig:
    return EngineConfig(urls=("https://rafale.test:8443/",), duration_s=1.0)


def test_where_outside_ray_has_no_node_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # No Ray in this process (another test of this worker may have connected one).
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    where = SenderActor(config_for_unstarted()).where()
    assert where["node_id"] == ""
    assert where["pid"] == os.getpid()
    assert where["hostname"] == socket.gethostname()
    assert where["ip"]


def test_start_returns_at_once_and_windows_drain_while_running(target: Target) -> None:
    actor = SenderActor(config_for(target))
    began = time.monotonic()
    actor.start(time.time() + 0.1)
    assert time.monotonic() - began < 0.5
    assert not actor.join(0.5)
    assert actor.status()["state"] == "running"
    time.sleep(1.2)
    early = actor.drain()
    assert early, "the first second should be drained while the engine runs"
    assert actor.join(10.0)
    windows = early + actor.drain()
    assert sum_of(windows, "intended") == 200
    assert sum_of(windows, "completed") == 200
    status = actor.status()
    assert status["state"] == "done"
    assert status["error"] == ""


def test_control_calls_answer_while_running(target: Target) -> None:
    actor = SenderActor(config_for(target, schedule=Schedule.constant(100, 3.0), duration_s=3.0))
    actor.start(time.time())
    time.sleep(0.5)
    timings = []
    for call in (actor.pause, actor.resume, lambda: actor.set_rate(50.0),
                 lambda: actor.set_stripe(0, 1), actor.status, actor.drain):
        began = time.monotonic()
        call()
        timings.append(time.monotonic() - began)
    assert max(timings) < 0.05
    actor.stop()
    assert actor.join(6.0)
    sent = actor.status()["sent"]
    assert 0 < sent < 300


def test_pause_sends_nothing(target: Target) -> None:
    actor = SenderActor(config_for(target, schedule=Schedule.constant(200, 3.0), duration_s=3.0))
    actor.start(time.time())
    time.sleep(0.5)
    actor.pause()
    time.sleep(0.1)
    before = actor.status()["sent"]
    time.sleep(0.7)
    assert actor.status()["sent"] == before
    assert actor.status()["state"] == "paused"
    actor.stop()
    assert actor.join(6.0)


def test_control_after_the_end_is_harmless_and_start_runs_once(target: Target) -> None:
    actor = SenderActor(config_for(target, schedule=Schedule.constant(50, 0.5), duration_s=0.5))
    actor.start()
    assert actor.join(10.0)
    for call in (actor.pause, actor.resume, actor.stop, lambda: actor.set_rate(10.0),
                 lambda: actor.set_stripe(0, 2)):
        call()
    with pytest.raises(RuntimeError, match="runs once"):
        actor.start()
    assert sum_of(actor.drain(), "completed") == 25


def test_reset_gives_a_fresh_engine_in_the_same_process_and_waits_for_the_last_one(
        target: Target) -> None:
    actor = SenderActor(config_for(target, schedule=Schedule.constant(50, 0.5), duration_s=0.5))
    actor.start()
    where = actor.reset(config_for(target, schedule=Schedule.constant(40, 0.5),
                                   duration_s=0.5), join_s=10.0)  # waits for the first run
    assert where["pid"] == os.getpid()
    assert actor.drain() == []  # the first run's windows went with its engine
    actor.start()
    with pytest.raises(RuntimeError, match="still sending"):
        actor.reset(config_for_unstarted(), join_s=0.0)
    assert actor.join(10.0)
    assert sum_of(actor.drain(), "completed") == 20


@pytest.mark.parametrize("rate", [0, -1.0, float("inf"), "fast"])
def test_bad_rate_is_refused(rate: Any) -> None:
    with pytest.raises(ValueError) as info:
        SenderActor(config_for_unstarted()).set_rate(rate)
    assert f"rate {rate!r} must be" in str(info.value)


def test_join_before_start_is_false() -> None:
    assert SenderActor(config_for_unstarted()).join(0.0) is False
