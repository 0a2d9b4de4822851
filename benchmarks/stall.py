"""The sender as the bottleneck (issue 28): one engine starved of its core for a few seconds.

One sender at 1,000 req/s over h2 (in-flight cap 2,000) against the embedded target. The
engine runs in a child process pinned to core 0 at niceness 19; the target, this driver
and everything else are pinned to core 1. From second ``busy_from_s`` on, four busy-loop
processes (niceness 0) share core 0 with the sender for ``busy_for_s``; they are then
killed by pid. What the windows say per second (intended, sent, loop turns, late and its
causes, the sender's run-queue wait and whether the second was flagged stalled), and the
run's totals, are printed; ``--json`` writes them.

    .venv/bin/python -m benchmarks.stall [--seconds 8] [--busy-from 2] [--busy-for 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.contention import OTHER_CORE, SENDER_CORE, busy_loops, pin
from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.engine import run_in_process
from rafale.actors.pacing import Schedule
from rafale.cluster.target import Target

RATE_PER_S = 1000.0
BUSY_LOOPS = 4
SENDER_NICENESS = 19


def config(target: Target, seconds: float, **extra: Any) -> EngineConfig:
    return EngineConfig(
        urls=(target.https_url,), http="2", cacert=str(target.ca_file),
        resolve=tuple(ResolveEntry.parse(r) for r in target.resolve),
        schedule=Schedule.constant(RATE_PER_S, seconds), duration_s=seconds,
        max_in_flight=2000, in_flight_step=2000, timeout_s=5.0, drain_s=1.0, **extra)


def _child(cfg: EngineConfig, start_at_s: float, niceness: int, pinned: bool,
           queue: Any) -> None:
    """The sender: pinned to the sender core (``pinned``), every thread at ``niceness``."""
    if pinned:
        pin(os.getpid(), {SENDER_CORE})
    for task in Path("/proc/self/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)
    queue.put(run_in_process(cfg, start_at_s))


@dataclass
class Scenario:
    """What one run of the scenario measured."""

    seconds: float
    busy_from_s: float
    busy_for_s: float
    niceness: int
    windows: list[dict[str, Any]] = field(default_factory=list)

    def per_second(self) -> list[dict[str, Any]]:
        keys = ("second", "intended", "sent", "loops", "late", "late_stall", "late_cap",
                "late_loop", "failed", "stalled", "runq_wait_us", "loop_gap_max_us")
        return [{k: w.get(k) for k in keys} for w in sorted(self.windows,
                                                            key=lambda w: w["second"])]

    def totals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("intended", "sent", "completed", "failed", "late", "late_stall",
                    "late_cap", "late_loop", "dropped"):
            out[key] = sum(int(w.get(key) or 0) for w in self.windows)
        errors: dict[str, int] = {}
        for w in self.windows:
            for k, v in (w.get("error") or {}).items():
                errors[k] = errors.get(k, 0) + int(v)
        out["errors"] = errors
        out["stalled_seconds"] = [int(w["second"]) for w in self.windows if w.get("stalled")]
        return out


def affinities(pid: int) -> dict[int, set[int]]:
    """Every thread of process ``pid`` and the cores it may run on."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = os.sched_getaffinity(int(task.name))
        except (ProcessLookupError, PermissionError):
            continue
    return found


def run(target: Target, seconds: float = 8.0, busy_from_s: float = 2.0,
        busy_for_s: float = 3.0, niceness: int = SENDER_NICENESS, **extra: Any) -> Scenario:
    """The scenario once (see the module's docstring); busy loops killed by pid, this
    process's and the target's cores given back at the end. ``busy_for_s=0``: no busy
    loops and nothing pinned (a quiet run, as one would run it)."""
    pinned = busy_for_s > 0
    kept = {pid: affinities(pid) for pid in (os.getpid(), int(target.pid or 0))} if pinned else {}
    for pid in kept:
        pin(pid, {OTHER_CORE})
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at_s = time.time() + 1.0
    child = ctx.Process(target=_child, args=(config(target, seconds, **extra), start_at_s,
                                             niceness, pinned, queue))
    busy: list[subprocess.Popen[bytes]] = []
    try:
        child.start()
        if pinned:
            time.sleep(max(0.0, start_at_s + busy_from_s - time.time()))
            busy = busy_loops(BUSY_LOOPS)
            time.sleep(busy_for_s)
    finally:
        for loop in busy:
            loop.kill()
            loop.wait()
        try:
            windows = queue.get(timeout=seconds + 60)
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
            for threads in kept.values():
                for tid, cores in threads.items():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.sched_setaffinity(tid, cores)
    return Scenario(seconds, busy_from_s, busy_for_s, niceness, windows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--busy-from", type=float, default=2.0)
    parser.add_argument("--busy-for", type=float, default=3.0, help="0: a quiet run")
    parser.add_argument("--niceness", type=int, default=SENDER_NICENESS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        parser.error("needs 2 CPUs: one for the sender and its busy loops, one for the rest")
    with Target() as target:
        scenario = run(target, args.seconds, args.busy_from, args.busy_for, args.niceness)
    for row in scenario.per_second():
        print(row)
    print(scenario.totals())
    if args.json is not None:
        args.json.write_text(json.dumps({"per_second": scenario.per_second(),
                                         "totals": scenario.totals()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
