"""Driver scale: feed the driver's window log synthetic windows of N actors for T seconds.

No Ray: the drain loop of ``cluster/run.py`` is simulated second by second without sleeping.
Each simulated second appends the windows of all N actors for that second to one
``WindowLog(unsaved=True)`` and takes one progress ``snapshot``; every
``CHECKPOINT_EVERY_S`` simulated seconds a ``Checkpoints.append`` writes into a temporary
directory; at the end ``Checkpoints.finish`` compacts. Windows are realistic (300..1,000
lognormal latencies, status/error/address/version maps, real encoded HdrHistograms): a pool
is built once and reused with new actor and second numbers, so the input costs little while
the driver still decodes every window's two histograms.

Reported per (N, T): driver CPU per simulated second (``time.process_time``; median and p99
over the seconds without a checkpoint, mean over all seconds including checkpoints),
checkpoint wall time (median, max, median of the last 5), final compaction wall time, and
memory per stored window (Arrow bytes of the log's tables, RSS growth) next to the encoded
histogram bytes a window carries. Cases above ``--max-windows`` run their first seconds only
and are marked "cut".

    .venv/bin/python -m benchmarks.driver_scale [--actors 2,16,64,256] [--seconds 60,600,3600]
        [--max-windows 250000] [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import hashlib
import json
import math
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa

from rafale.actors.contract import (
    CONNECT,
    LATENCIES,
    LATENCY_CORRECTED,
    LATENCY_FAILED,
    LATENCY_RAW,
    SEND_LAG,
    TTFB,
    encode,
    new_histogram,
)
from rafale.analysis.log import WindowLog
from rafale.analysis.store import Checkpoints
from rafale.analysis.summary import summarize
from rafale.cluster.progress import snapshot
from rafale.cluster.run import CHECKPOINT_EVERY_S

ADDRESSES = ("127.0.0.2", "127.0.0.3", "::1", "127.0.0.4")  # labels only: nothing is sent
ACTORS_PER_NODE = 16
CPU_TARGET_S = 0.3  # driver CPU per second of run, at the largest N
MEMORY_TARGET_BYTES = 4096  # per window, on top of its encoded histograms
CHECKPOINT_RATIO_TARGET = 2.0  # last checkpoints at the longest T / at the shortest T
MEMORY_JUDGED_WINDOWS = 10_000  # RSS growth is noise below this many windows


@dataclass(frozen=True)
class Case:
    """The figures of one (actors, seconds) case; times in s, memory in bytes per window."""

    actors: int
    seconds: int
    seconds_run: int
    cut: bool
    windows: int
    cpu_per_s_median_s: float
    cpu_per_s_p99_s: float
    cpu_per_s_mean_s: float
    checkpoints: int
    checkpoint_median_s: float
    checkpoint_max_s: float
    checkpoint_last5_s: float
    compaction_s: float
    arrow_bytes_per_window: float
    hist_bytes_per_window: float
    rss_bytes_per_window: float
    wall_s: float
    # The run's summary at the end, hashed: two ways of feeding the driver the same windows
    # (flat, or merged by node aggregators) must give the same one.
    summary_sha256: str = ""


# Figures that must be positive in any case (RSS growth may be ~0 or negative when small).
FIGURES = ("cpu_per_s_median_s", "cpu_per_s_p99_s", "cpu_per_s_mean_s", "checkpoint_median_s",
           "checkpoint_max_s", "checkpoint_last5_s", "compaction_s", "arrow_bytes_per_window",
           "hist_bytes_per_window", "wall_s")


def window_pool(size: int, seed: int = 7) -> list[dict[str, Any]]:
    """``size`` encoded windows of the contract with 300..1,000 lognormal latencies each."""
    rng = random.Random(seed)
    pool: list[dict[str, Any]] = []
    for _ in range(size):
        completed = rng.randint(300, 1000)
        corrected, raw, ttfb, connect = (new_histogram() for _ in range(4))
        for _ in range(completed):
            raw_us = max(1, int(rng.lognormvariate(7.5, 0.8)))
            raw.record_value(raw_us)
            ttfb.record_value(max(1, raw_us * 9 // 10))
            late_us = int(rng.expovariate(1 / 300)) if rng.random() < 0.2 else 0
            corrected.record_value(raw_us + late_us)
        failed, unavailable = rng.randint(0, 3), rng.randint(0, 2)
        failures, lag = new_histogram(), new_histogram()
        for _ in range(failed):
            failures.record_value(10_000_000)  # timeouts
        for _ in range(completed + failed):  # one send lag per sent request
            lag.record_value(max(1, int(rng.lognormvariate(5.0, 1.0))))
        opened = rng.randint(0, 1)
        for _ in range(opened):
            connect.record_value(max(1, int(rng.lognormvariate(7.0, 0.5))))
        share = completed // len(ADDRESSES)
        address = {a: share for a in ADDRESSES}
        address[ADDRESSES[0]] += completed - share * len(ADDRESSES)
        pool.append({
            "run_id": "driver-scale", "node": "", "actor": 0, "second": 0,
            "intended": completed + failed, "sent": completed + failed, "completed": completed,
            "failed": failed, "late": rng.randint(0, 5), "in_flight": rng.randint(10, 100),
            "bytes_in": completed * 350, "new_connections": opened,
            "cpu_s": rng.uniform(0.2, 0.6), "loops": rng.randint(500, 3000),
            "status": {"200": completed - unavailable, **({"503": unavailable} if unavailable
                                                         else {})},
            "error": {"timeout:28": failed} if failed else {},
            "address": address, "version": {"2": completed},
            LATENCY_CORRECTED: encode(corrected), LATENCY_RAW: encode(raw),
            LATENCY_FAILED: encode(failures), SEND_LAG: encode(lag),
            CONNECT: encode(connect), TTFB: encode(ttfb),
        })
    return pool


def node_of(actor: int, actors: int, nodes: int | None = None) -> str:
    """The node an actor runs on: ``ACTORS_PER_NODE`` a node, or ``nodes`` even groups."""
    return f"node-{actor // ACTORS_PER_NODE if nodes is None else actor * nodes // actors}"


def windows_for(second: int, actors: int, pool: list[dict[str, Any]],
                nodes: int | None = None) -> list[dict[str, Any]]:
    """One drain: the window of every actor for ``second`` (shallow copies of pool windows),
    in actor order (a node's actors next to each other)."""
    return [{**pool[(second * actors + a) % len(pool)], "actor": a, "second": second,
             "node": node_of(a, actors, nodes)} for a in range(actors)]


# Runs on the nodes, before the driver's measure: takes one drain's windows, returns what
# the driver then does with the nodes' answers (inside the measure), given its log.
Prepare = Callable[[list[dict[str, Any]]], Callable[[WindowLog], None]]


def settled_rss() -> int:
    """RSS after returning freed memory to the OS (gc, Arrow's pool, glibc's malloc_trim)."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(psutil.Process().memory_info().rss)


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def run_case(actors: int, seconds: int, max_windows: int, pool: list[dict[str, Any]],
             each_second: Callable[[WindowLog], object] | None = None, *,
             nodes: int | None = None, prepare: Prepare | None = None) -> Case:
    """One case; ``each_second(log)`` runs inside each simulated second's CPU measure (what
    else the driver does every second: benchmarks/metrics_cost.py scrapes /metrics there);
    ``prepare(windows)`` outside it, before the driver gets them (the node aggregators of
    benchmarks/driver_tree.py), returning the driver's step that replaces appending the
    windows; ``nodes`` splits the actors into that many nodes."""
    every = int(CHECKPOINT_EVERY_S)
    cut = actors * seconds > max_windows
    seconds_run = max(every, max_windows // actors) if cut else seconds
    meta = {"run_id": "driver-scale", "spec": {"run_s": seconds, "actors": actors},
            "actors": [{"index": a, "node": node_of(a, actors, nodes)} for a in range(actors)]}
    log = WindowLog(unsaved=True)
    plain_cpu: list[float] = []
    all_cpu: list[float] = []
    checkpoint_s: list[float] = []
    hist_bytes = 0
    with tempfile.TemporaryDirectory(prefix="driver_scale-") as tmp:
        checkpoints = Checkpoints(tmp)
        rss_before = settled_rss()
        began = time.perf_counter()
        for second in range(seconds_run):
            windows = windows_for(second, actors, pool, nodes)
            hist_bytes += sum(len(w[name]) for w in windows for name in LATENCIES)
            step = prepare(windows) if prepare is not None else None
            cpu_began = time.process_time()
            if step is None:
                log.append(windows)
            else:
                step(log)
            snapshot(log, elapsed_s=second + 1.0, total_s=float(seconds), state="sending",
                     actors_alive=actors, actors_total=actors)
            if each_second is not None:
                each_second(log)
            cpu_s = time.process_time() - cpu_began
            if (second + 1) % every:
                plain_cpu.append(cpu_s)
                all_cpu.append(cpu_s)
                continue
            cpu_began, wall_began = time.process_time(), time.perf_counter()
            checkpoints.append(*log.take_unsaved(), meta, summarize(log.total()))
            checkpoint_s.append(time.perf_counter() - wall_began)
            all_cpu.append(cpu_s + time.process_time() - cpu_began)
        log.seal_all()
        rss_after = settled_rss()
        wall_began = time.perf_counter()
        tables = log.tables()
        summary = summarize(log.total())
        checkpoints.finish(*tables, meta, summary)
        compaction_s = time.perf_counter() - wall_began
        wall_s = time.perf_counter() - began
    windows_total = len(log)
    return Case(
        actors=actors, seconds=seconds, seconds_run=seconds_run, cut=cut, windows=windows_total,
        cpu_per_s_median_s=statistics.median(plain_cpu), cpu_per_s_p99_s=p99(plain_cpu),
        cpu_per_s_mean_s=statistics.fmean(all_cpu), checkpoints=len(checkpoint_s),
        checkpoint_median_s=statistics.median(checkpoint_s), checkpoint_max_s=max(checkpoint_s),
        checkpoint_last5_s=statistics.median(checkpoint_s[-5:]), compaction_s=compaction_s,
        arrow_bytes_per_window=sum(t.nbytes for t in tables) / windows_total,
        hist_bytes_per_window=hist_bytes / windows_total,
        rss_bytes_per_window=(rss_after - rss_before) / windows_total, wall_s=wall_s,
        summary_sha256=hashlib.sha256(json.dumps(summary, sort_keys=True, default=str)
                                      .encode()).hexdigest())


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def _t(case: Case) -> str:
    return f"T={case.seconds_run}" + (f" (T={case.seconds} cut)" if case.cut else "")


def verdicts(cases: list[Case]) -> list[str]:
    """One line per target: met / MISSED with the numbers (or why it is not judged)."""
    parts: list[str] = []
    ok = True
    for n in sorted({c.actors for c in cases}):
        row = sorted((c for c in cases if c.actors == n), key=lambda c: c.seconds_run)
        if len(row) < 2:
            continue
        short, long = row[0], row[-1]
        ratio = long.checkpoint_last5_s / short.checkpoint_last5_s
        ok = ok and ratio <= CHECKPOINT_RATIO_TARGET
        parts.append(f"N={n}: {_ms(short.checkpoint_last5_s)} at {_t(short)} -> "
                     f"{_ms(long.checkpoint_last5_s)} at {_t(long)} ({ratio:.2f}x)")
    lines = [f"- checkpoint time independent of T (median of the last 5 checkpoints, longest T "
             f"<= {CHECKPOINT_RATIO_TARGET:g}x shortest): "
             + (f"{'met' if ok else 'MISSED'}: " + "; ".join(parts) if parts
                else "not judged (one T per N)")]
    n_max = max(c.actors for c in cases)
    worst = max((c for c in cases if c.actors == n_max), key=lambda c: c.cpu_per_s_mean_s)
    lines.append(f"- driver CPU per second of run at N={n_max}"
                 f"{'' if n_max == 256 else ' (N=256 not run)'} < {CPU_TARGET_S:g} s: "
                 f"{'met' if worst.cpu_per_s_mean_s < CPU_TARGET_S else 'MISSED'}: worst mean "
                 f"{worst.cpu_per_s_mean_s:.3f} s at {_t(worst)} (median "
                 f"{worst.cpu_per_s_median_s:.3f} s, p99 {worst.cpu_per_s_p99_s:.3f} s)")
    judged = [c for c in cases if c.windows >= MEMORY_JUDGED_WINDOWS]
    which = (f"cases of >= {MEMORY_JUDGED_WINDOWS:,} windows" if judged else
             f"no case has {MEMORY_JUDGED_WINDOWS:,} windows: the largest, noisy")
    over = max(judged or [max(cases, key=lambda c: c.windows)],
               key=lambda c: c.rss_bytes_per_window - c.hist_bytes_per_window)
    extra = over.rss_bytes_per_window - over.hist_bytes_per_window
    lines.append(f"- memory per window < {MEMORY_TARGET_BYTES:,} B + encoded histograms "
                 f"(RSS growth, {which}): "
                 f"{'met' if extra < MEMORY_TARGET_BYTES else 'MISSED'}: worst {extra:,.0f} B "
                 f"over {over.hist_bytes_per_window:,.0f} B of histograms at N={over.actors} "
                 f"{_t(over)} (Arrow tables: {over.arrow_bytes_per_window:,.0f} B/window)")
    return lines


def markdown(cases: list[Case], lines: list[str], max_windows: int) -> str:
    head = ("| N | T (s) | windows | CPU/s median | CPU/s p99 | CPU/s mean incl. checkpoints "
            "| checkpoint median / max / last 5 | compaction | Arrow B/window | RSS B/window "
            "| histograms B/window |")
    rows = [head, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cases:
        t = f"{c.seconds_run} of {c.seconds} (cut)" if c.cut else str(c.seconds)
        rows.append(
            f"| {c.actors} | {t} | {c.windows:,} | {_ms(c.cpu_per_s_median_s)} "
            f"| {_ms(c.cpu_per_s_p99_s)} | {_ms(c.cpu_per_s_mean_s)} "
            f"| {_ms(c.checkpoint_median_s)} / {_ms(c.checkpoint_max_s)} / "
            f"{_ms(c.checkpoint_last5_s)} | {c.compaction_s:.2f} s "
            f"| {c.arrow_bytes_per_window:,.0f} | {c.rss_bytes_per_window:,.0f} "
            f"| {c.hist_bytes_per_window:,.0f} |")
    cut = [f"N={c.actors} x T={c.seconds} ran its first {c.seconds_run} s only"
           for c in cases if c.cut]
    if cut:
        rows += ["", f"Cut (--max-windows {max_windows:,}): " + "; ".join(cut) + "."]
    return "\n".join([*rows, "", "Targets:", "", *lines]) + "\n"


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "pyarrow": pa.__version__,
            "hdrhistogram": metadata.version("hdrhistogram"),
            "load_average": list(os.getloadavg()), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _modes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from benchmarks import driver_tree

    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    senders = _ints(args.senders or ("8,16" if args.quick else "256,1024,4096"))
    nodes = _ints(args.nodes or ("2,4" if args.quick else "16,64,256"))
    seconds = _ints(args.seconds or ("6" if args.quick else "20"))
    bad = [m for m in modes if m not in driver_tree.MODES]
    if not modes or bad:
        parser.error(f"--mode {args.mode!r}: each of {', '.join(driver_tree.MODES)}")
    if len(senders) != len(nodes) or any(m < 1 or n < m for n, m in zip(senders, nodes,
                                                                        strict=False)):
        parser.error(f"--senders {senders} and --nodes {nodes}: one node count per sender "
                     "count, each at least 1 and at most its senders")
    if len(seconds) != 1 or seconds[0] < CHECKPOINT_EVERY_S:
        parser.error(f"--seconds {seconds}: one value >= {CHECKPOINT_EVERY_S:g} with --mode")
    return driver_tree.main(modes, senders, nodes, seconds[0], args.out, args.quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--actors", help="comma-separated N (default 2,16,64,256)")
    parser.add_argument("--seconds", help="comma-separated T (default 60,600,3600)")
    parser.add_argument("--max-windows", type=int, default=250_000,
                        help="run only the first max-windows/N seconds of larger cases")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--mode", help="flat, tree or flat,tree: compare the driver fed by "
                        "every sender (flat) with one aggregator per node (tree), "
                        "benchmarks/driver_tree.py; writes driver_tree.json")
    parser.add_argument("--senders", help="with --mode: comma-separated sender counts "
                        "(default 256,1024,4096)")
    parser.add_argument("--nodes", help="with --mode: comma-separated node counts, one per "
                        "sender count (default 16,64,256)")
    args = parser.parse_args(argv)
    if args.mode is not None:
        return _modes(parser, args)
    actors = _ints(args.actors or ("2,8" if args.quick else "2,16,64,256"))
    seconds = _ints(args.seconds or ("6,11" if args.quick else "60,600,3600"))
    if min(seconds) < CHECKPOINT_EVERY_S or min(actors) < 1:
        parser.error(f"--seconds must be >= {CHECKPOINT_EVERY_S:g} (one checkpoint) and "
                     f"--actors >= 1, got {seconds} and {actors}")
    info = machine()
    pool = window_pool(16 if args.quick else 64)
    run_case(min(actors), int(CHECKPOINT_EVERY_S), args.max_windows, pool)  # warm-up, not kept
    cases: list[Case] = []
    for n in actors:
        for t in seconds:
            case = run_case(n, t, args.max_windows, pool)
            cases.append(case)
            print(f"N={n} T={t}{f' (cut at {case.seconds_run} s)' if case.cut else ''}: "
                  f"{case.windows:,} windows in {case.wall_s:.1f} s, CPU/s median "
                  f"{_ms(case.cpu_per_s_median_s)}, mean {_ms(case.cpu_per_s_mean_s)}, "
                  f"checkpoint last 5 {_ms(case.checkpoint_last5_s)}", flush=True)
    info["load_average_end"] = list(os.getloadavg())
    lines = verdicts(cases)
    table = markdown(cases, lines, args.max_windows)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "driver_scale.md").write_text(table, encoding="utf-8")
    raw = {"machine": info, "max_windows": args.max_windows, "quick": args.quick,
           "checkpoint_every_s": CHECKPOINT_EVERY_S, "cases": [asdict(c) for c in cases],
           "verdicts": lines}
    (args.out / "driver_scale.json").write_text(json.dumps(raw, indent=2) + "\n",
                                                encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
