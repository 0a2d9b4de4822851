"""Feeds: what a different request each time costs, and what a big feed takes to prepare.

1. **CPU per request** (target: feed <= 1.10x single URL). The engine in this process,
   closed model, h2 TLS 1 connection x 100 streams (shape ``h2-1x100``), against the
   embedded target's ``/echo/`` route: one URL, then a feed cycled over ``--paths``
   distinct paths. Rounds interleave the two sides; client CPU µs per completed request
   over the main phase (as ``benchmarks.shapes``); the ratio per round, and its median.
2. **Preparing a big feed**: a JSON Lines feed of ``--rows`` rows with ~200-byte URLs is
   written, then read, checked and cut into chunks (``load_feed`` + ``Feed.plan``) in a
   child process: rows per second and the child's peak RSS.
3. **Senders' memory** with that feed: a real run on a local Ray (2 actors, ``once``) for
   a few seconds, then each actor's RSS and USS (psutil) before it ends: the feed goes
   through Ray's object store in chunks, so no actor holds all of it.

    .venv/bin/python -m benchmarks.feeds [--rows 10000000] [--rounds 3] [--duration 5]
        [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from benchmarks import driver_scale
from benchmarks.shapes import measure_windows, rafale_config, shape_named
from rafale.actors.engine import run_in_process
from rafale.cluster.feeds import load_feed
from rafale.cluster.target import Target

CPU_RATIO_TARGET = 1.10
ACTORS_MEMORY_TARGET_B = 1.5 * 2**30
URL_BYTES = 200
RATE_PER_S = 5_000  # part 3: what two senders sustain beside the target and the driver on 2 cores


def _cpu_side(target: Target, feed_paths: int, warmup_s: int, duration_s: int,
              round_: int) -> dict[str, Any]:
    """One side of part 1: feed_paths 0 is the single URL."""
    shape = shape_named("h2-1x100")
    config = rafale_config(shape, target, float(warmup_s + duration_s))
    single = target.url("/echo/same")
    config = replace(config, urls=(single,))
    if feed_paths:
        feed = load_feed([{"url": target.url(f"/echo/{i:08d}")} for i in range(feed_paths)],
                         http="2")
        config = replace(config, urls=feed.origins, feed=feed.plan("cycle"))
    windows = run_in_process(config)
    measured = measure_windows(windows, shape.name, round_, warmup_s, duration_s)
    return {"side": "feed" if feed_paths else "single", "round": round_,
            "req_per_s": measured.req_per_s, "cpu_us_per_req": measured.cpu_us_per_req,
            "failed": measured.failed}


def cpu_per_request(rounds: int, paths: int, warmup_s: int, duration_s: int
                    ) -> dict[str, Any]:
    rows = []
    with Target() as target:
        for round_ in range(rounds):
            for feed_paths in ((0, paths) if round_ % 2 == 0 else (paths, 0)):
                row = _cpu_side(target, feed_paths, warmup_s, duration_s, round_)
                rows.append(row)
                print(f"  round {round_} {row['side']:6}: {row['req_per_s']:,.0f} req/s, "
                      f"{row['cpu_us_per_req']:.1f} µs CPU/request", flush=True)
    ratios = []
    for round_ in range(rounds):
        by_side = {r["side"]: r for r in rows if r["round"] == round_}
        ratios.append(by_side["feed"]["cpu_us_per_req"] / by_side["single"]["cpu_us_per_req"])
    median = statistics.median(ratios)
    return {"rows": rows, "ratios": ratios, "ratio_median": median,
            "target": CPU_RATIO_TARGET, "met": median <= CPU_RATIO_TARGET}


def write_feed(path: Path, rows: int, target: Target) -> int:
    """A JSON Lines feed of ``rows`` rows of the target's /echo/ route, URLs about
    URL_BYTES long."""
    stem = target.url("/echo/wpush/v2/")
    pad = "x" * (URL_BYTES - len(stem) - 12)
    with path.open("w", buffering=1 << 20) as out:
        for i in range(rows):
            out.write(f'{{"url": "{stem}{pad}{i:012d}", "tag": "s{i % 4}"}}\n')
    return path.stat().st_size


def _prepare_child(path: str, queue: Any) -> None:
    began = time.perf_counter()
    feed = load_feed(path, http="2")
    loaded = time.perf_counter()
    plan = feed.plan("once")
    done = time.perf_counter()
    queue.put({"rows": feed.rows, "chunks": len(plan.chunks), "load_s": loaded - began,
               "plan_s": done - loaded,
               "peak_rss_b": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


def prepare(path: Path) -> dict[str, Any]:
    queue: Any = mp.get_context("spawn").Queue()
    child = mp.get_context("spawn").Process(target=_prepare_child, args=(str(path), queue))
    child.start()
    result: dict[str, Any] = queue.get()
    child.join()
    result["rows_per_s"] = result["rows"] / (result["load_s"] + result["plan_s"])
    return result


def actors_memory(path: Path, seconds: float, target: Target) -> dict[str, Any]:
    """RSS/USS of each actor after ``seconds`` of a once run with the feed at path."""
    from rafale.cluster.run import start

    run = start(feed=str(path), feed_mode="once", rate_per_s=RATE_PER_S, actors=2,
                resolve=target.resolve, cacert=str(target.ca_file))
    time.sleep(max(0.0, run.start_at_s + seconds - time.time()))
    actors = []
    for info in run.meta()["actors"]:
        memory = psutil.Process(int(info["pid"])).memory_full_info()
        actors.append({"actor": info["actor"], "rss_b": memory.rss, "uss_b": memory.uss})
    sent = int(run.summary()["requests"]["sent"])
    run.abort()
    total_rss = sum(a["rss_b"] for a in actors)
    return {"seconds": seconds, "sent": sent, "actors": actors, "total_rss_b": total_rss,
            "target_b": ACTORS_MEMORY_TARGET_B, "met": total_rss < ACTORS_MEMORY_TARGET_B}


def markdown(report: dict[str, Any]) -> str:
    """The README table of a feeds report."""
    cpu, prep, memory = report["cpu"], report["prepare"], report["memory"]
    singles = [r["cpu_us_per_req"] for r in cpu["rows"] if r["side"] == "single"]
    feeds = [r["cpu_us_per_req"] for r in cpu["rows"] if r["side"] == "feed"]
    rss = sum(a["rss_b"] for a in memory["actors"])
    verdict = {True: "met", False: "**missed**"}
    lines = [
        "| what | measured | target |",
        "|---|--:|---|",
        f"| CPU per request, one URL (h2 TLS 1×100, median of {len(singles)}) | "
        f"{statistics.median(singles):.1f} µs | |",
        f"| CPU per request, feed of {int(report['args']['paths']):,} paths | "
        f"{statistics.median(feeds):.1f} µs | |",
        f"| feed / one URL, per round (median) | {cpu['ratio_median']:.3f} "
        f"({', '.join(f'{r:.3f}' for r in cpu['ratios'])}) | <= {cpu['target']:.2f}: "
        f"{verdict[cpu['met']]} |",
        f"| preparing {prep['rows']:,} rows of JSON Lines ({prep['file_b'] / 2**30:.2f} GiB) "
        f"| {prep['rows_per_s']:,.0f} rows/s, peak RSS {prep['peak_rss_b'] / 2**30:.2f} GiB | "
        "reported |",
        f"| {len(memory['actors'])} senders' RSS with that feed ({memory['sent']:,} rows "
        f"sent) | {rss / 2**20:,.0f} MiB | < 1.5 GiB: {verdict[memory['met']]} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feeds",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--paths", type=int, default=100_000, help="distinct paths (part 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--memory-seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    machine = driver_scale.machine()
    print(f"1. CPU per request, feed of {args.paths:,} paths vs one URL (h2-1x100)")
    cpu = cpu_per_request(args.rounds, args.paths, args.warmup, args.duration)
    print(f"   feed/single CPU per request: median {cpu['ratio_median']:.3f} "
          f"(target <= {CPU_RATIO_TARGET}) rounds {[round(r, 3) for r in cpu['ratios']]}")
    with (tempfile.TemporaryDirectory(prefix="rafale-feed-bench-") as tmp,
          Target() as target):
        path = Path(tmp) / "feed.jsonl"
        began = time.perf_counter()
        size = write_feed(path, args.rows, target)
        print(f"2. preparing {args.rows:,} rows ({size / 2**30:.2f} GiB JSON Lines, written in "
              f"{time.perf_counter() - began:.0f} s)")
        prep = prepare(path)
        prep["file_b"] = size
        print(f"   {prep['rows_per_s']:,.0f} rows/s (read+check {prep['load_s']:.1f} s, "
              f"chunks {prep['plan_s']:.1f} s), peak RSS {prep['peak_rss_b'] / 2**30:.2f} GiB")
        print(f"3. senders' memory with that feed ({args.memory_seconds:g} s at "
              f"{RATE_PER_S:,} rows/s, 2 actors)")
        memory = actors_memory(path, args.memory_seconds, target)
        rss = ", ".join(f"{a['rss_b'] / 2**20:,.0f}" for a in memory["actors"])
        uss = ", ".join(f"{a['uss_b'] / 2**20:,.0f}" for a in memory["actors"])
        print(f"   actors' RSS {memory['total_rss_b'] / 2**20:,.0f} MiB in total ({rss} MiB; "
              f"USS {uss} MiB), {memory['sent']:,} rows sent; target < 1.5 GiB")
    report = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
              "cpu": cpu, "prepare": prep, "memory": memory}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "feeds.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'feeds.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
