"""The sending thread's scheduler slice (Linux 6.12+ EEVDF custom slices)."""

from __future__ import annotations

import platform
import threading

import pytest

from rafale.actors.engine import Engine
from rafale.actors.pacing import Schedule
from rafale.actors.priority import ENGINE_SLICE_US, niceness, request_slice
from rafale.cluster.target import Target
from tests.helpers import target_config as config_for

CUSTOM_SLICES = tuple(int(x) for x in platform.release().split(".")[:2]) >= (6, 12)


def in_thread(call):  # type: ignore[no-untyped-def]
    """call() in a new thread (a slice belongs to one thread), with its niceness after."""
    found = []
    thread = threading.Thread(target=lambda: found.append((call(), niceness())))
    thread.start()
    thread.join()
    return found[0]


@pytest.mark.skipif(not CUSTOM_SLICES, reason=f"kernel {platform.release()} < 6.12: no "
                                               "custom slices (request_slice says so)")
def test_a_thread_gets_the_slice_it_asks_for_and_keeps_its_niceness() -> None:
    before = niceness()
    (got, note), nice = in_thread(lambda: request_slice(250))
    assert (got, note) == (250, "")
    assert nice == before
    assert niceness() == before  # only that thread changed


def test_the_engine_loop_runs_with_its_short_slice(target: Target) -> None:
    engine = Engine(config_for(target, "2", schedule=Schedule.constant(20, 0.2), duration_s=0.2))
    engine.run()
    status = engine.status()
    if CUSTOM_SLICES:
        assert status["slice_us"] == ENGINE_SLICE_US, engine.slice_note
    else:
        assert engine.slice_note, status
    off = Engine(config_for(target, "2", schedule=Schedule.constant(20, 0.2), duration_s=0.2,
                            slice_us=None))
    off.run()
    assert off.status()["slice_us"] is None

