"""Driver scale, flat against tree: the driver's CPU per second of run when it gets every
sender's window as it is (flat) and when one aggregator per node has made that node's
windows ready first (tree, ``analysis/node_batch.py``: the rows as Arrow batches, each
second's windows merged), for thousands of senders.

The same synthetic windows as ``benchmarks/driver_scale.py`` (4 histograms with samples
each, 6 in all, real HdrHistogram encodings), the same simulated driver seconds (the window
log, the progress snapshot, a checkpoint every 5 s, the final compaction). In tree mode each
second's windows first go through every node's aggregator, in this process, each node's
CPU measured apart (on a real cluster each runs on its own node, beside its senders),
including pickling its answer; the driver's measure includes unpickling them, as Ray's
replies are. Not simulated: Ray's own cost of one call per sender (flat) or per node (tree)
a second.

    .venv/bin/python -m benchmarks.driver_scale --mode flat,tree --senders 256,1024,4096
        --nodes 16,64,256 --seconds 20 --out docs/results
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

from benchmarks import driver_scale
from benchmarks.driver_scale import _ms
from rafale.analysis.log import WindowLog
from rafale.analysis.node_batch import node_batch

MODES = ("flat", "tree")
AGGREGATOR_CPU_TARGET_S = 0.1  # per second of run, one aggregator of 64 senders
AGGREGATOR_TARGET_SENDERS = 64


@dataclass(frozen=True)
class ModeCase:
    """One (mode, senders, nodes) case; CPU in seconds per second of run."""

    mode: str
    senders: int
    nodes: int
    seconds: int
    windows: int
    driver_cpu_s_per_s: float  # mean over every second, checkpoints included
    driver_cpu_median_s: float
    driver_cpu_p99_s: float
    aggregator_cpu_s_per_s: float  # median over nodes x seconds (0 when flat)
    aggregator_cpu_max_s: float
    summary_sha256: str
    wall_s: float

    @property
    def senders_per_node(self) -> float:
        return self.senders / self.nodes


class Aggregators:
    """Every node's aggregator of a tree run, one after the other: each second's windows
    (in actor order, a node's together) merged node by node, the CPU of each kept."""

    def __init__(self) -> None:
        self.cpu_s: list[float] = []

    def __call__(self, windows: list[dict[str, Any]]) -> Callable[[WindowLog], None]:
        replies: list[bytes] = []
        for _, group in groupby(windows, key=lambda window: window["node"]):
            began = time.process_time()
            replies.append(pickle.dumps(node_batch(list(group))))
            self.cpu_s.append(time.process_time() - began)

        def driver(log: WindowLog) -> None:
            for reply in replies:
                log.append_node(pickle.loads(reply))
        return driver


def run_mode(mode: str, senders: int, nodes: int, seconds: int,
             pool: list[dict[str, Any]]) -> ModeCase:
    aggregators = Aggregators() if mode == "tree" else None
    case = driver_scale.run_case(senders, seconds, 10**12, pool, nodes=nodes,
                                 prepare=aggregators)
    spent = aggregators.cpu_s if aggregators is not None else [0.0]
    return ModeCase(
        mode=mode, senders=senders, nodes=nodes, seconds=seconds, windows=case.windows,
        driver_cpu_s_per_s=case.cpu_per_s_mean_s, driver_cpu_median_s=case.cpu_per_s_median_s,
        driver_cpu_p99_s=case.cpu_per_s_p99_s,
        aggregator_cpu_s_per_s=statistics.median(spent), aggregator_cpu_max_s=max(spent),
        summary_sha256=case.summary_sha256, wall_s=case.wall_s)


def verdicts(cases: list[ModeCase]) -> list[str]:
    """One line per target: met / MISSED with the figures (or why it is not judged)."""
    lines: list[str] = []
    trees = [c for c in cases if c.mode == "tree"]
    if trees:
        top = max(trees, key=lambda c: (c.senders, c.driver_cpu_s_per_s))
        flat = next((c for c in cases if c.mode == "flat" and c.senders == top.senders), None)
        lines.append(
            f"- driver CPU per second of run at {top.senders:,} senders (tree, {top.nodes} "
            f"nodes) < {driver_scale.CPU_TARGET_S:g} s: "
            f"{'met' if top.driver_cpu_s_per_s < driver_scale.CPU_TARGET_S else 'MISSED'}: "
            f"{top.driver_cpu_s_per_s:.3f} s" + (f" (flat: {flat.driver_cpu_s_per_s:.3f} s)"
                                                 if flat else ""))
        widest = max(trees, key=lambda c: (c.senders_per_node, c.aggregator_cpu_s_per_s))
        judged = widest.senders_per_node >= AGGREGATOR_TARGET_SENDERS
        verdict = ("not judged: no case has "
                   f"{AGGREGATOR_TARGET_SENDERS} senders a node" if not judged else
                   "met" if widest.aggregator_cpu_s_per_s < AGGREGATOR_CPU_TARGET_S else "MISSED")
        lines.append(
            f"- one aggregator's CPU per second of run for {AGGREGATOR_TARGET_SENDERS} senders "
            f"< {AGGREGATOR_CPU_TARGET_S:g} s: {verdict}: median "
            f"{widest.aggregator_cpu_s_per_s:.3f} s, max {widest.aggregator_cpu_max_s:.3f} s "
            f"at {widest.senders_per_node:g} senders a node")
    pairs = [(c, f) for c in trees for f in cases
             if f.mode == "flat" and (f.senders, f.nodes, f.seconds)
             == (c.senders, c.nodes, c.seconds)]
    same = sum(c.summary_sha256 == f.summary_sha256 for c, f in pairs)
    verdict = ("not judged (no case in both modes)" if not pairs else
               f"{'met' if same == len(pairs) else 'MISSED'}: {same} of {len(pairs)} cases")
    lines.append("- the run's summary through the aggregators equals the flat one (sha-256 of "
                 f"its JSON): {verdict}")
    return lines


def markdown(cases: list[ModeCase], lines: list[str]) -> str:
    rows = ["| mode | senders | nodes | senders a node | windows | driver CPU/s mean | median "
            "| p99 | aggregator CPU/s median | max |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cases:
        aggregator = ((_ms(c.aggregator_cpu_s_per_s), _ms(c.aggregator_cpu_max_s))
                      if c.mode == "tree" else ("-", "-"))
        rows.append(f"| {c.mode} | {c.senders:,} | {c.nodes} | {c.senders_per_node:g} "
                    f"| {c.windows:,} | {_ms(c.driver_cpu_s_per_s)} "
                    f"| {_ms(c.driver_cpu_median_s)} | {_ms(c.driver_cpu_p99_s)} "
                    f"| {aggregator[0]} | {aggregator[1]} |")
    return "\n".join([*rows, "", "Targets:", "", *lines]) + "\n"


def main(modes: list[str], senders: list[int], nodes: list[int], seconds: int,
         out: Path, quick: bool = False) -> int:
    """Every mode for every (senders, nodes) pair; writes driver_tree.json and .md."""
    info = driver_scale.machine()
    pool = driver_scale.window_pool(16 if quick else 64)
    driver_scale.run_case(min(senders), int(driver_scale.CHECKPOINT_EVERY_S), 10**12,
                          pool)  # warm-up, not kept
    cases: list[ModeCase] = []
    for n, m in zip(senders, nodes, strict=True):
        for mode in modes:
            case = run_mode(mode, n, m, seconds, pool)
            cases.append(case)
            print(f"{mode} senders={n} nodes={m}: driver CPU/s mean "
                  f"{_ms(case.driver_cpu_s_per_s)}, aggregator median "
                  f"{_ms(case.aggregator_cpu_s_per_s)} ({case.wall_s:.0f} s)", flush=True)
    info["load_average_end"] = list(os.getloadavg())
    lines = verdicts(cases)
    text = markdown(cases, lines)
    print("\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "driver_tree.md").write_text(text, encoding="utf-8")
    raw = {"machine": info, "seconds": seconds, "quick": quick,
           "cases": [asdict(c) for c in cases], "verdicts": lines}
    (out / "driver_tree.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return 0
