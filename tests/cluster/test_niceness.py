"""Senders keep their timing on a busy core: Ray's default worker niceness (15) is lowered
by the actor when it may, and warned about everywhere when it may not."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rafale.actors.priority import niceness, renice_process
from rafale.analysis import store
from rafale.cluster.target import Target
from tests.rayhead import RayHead

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# A Ray node started the default way (`ray start`, no RAY_worker_niceness) by a user who
# may not lower niceness: root without CAP_SYS_NICE.
NO_SYS_NICE = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice"]


@pytest.fixture
def default_ray() -> Iterator[tuple[str, dict[str, str]]]:
    """A one-CPU Ray head on loopback started by `ray start` with Ray's default worker
    niceness and no right to lower it; yields (address, the driver's environment). Torn
    down by process id."""
    with RayHead(num_cpus=1, prefix=NO_SYS_NICE, worker_niceness=None) as head:
        yield head.address, head.env


def test_renice_process_lowers_every_thread_when_allowed() -> None:
    script = ("import os, threading, time\n"
              "from rafale.actors.priority import renice_process, niceness\n"
              "os.nice(5)\n"
              "t = threading.Thread(target=time.sleep, args=(2,)); t.start()\n"
              "p = renice_process(0)\n"
              "tids = [int(x) for x in os.listdir('/proc/self/task')]\n"
              "print(p.started, p.now, max(niceness(tid) for tid in tids))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    started, now, highest = map(int, done.stdout.split())
    assert started >= 5 and now == 0 and highest == 0  # as root here: allowed
    denied = subprocess.run([*NO_SYS_NICE, sys.executable, "-c", script], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert denied.returncode == 0, denied.stderr
    started, now, highest = map(int, denied.stdout.split())
    assert started == now == highest >= 5  # not allowed: unchanged, and said so
    assert niceness() <= 0 and renice_process(0).warning("x") == ""


def test_a_sender_that_cannot_lower_its_niceness_is_warned_about(
        target: Target, tmp_path: Path, default_ray: tuple[str, dict[str, str]]) -> None:
    address, env = default_ray
    out = tmp_path / "nice"
    args = [sys.executable, "-m", "rafale.cluster.cli", "run", target.https_url, "--rate", "50",
            "--duration", "2s", "--actors", "1", "--address", address, "--out", str(out),
            "--no-charts", "--cacert", str(target.ca_file)]
    for entry in target.resolve:
        args += ["--resolve", entry]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    expected = "runs at niceness 15: its timing degrades when the core is busy"
    assert expected in done.stderr and "RAY_worker_niceness=0" in done.stderr
    assert expected in done.stdout  # the summary
    meta = store.load(out).meta
    assert meta["niceness_max"] == 15
    assert [(a["niceness_started"], a["niceness"]) for a in meta["actors"]] == [(15, 15)]
    assert len(meta["warnings"]) == 1 and expected in meta["warnings"][0]


@pytest.mark.cores  # its busy loops and its rate need the cores to themselves
def test_a_sender_keeps_its_rate_beside_three_busy_loops_on_its_core(target: Target) -> None:
    """The contention benchmark's hardest case through Ray, with loose bounds (its README
    figures come from `python -m benchmarks.contention` on a quiet machine)."""
    import ray

    from benchmarks.contention import in_process, through_ray

    try:
        case = through_ray(target, seconds=5.0, loops=3)
    finally:
        ray.shutdown()
    assert case.niceness == 0 and case.seconds == 4
    assert case.sent_error_max <= 0.05, case
    assert case.loops_per_s_min >= 500, case
    bare = in_process(target, seconds=3.0, loops=1)
    assert bare.seconds == 2 and bare.sent_error_max <= 0.05, bare
