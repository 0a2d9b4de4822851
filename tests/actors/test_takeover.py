"""What an engine does when the driver loses one of its actors: the lease that fences it,
the stripe switch at a common request, and the catch-up of a lost stripe's requests."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rafale.actors import engine as engine_module
from rafale.actors.config import EngineConfig
from rafale.actors.engine import Engine, Phase
from rafale.actors.pacing import Schedule, StripedPacer, SwitchPacer
from rafale.actors.slots import Slots
from rafale.cluster.target import Target
from tests.helpers import target_config as config_for
from tests.helpers import total


def started(engine: Engine) -> threading.Thread:
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    return thread


# ----- the lease ----------------------------------------------------------------------------


def test_a_loop_frozen_past_its_lease_sends_nothing_when_it_wakes(
        target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop thread stops for 0.6 s while it collects a response (as a SIGSTOPped or
    starved process does), from ~0.1 s, across its 0.3 s lease: when it wakes, the 120
    requests that fell due meanwhile are not sent, not even up to the in-flight cap (found
    by the parallel test pass: a frozen actor sent 50 on waking, before fencing)."""
    config = config_for(target, "2", schedule=Schedule.constant(200, 2.0), duration_s=2.0,
                        lease_s=0.3)
    engine = Engine(config)
    frozen: dict[str, int] = {}

    class FreezeOnce(dict[int, str]):
        """The version names the collect step reads for each response: the first read
        after 20 sends (~0.1 s in, before the lease runs out) stops the loop thread."""

        def get(self, key: int, default: str | None = None) -> str | None:  # type: ignore[override]
            if not frozen and engine.sent >= 20:
                frozen["sent"] = engine.sent
                time.sleep(0.6)
            return super().get(key, default)

    monkeypatch.setattr(engine_module, "NEGOTIATED_VERSION",
                        FreezeOnce(engine_module.NEGOTIATED_VERSION))
    thread = started(engine)
    thread.join(timeout=10)
    assert not thread.is_alive() and frozen
    fenced = engine.status()["fenced"]
    assert fenced is not None and fenced["at_s"] == pytest.approx(0.3, abs=0.01), fenced
    assert engine.sent == frozen["sent"], (engine.sent, frozen)
    merged = total(engine.drain())
    assert merged["intended"] == merged["sent"] + merged["dropped"]


# ----- the stripe switch ----------------------------------------------------------------------


@given(count=st.integers(2, 5), lost=st.data(), boundary=st.integers(0, 400),
       heard=st.data())
def test_a_switch_at_a_common_request_sends_every_request_once(
        count: int, lost: st.DataObject, boundary: int, heard: st.DataObject) -> None:
    """Actors 0..count-1 send their stripes; one is lost; the others switch to count-1
    stripes at ``boundary``, each having sent some of its old stripe before hearing
    (never a request at or past the boundary). Every request is sent by exactly one
    actor, except the lost actor's before the boundary (its gap) and those it sent."""
    schedule = Schedule.constant(100, 6.0)
    victim = lost.draw(st.integers(0, count - 1), label="lost")
    survivors = [i for i in range(count) if i != victim]
    sent: Counter[int] = Counter()
    for position, index in enumerate(survivors):
        old = StripedPacer(schedule, index, count)
        below = old.local_below(boundary)
        j0 = heard.draw(st.integers(0, below), label=f"actor {index} heard at")
        sent.update(old.global_k(j) for j in range(j0))
        pacer = SwitchPacer(old, j0, StripedPacer(schedule, position, len(survivors), boundary))
        sent.update(pacer.global_k(j) for j in range(pacer.total()))
        # count_due agrees with due_s.
        for t_s in (0.0, 1.234, 3.5, 6.0):
            assert pacer.count_due(t_s) == sum(pacer.due_s(j) <= t_s
                                               for j in range(pacer.total()))
    assert max(sent.values()) == 1
    missing = set(range(schedule.total())) - set(sent)
    assert missing == {k for k in range(boundary) if k % count == victim}


# ----- catch-up -------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [0, -2])
def test_a_bad_catch_up_is_refused(step: int) -> None:
    engine = Engine(EngineConfig(urls=("https://rafale.test/",),
                                 schedule=Schedule.constant(10, 1.0)))
    with pytest.raises(ValueError, match="catch-up step"):
        engine.catch_up([(0, 10, step)])


@given(switches=st.integers(1, 30), data=st.data())
def test_stripe_switches_settle_instead_of_nesting(switches: int, data: st.DataObject) -> None:
    """Many restripes, each heard before its boundary and passed before the next one (as
    restripes a second apart with a boundary 0.5 s ahead are): the pacer never nests more
    than one switch deep, and every request is sent once, in order."""
    slots = Slots(Schedule.constant(1000, 600.0), 0, 2)
    sent: list[int] = []

    def send() -> None:
        sent.append(slots.pacer.global_k(slots.j))
        slots.advance()

    for _ in range(switches):
        boundary = slots.pacer.global_k(slots.j) + data.draw(st.integers(0, 40))
        assert slots.set_stripe(0, data.draw(st.integers(1, 3)), boundary, 0.0, len(sent))
        depth, pacer = 0, slots.pacer
        while isinstance(pacer, SwitchPacer):
            depth, pacer = depth + 1, pacer.old
        assert depth <= 1
        while slots.pacer.global_k(slots.j) < boundary:
            send()
        for _ in range(data.draw(st.integers(0, 5))):
            send()
    assert sent == sorted(sent) and len(set(sent)) == len(sent)


def test_a_gap_handed_to_an_engine_past_its_end_counts_as_intended_and_dropped() -> None:
    engine = Engine(EngineConfig(urls=("https://rafale.test/",),
                                 schedule=Schedule.constant(10, 1.0)))
    engine.phase = Phase.ENDING  # the loop thread sets it when sending is over
    engine._do_catch_up([range(0, 40, 2)])
    engine.recorder.roll(1, in_flight=0, cpu_s_total=0.0, loops_total=0)
    [window] = engine.drain()
    assert (window["intended"], window["dropped"], window["sent"]) == (20, 20, 0)
    assert engine.status()["catch_up_left"] == 0
