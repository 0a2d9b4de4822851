"""Soak: a long run at a moderate rate; actor memory and handles stay flat.

Starts the embedded target and one run (2 actors, ``dns=pinned`` over the target's two
addresses, h2 TLS by default) and samples every ``--sample-s`` seconds: each actor
process's RSS and open fds (psutil, by the pid the Run records in ``meta()["actors"]``),
the driver's own RSS and the number of windows it has stored, the target's RSS, and the
load average. Prints a row per sample, then the verdict:

- **flat** (actor RSS and fds): the samples taken after the warm-up
  (``t >= warmup``, warm-up = ``min(--warmup-s, duration / 4)``) are split by time into
  thirds; ``drift = (median of the last third - median of the first third) / median of
  the first third``. Flat when ``|drift| <= --flat-pct`` (5%) for every actor.
- **driver**: least-squares line of driver RSS (bytes) against stored windows over the
  post-warm-up samples: slope = bytes per stored window, next to the deep in-memory size
  of one window (``sys.getsizeof`` over its dicts and strings) for comparison.

Writes ``samples.csv`` and ``summary.md`` to ``--out`` (default ``results/soak-<ts>/``,
git-ignored). Not part of the test suite.

    .venv/bin/python -m benchmarks.soak [--duration 600] [--rate 1000] [--http 2]
        [--sample-s 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import ray

from rafale.cluster.meta import versions
from rafale.cluster.run import Run, start
from rafale.cluster.target import Target

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One sampling instant. Per-actor values are None once a process is gone."""

    t_s: float
    windows: int
    sent: int
    driver_rss: int
    driver_py_heap: int | None  # tracemalloc's traced bytes (--tracemalloc), else None
    target_rss: int | None
    actor_rss: tuple[int | None, ...]
    actor_fds: tuple[int | None, ...]
    load1: float


@dataclass(frozen=True)
class Drift:
    """Median of the first and last third of the post-warm-up samples, and the drift."""

    first: float
    last: float
    count: int

    @property
    def pct(self) -> float:
        return 100.0 * (self.last - self.first) / self.first if self.first else math.nan

    def flat(self, limit_pct: float) -> bool:
        return self.count >= 3 and abs(self.pct) <= limit_pct


@dataclass(frozen=True)
class Fit:
    slope: float
    intercept: float
    r2: float
    count: int


@dataclass
class Totals:
    sent: int = 0
    completed: int = 0
    failed: int = 0
    late: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    status: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    addresses: Counter[str] = field(default_factory=Counter)


# ----------------------------------------------------------------------------- sampling


def _rss_fds(pid: int) -> tuple[int | None, int | None]:
    try:
        process = psutil.Process(pid)
        return int(process.memory_info().rss), int(process.num_fds())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None, None


def take_sample(run: Run, pids: Sequence[int], target_pid: int | None) -> Sample:
    per_actor = [_rss_fds(pid) for pid in pids]
    target_rss = _rss_fds(target_pid)[0] if target_pid else None
    return Sample(
        t_s=round(run.elapsed_s, 2),
        windows=len(run.log),
        sent=int(run.log.total().counters["sent"]),
        driver_rss=int(psutil.Process().memory_info().rss),
        driver_py_heap=tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
        target_rss=target_rss,
        actor_rss=tuple(rss for rss, _ in per_actor),
        actor_fds=tuple(fds for _, fds in per_actor),
        load1=os.getloadavg()[0],
    )


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def header_row(actors: int) -> str:
    cols = ["t_s", "windows", "sent", "driver MiB"]
    for i in range(actors):
        cols += [f"a{i} MiB", f"a{i} fds"]
    return " ".join(f"{c:>10}" for c in [*cols, "caddy MiB", "load1"])


def sample_row(sample: Sample) -> str:
    cells = [f"{sample.t_s:.0f}", str(sample.windows), str(sample.sent), _mib(sample.driver_rss)]
    for rss, fds in zip(sample.actor_rss, sample.actor_fds, strict=True):
        cells += [_mib(rss), "-" if fds is None else str(fds)]
    cells += [_mib(sample.target_rss), f"{sample.load1:.2f}"]
    return " ".join(f"{c:>10}" for c in cells)


def sample_until_done(run: Run, pids: Sequence[int], target_pid: int | None,
                      every_s: float) -> list[Sample]:
    """A sample now and every ``every_s`` until the run ends (actors are then killed)."""
    samples: list[Sample] = []
    print(header_row(len(pids)), flush=True)
    next_at = time.monotonic()
    while not run.done:
        sample = take_sample(run, pids, target_pid)
        if run.done:  # the actors may already be gone: this sample is partial
            break
        samples.append(sample)
        print(sample_row(sample), flush=True)
        next_at += every_s
        while not run.done and time.monotonic() < next_at:
            time.sleep(min(0.2, max(0.0, next_at - time.monotonic())))
    return samples


# ----------------------------------------------------------------------------- analysis


def warmup_s(requested_s: float, duration_s: float) -> float:
    return min(requested_s, duration_s / 4)


def drift(times: Sequence[float], values: Sequence[float | None], warmup: float) -> Drift:
    """Thirds by time of the samples at ``t >= warmup``; None values are skipped."""
    points = [(t, v) for t, v in zip(times, values, strict=True) if t >= warmup and v is not None]
    if len(points) < 3:
        return Drift(math.nan, math.nan, len(points))
    t0, t1 = points[0][0], points[-1][0]
    third = (t1 - t0) / 3
    first = [v for t, v in points if t <= t0 + third]
    last = [v for t, v in points if t >= t1 - third]
    return Drift(statistics.median(first), statistics.median(last), len(points))


def fit(xs: Sequence[float], ys: Sequence[float]) -> Fit:
    """Least-squares ``y = slope * x + intercept`` and its r²."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return Fit(math.nan, math.nan, math.nan, len(xs))
    slope, intercept = statistics.linear_regression(xs, ys)
    mean_y = statistics.fmean(ys)
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - slope * x - intercept) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - residual / total if total else math.nan
    return Fit(slope, intercept, r2, len(xs))


def driver_fit(samples: Sequence[Sample], warmup: float) -> Fit:
    kept = [s for s in samples if s.t_s >= warmup]
    return fit([float(s.windows) for s in kept], [float(s.driver_rss) for s in kept])


def py_heap_fit(samples: Sequence[Sample], warmup: float) -> Fit | None:
    kept = [s for s in samples if s.t_s >= warmup and s.driver_py_heap is not None]
    if not kept:
        return None
    return fit([float(s.windows) for s in kept], [float(s.driver_py_heap or 0) for s in kept])


def totals(summary: dict[str, Any]) -> Totals:
    """The run's totals from its summary (the window log's running aggregate)."""
    out = Totals()
    requests = summary["requests"]
    out.sent, out.completed = int(requests["sent"]), int(requests["completed"])
    out.failed, out.late = int(requests["failed"]), int(requests["late"])
    out.errors.update(summary["errors"])
    out.status.update(summary["status"])
    out.versions.update(summary["version"])
    out.addresses.update(summary["address"])
    return out


# ----------------------------------------------------------------------------- output


def write_csv(path: Path, samples: Sequence[Sample]) -> None:
    actors = len(samples[0].actor_rss) if samples else 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "windows", "sent", "driver_rss_bytes", "driver_py_heap_bytes",
                         "target_rss_bytes",
                         *[f"actor{i}_{k}" for i in range(actors) for k in ("rss_bytes", "fds")],
                         "load1"])
        for s in samples:
            per_actor = [v for pair in zip(s.actor_rss, s.actor_fds, strict=True) for v in pair]
            writer.writerow([s.t_s, s.windows, s.sent, s.driver_rss, s.driver_py_heap, s.target_rss,
                             *per_actor,
                             f"{s.load1:.2f}"])


def _as_mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


def _fmt(value: float, unit: str = "", digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}{unit}"


def verdict_lines(samples: Sequence[Sample], warmup: float, limit_pct: float,
                  window_bytes: float) -> tuple[list[str], bool]:
    """Markdown lines of the verdict and whether every actor was flat."""
    times = [s.t_s for s in samples]
    lines = ["| measure | first third (median) | last third (median) | drift | verdict |",
             "|---|--:|--:|--:|---|"]
    ok = True
    actors = len(samples[0].actor_rss) if samples else 0
    for i in range(actors):
        rss = drift(times, [_as_mib(s.actor_rss[i]) for s in samples], warmup)
        fds = drift(times, [s.actor_fds[i] for s in samples], warmup)
        for name, d, unit, digits in ((f"actor {i} RSS", rss, " MiB", 1),
                                      (f"actor {i} open fds", fds, "", 0)):
            flat = d.flat(limit_pct)
            ok = ok and flat
            lines.append(f"| {name} | {_fmt(d.first, unit, digits)} | "
                         f"{_fmt(d.last, unit, digits)} | {_fmt(d.pct, '%', 2)} | "
                         f"{'flat' if flat else 'NOT FLAT'} (limit {limit_pct:g}%) |")
    driver = driver_fit(samples, warmup)
    kept = [s for s in samples if s.t_s >= warmup]
    grew = (kept[-1].driver_rss - kept[0].driver_rss) if kept else 0
    lines += [
        "",
        f"- driver RSS: {_mib(samples[0].driver_rss if samples else None)} MiB at start, "
        f"{_mib(kept[0].driver_rss if kept else None)} MiB after warm-up, "
        f"{_mib(samples[-1].driver_rss if samples else None)} MiB at the last sample "
        f"({grew / MIB:+.1f} MiB after warm-up, "
        f"{(kept[-1].windows - kept[0].windows) if kept else 0} more windows)",
        f"- driver growth: linear fit of RSS on stored windows over {driver.count} "
        f"post-warm-up samples: **{_fmt(driver.slope, ' bytes/window', 0)}** "
        f"(r² {_fmt(driver.r2, '', 3)}); one stored window is "
        f"~{window_bytes:,.0f} bytes in the window log (Arrow columns, mean per window)",
    ]
    heap = py_heap_fit(samples, warmup)
    if heap is not None:
        lines.append(f"- driver Python heap (tracemalloc, all threads): "
                     f"**{_fmt(heap.slope, ' bytes/window', 0)}** (r² {_fmt(heap.r2, '', 3)}); "
                     f"the rest of the RSS slope is native memory (Ray core worker, allocator)")
    return lines, ok


def summary_markdown(args: argparse.Namespace, samples: Sequence[Sample], warmup: float,
                     summary: dict[str, Any], meta: dict[str, Any],
                     window_bytes: float) -> tuple[str, bool]:
    found = totals(summary)
    verdict, ok = verdict_lines(samples, warmup, args.flat_pct, window_bytes)
    loads = [s.load1 for s in samples] or [math.nan]
    elapsed = samples[-1].t_s if samples else 0.0
    lines = [
        f"# Soak {meta.get('run_id', '')}",
        "",
        f"`python -m benchmarks.soak --duration {args.duration:g} --rate {args.rate:g} "
        f"--http {args.http} --sample-s {args.sample_s:g}`: {len(samples)} samples over "
        f"{elapsed:.0f} s, {len(meta.get('actors', []))} actors, dns=pinned over the target's "
        f"addresses, max_in_flight {args.max_in_flight}, run ended: {meta.get('ended')}.",
        f"Versions: {versions()}; {os.cpu_count()} CPUs; load average (1 min) during the run "
        f"min {min(loads):.2f} / median {statistics.median(loads):.2f} / max {max(loads):.2f}.",
        "",
        f"Flat = |drift| <= {args.flat_pct:g}%, drift = (median of the last third - median of "
        f"the first third) / median of the first third, thirds by time of the samples at "
        f"t >= {warmup:g} s (warm-up excluded).",
        "",
        *verdict,
        "",
        f"- requests: sent {found.sent:,}, completed {found.completed:,}, failed "
        f"{found.failed:,}, late {found.late:,}; "
        f"mean {found.sent / args.duration:,.1f} sent/s over the {args.duration:g} s run "
        f"(ramp included)",
        f"- status: {dict(found.status)}; errors: {dict(found.errors) or 'none'}",
        f"- versions: {dict(found.versions)}; addresses: {dict(found.addresses)}",
        f"- notes: {meta.get('notes') or 'none'}; lost actors: {meta.get('lost') or 'none'}",
    ]
    return "\n".join(lines) + "\n", ok


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="run seconds")
    parser.add_argument("--rate", type=float, default=1000.0, help="global req/s")
    parser.add_argument("--http", default="2", choices=["1.1", "2", "2c", "3"])
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0,
                        help="samples before this are not judged (at most duration/4)")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--max-in-flight", type=int, default=100)
    parser.add_argument("--flat-pct", type=float, default=5.0)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace the driver's Python heap (slower allocations)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default results/soak-<timestamp>/")
    return parser.parse_args(argv)


def start_run(target: Target, args: argparse.Namespace) -> Run:
    tls = args.http != "2c"
    return start(urls=target.url("/", tls=tls), rate_per_s=args.rate,
                 ramp_s=min(5.0, args.duration / 4), duration_s=args.duration,
                 http=args.http, dns="pinned", resolve=target.resolve, actors=args.actors,
                 max_in_flight=args.max_in_flight, cacert=str(target.ca_file),
                 label="soak")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path("results") / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    warmup = warmup_s(args.warmup_s, args.duration)
    if args.tracemalloc:
        tracemalloc.start()
    with Target() as target:
        run = start_run(target, args)
        pids = [int(a["pid"]) for a in run.meta()["actors"]]
        print(f"run {run.run_id}: actors pids {pids}, driver pid {os.getpid()}, "
              f"target {target.https_url} on {target.addresses}, out {out}", flush=True)
        samples = sample_until_done(run, pids, target.pid, args.sample_s)
        run.wait()
        summary = run.summary()
        meta = run.meta()
        stored = sum(table.nbytes for table in run.log.tables())
        window_bytes = stored / len(run.log) if len(run.log) else math.nan
    ray.shutdown()
    write_csv(out / "samples.csv", samples)
    text, ok = summary_markdown(args, samples, warmup, summary, meta, window_bytes)
    (out / "summary.md").write_text(text)
    print()
    print(text)
    print(f"written: {out / 'samples.csv'}, {out / 'summary.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
