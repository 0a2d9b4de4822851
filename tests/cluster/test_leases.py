"""Leases on a local Ray: an actor frozen (SIGSTOP: it neither sends nor answers, as a host
cut off from the driver) is declared lost after ``lease_s``, its stripe and its gap go to
the survivor, and when it is thawed it has fenced itself: it sends nothing more, its windows
are drained and kept, and the event is recorded."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from rafale.analysis import store
from rafale.analysis.report import summary_text
from rafale.cluster.progress import Snapshot
from rafale.cluster.run import Run, start
from rafale.cluster.target import Target
from tests.faults.test_run_faults import options, sent_by, wait_until_elapsed

pytestmark = pytest.mark.slow

RATE, DURATION_S, LEASE_S = 400, 9, 2.0
FREEZE_AT_S, THAW_AT_S = 2.3, 6.5


@pytest.fixture(autouse=True)
def _ray(local_ray: None) -> None:
    """Every test here runs on the module's local Ray (conftest.py)."""


def frozen_run(target: Target, tmp_path: Path, gap: str
               ) -> tuple[Run, list[float], float, float]:
    """A 2-actor run with actor 1 frozen from FREEZE_AT_S to THAW_AT_S."""
    ticks: list[float] = []

    def on_progress(snapshot: Snapshot) -> None:
        ticks.append(time.time())

    run = start(**options(target, rate_per_s=RATE, duration_s=DURATION_S, actors=2,
                          lease_s=LEASE_S, gap=gap, out=str(tmp_path / gap)),
                on_progress=on_progress)
    pid = run.actors[1]["pid"]
    wait_until_elapsed(run, FREEZE_AT_S)
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.time() - run.start_at_s
    try:
        wait_until_elapsed(run, THAW_AT_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    thawed_at = time.time() - run.start_at_s
    run.wait(timeout=60)
    return run, ticks, frozen_at, thawed_at


def check_loss(run: Run, ticks: list[float], frozen_at: float, thawed_at: float
               ) -> dict[str, Any]:
    saved = store.load(run.spec.out or "")
    meta = saved.meta
    assert meta["ended"] == "completed", meta["notes"]
    [lost] = meta["lost"]
    print(f"frozen at {frozen_at:.2f} s, thawed at {thawed_at:.2f} s; lost: {lost}")
    assert lost["actor"] == 1 and lost["detected"] == "lease"
    assert "lease expired" in lost["reason"]
    # Declared lease_s after its last answer (a drain tick before the freeze), within
    # lease_s + 1 s of the freeze; the survivor took over at once.
    assert LEASE_S <= lost["silent_s"] < LEASE_S + 1.0
    assert 0 < lost["at_s"] - frozen_at <= LEASE_S + 1.0
    assert lost["takeover_at_s"] - lost["at_s"] < 0.5
    # It came back fenced: stopped by its own lease, before the takeover.
    assert lost["came_back_at_s"] >= thawed_at - 0.1
    fenced = lost["fenced"]
    assert fenced and "lease_s" in fenced["why"]
    # The progress line kept coming every second while the actor was silent (~4 ticks in
    # the 4.2 s freeze; a driver waiting on the frozen actor would show none until the
    # lease ran out): at least 3, so that one tick late on a busy machine is not a failure.
    during = [t - run.start_at_s for t in ticks
              if frozen_at < t - run.start_at_s < thawed_at]
    assert len(during) >= 3, (during, frozen_at, thawed_at)
    # Its windows were drained when it came back and kept: it sent nothing after the
    # freeze (its lease stopped it when it woke, before any send).
    per_actor = sent_by(saved.windows, "actor", "second")
    later = [s for (a, s) in per_actor.index if a == 1 and s >= math.ceil(frozen_at)]
    assert later, per_actor
    assert all(per_actor[(1, s)] == 0 for s in later), per_actor
    text = summary_text(saved)
    assert "lost" in text and "lease expired" in text and "answered again" in text
    return {"lost": lost, "summary": saved.summary, "windows": saved.windows}


def test_a_frozen_actor_is_lost_by_its_lease_and_its_gap_is_caught_up(
        target: Target, tmp_path: Path) -> None:
    run, ticks, frozen_at, thawed_at = frozen_run(target, tmp_path, "catch-up")
    found = check_loss(run, ticks, frozen_at, thawed_at)
    gap = found["lost"]["gap"]
    assert gap["mode"] == "catch-up" and gap["requests"] > 0
    # The gap: actor 1's half of the schedule from its last drained second to the boundary.
    span_s = found["lost"]["at_s"] + 0.5 - gap["from_s"]
    assert abs(gap["requests"] - RATE / 2 * span_s) <= 0.1 * RATE, gap
    requests = found["summary"]["requests"]
    scheduled = RATE * DURATION_S
    # The run's total follows the schedule; what actor 1 sent between its last drained
    # second and the freeze was sent again (it brought those windows back).
    resent = RATE / 2 * (frozen_at - gap["from_s"])
    assert scheduled <= requests["sent"] <= scheduled + resent + 5, requests
    assert requests["intended"] <= scheduled + resent + 5, requests
    # The gap's requests due before the takeover were sent late.
    overdue = RATE / 2 * (found["lost"]["takeover_at_s"] - gap["from_s"])
    assert requests["late"] >= overdue - 5, (requests, gap)
    assert requests["dropped"] == 0


def test_with_gap_skip_the_gap_is_counted_not_sent(target: Target, tmp_path: Path) -> None:
    run, ticks, frozen_at, thawed_at = frozen_run(target, tmp_path, "skip")
    found = check_loss(run, ticks, frozen_at, thawed_at)
    gap = found["lost"]["gap"]
    assert gap["mode"] == "skip" and gap["requests"] > 0
    requests = found["summary"]["requests"]
    scheduled = RATE * DURATION_S
    # The gap was not sent: short of the schedule by about the gap (less what actor 1
    # sent before the freeze, whose window it brought back).
    short = scheduled - requests["sent"]
    assert 0 < short <= gap["requests"], (short, gap)
    # Every second after the takeover carries the rate, without a burst.
    per_second = sent_by(found["windows"], "second")
    after = range(math.ceil(found["lost"]["takeover_at_s"] + 0.5), DURATION_S)
    assert all(abs(per_second[s] - RATE) <= 0.05 * RATE for s in after), dict(per_second)
