"""The benchmark harness: rafale against h2load on one embedded target, then rate accuracy.

    python -m benchmarks.run                       # 3 rounds × 5 s, every shape, accuracy
    python -m benchmarks.run --shapes h2-1x100 --rounds 5
    python -m benchmarks.run --quick               # 1 round × 2 s, short accuracy runs

Every round runs every selected shape with both clients one after the other (which one
goes first alternates by round), then the accuracy runs. The table shows medians over the
rounds; ratios are medians of the per-round ratios (both clients measured in the same
round, so drift of this noisy machine cancels out). Results go to
``benchmarks/results/latest.md`` and ``latest.json`` (raw rounds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.accuracy import AccuracyRound, AccuracySummary, run_accuracy, summarize
from benchmarks.h2load import ensure_h2load, run_h2load
from benchmarks.shapes import SHAPES, Measurement, Shape, run_rafale, shape_named
from rafale.actors.handles import libcurl_version
from rafale.cluster.target import Target

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REQ_RATIO_MIN = 0.9
CPU_RATIO_MAX = {"h1": 1.5, "h2": 3.0}
RUN_ERROR_MAX = 0.005
P99_DEVIATION_MAX = 0.02
CLIENTS = ("rafale", "h2load")


@dataclass(frozen=True)
class ShapeSummary:
    shape: str
    description: str
    family: str
    rafale_req_per_s: float
    h2load_req_per_s: float
    req_ratio: float
    rafale_cpu_us: float
    h2load_cpu_us: float
    cpu_ratio: float
    rafale_failed: int
    h2load_failed: int

    def verdict(self) -> str:
        if self.family not in CPU_RATIO_MAX or math.isnan(self.req_ratio):
            return "—"
        cpu_max = CPU_RATIO_MAX[self.family]
        parts = [
            _check(self.req_ratio >= REQ_RATIO_MIN, f"req ≥ {REQ_RATIO_MIN}×"),
            _check(self.cpu_ratio <= cpu_max, f"CPU ≤ {cpu_max}×"),
        ]
        return ", ".join(parts)

    def met(self) -> bool | None:
        if self.family not in CPU_RATIO_MAX or math.isnan(self.req_ratio):
            return None
        return self.req_ratio >= REQ_RATIO_MIN and self.cpu_ratio <= CPU_RATIO_MAX[self.family]


def _check(ok: bool, label: str) -> str:
    return f"{label} {'met' if ok else 'MISSED'}"


# ----- options ---------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ",".join(s.name for s in SHAPES)
    parser.add_argument("--rounds", type=int, help="rounds per shape (default 3)")
    parser.add_argument("--duration", type=int, help="main phase per run, s (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up per run, s (default 1)")
    parser.add_argument("--shapes", type=_csv, default=None,
                        help=f"comma list of {names} (default all; '' for none)")
    parser.add_argument("--clients", type=_csv, default=list(CLIENTS),
                        help="comma list of rafale,h2load (default both)")
    parser.add_argument("--rates", type=lambda s: [float(r) for r in _csv(s)], default=None,
                        help="accuracy target rates, req/s (default 2000,5000,10000); "
                             "'--rates \"\"' skips accuracy")
    parser.add_argument("--ramp-s", type=int, help="accuracy ramp, s (default 2)")
    parser.add_argument("--hold-s", type=int, help="accuracy constant part, s (default 10)")
    parser.add_argument("--quick", action="store_true",
                        help="1 round, 2 s runs, accuracy 1 s ramp + 2 s hold")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    args = parser.parse_args(argv)
    _apply_defaults(args, parser)
    return args


def _apply_defaults(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    quick = {"rounds": 1, "duration": 2, "ramp_s": 1, "hold_s": 2}
    full = {"rounds": 3, "duration": 5, "ramp_s": 2, "hold_s": 10}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.rates is None:
        args.rates = [2000.0, 5000.0, 10000.0]
    for name in ("rounds", "duration", "hold_s"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.ramp_s < 0:
        parser.error("--warmup and --ramp-s must be >= 0")
    bad = [c for c in args.clients if c not in CLIENTS]
    if bad or not args.clients:
        parser.error(f"--clients {args.clients}: expected a comma list of {','.join(CLIENTS)}")
    try:
        names = [s.name for s in SHAPES] if args.shapes is None else args.shapes
        args.shape_list = [shape_named(n) for n in names]
    except ValueError as exc:
        parser.error(str(exc))


# ----- running ---------------------------------------------------------------------------


Runner = Callable[[Shape, Target, int], Measurement]


def _runners(args: argparse.Namespace) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    if "rafale" in args.clients:
        runners["rafale"] = lambda shape, target, r: run_rafale(
            shape, target, r, warmup_s=args.warmup, duration_s=args.duration)
    if "h2load" in args.clients:
        binary = ensure_h2load()
        runners["h2load"] = lambda shape, target, r: run_h2load(
            shape, target, r, warmup_s=args.warmup, duration_s=args.duration, binary=binary)
    return runners


def _clients_for(shape: Shape, runners: dict[str, Runner], round_: int) -> list[str]:
    names = [c for c in runners if c != "h2load" or shape.h2load]
    return names if round_ % 2 == 0 else names[::-1]


def run_shapes(args: argparse.Namespace, target: Target) -> list[Measurement]:
    runners = _runners(args)
    out: list[Measurement] = []
    for round_ in range(args.rounds):
        for shape in args.shape_list:
            for client in _clients_for(shape, runners, round_):
                m = runners[client](shape, target, round_)
                print(f"  round {round_} {shape.name:<10} {client:<7} "
                      f"{m.req_per_s:>9,.0f} req/s {m.cpu_us_per_req:>7.1f} µs/req "
                      f"failed {m.failed}", flush=True)
                out.append(m)
    return out


def run_rates(args: argparse.Namespace, target: Target) -> list[AccuracyRound]:
    out: list[AccuracyRound] = []
    for round_ in range(args.rounds):
        for rate in args.rates:
            r = run_accuracy(target, rate, round_, ramp_s=args.ramp_s, hold_s=args.hold_s)
            print(f"  round {round_} rate {rate:>8,.0f}/s: sent {r.achieved_per_s:,.1f}/s, "
                  f"run error {r.run_error:.3%}, worst second {max(r.deviations or (0,)):.3%}",
                  flush=True)
            out.append(r)
    return out


# ----- summaries -------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def _ratios(rafale: list[Measurement], h2load: list[Measurement],
            key: Callable[[Measurement], float]) -> list[float]:
    by_round = {m.round: m for m in h2load}
    out = []
    for m in rafale:
        other = by_round.get(m.round)
        if other is not None and key(other) > 0:
            out.append(key(m) / key(other))
    return out


def summarize_shapes(shapes: Sequence[Shape], results: Sequence[Measurement]) -> list[ShapeSummary]:
    out = []
    for shape in shapes:
        mine = [m for m in results if m.shape == shape.name and m.client == "rafale"]
        theirs = [m for m in results if m.shape == shape.name and m.client == "h2load"]
        if not mine and not theirs:
            continue
        out.append(ShapeSummary(
            shape=shape.name,
            description=shape.describe(),
            family=shape.family,
            rafale_req_per_s=_median([m.req_per_s for m in mine]),
            h2load_req_per_s=_median([m.req_per_s for m in theirs]),
            req_ratio=_median(_ratios(mine, theirs, lambda m: m.req_per_s)),
            rafale_cpu_us=_median([m.cpu_us_per_req for m in mine]),
            h2load_cpu_us=_median([m.cpu_us_per_req for m in theirs]),
            cpu_ratio=_median(_ratios(mine, theirs, lambda m: m.cpu_us_per_req)),
            rafale_failed=sum(m.failed for m in mine),
            h2load_failed=sum(m.failed for m in theirs),
        ))
    return out


def summarize_rates(rounds: Sequence[AccuracyRound]) -> list[AccuracySummary]:
    rates = sorted({r.rate_per_s for r in rounds})
    return [summarize([r for r in rounds if r.rate_per_s == rate]) for rate in rates]


# ----- output ----------------------------------------------------------------------------


def _num(value: float, fmt: str) -> str:
    return "—" if math.isnan(value) else format(value, fmt)


def shapes_table(rows: Sequence[ShapeSummary]) -> str:
    lines = [
        "| shape | rafale req/s | h2load req/s | ratio | rafale CPU µs/req "
        "| h2load CPU µs/req | ratio | failed (rafale / h2load) | targets |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.shape} ({r.description}) | {_num(r.rafale_req_per_s, ',.0f')} "
            f"| {_num(r.h2load_req_per_s, ',.0f')} | {_num(r.req_ratio, '.2f')} "
            f"| {_num(r.rafale_cpu_us, '.1f')} | {_num(r.h2load_cpu_us, '.1f')} "
            f"| {_num(r.cpu_ratio, '.2f')} | {r.rafale_failed} / {r.h2load_failed} "
            f"| {r.verdict()} |"
        )
    return "\n".join(lines)


def _lag(r: AccuracySummary) -> str:
    shown = [("-" if v is None else f"{v / 1000:.2f}")
             for v in (r.lag_p50_us, r.lag_p99_us, r.lag_max_us)]
    return " / ".join(shown)


def rates_table(rows: Sequence[AccuracySummary]) -> str:
    lines = [
        "| target req/s | achieved req/s | run error | vs schedule | mean per-s dev "
        "| worst per-s dev | p99 per-s dev | late | send lag p50 / p99 / max ms | failed "
        "| CPU µs/req | targets |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        verdict = ", ".join([
            _check(r.run_error <= RUN_ERROR_MAX, f"run ≤ {RUN_ERROR_MAX:.1%}"),
            _check(r.p99_deviation <= P99_DEVIATION_MAX, f"p99 ≤ {P99_DEVIATION_MAX:.0%}"),
        ])
        lines.append(
            f"| {r.rate_per_s:,.0f} | {r.achieved_per_s:,.1f} | {r.run_error:.3%} "
            f"| {r.schedule_error:.3%} | {r.mean_deviation:.3%} | {r.worst_deviation:.3%} "
            f"| {r.p99_deviation:.3%} | {r.late} ({r.late_share:.2%}) | {_lag(r)} "
            f"| {r.failed} | {r.cpu_us_per_req:.1f} "
            f"| {verdict} |"
        )
    return "\n".join(lines)


def _h2load_version() -> str:
    try:
        done = subprocess.run(["h2load", "--version"], capture_output=True, text=True,
                              check=False, timeout=10)
    except OSError:
        return "missing"
    return done.stdout.strip() or "unknown"


def environment(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "libcurl": libcurl_version(),
        "h2load": _h2load_version(),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "ramp_s": args.ramp_s,
        "hold_s": args.hold_s,
    }


def markdown(env: dict[str, Any], shapes: Sequence[ShapeSummary],
             rates: Sequence[AccuracySummary]) -> str:
    head = (f"Measured {env['started']} on {env['host']} ({env['cpus']} CPUs, load "
            f"{env['load_avg_at_start'][0]:.2f} at start), libcurl {env['libcurl']}, "
            f"{env['h2load']}; medians of {env['rounds']} rounds × {env['duration_s']} s "
            f"(+{env['warmup_s']} s warm-up).")
    parts = ["# rafale vs h2load", "", head, ""]
    if shapes:
        parts += ["## Throughput and client CPU (closed model)", "", shapes_table(shapes), ""]
    if rates:
        parts += [f"## Rate accuracy ({env['ramp_s']} s ramp, then {env['hold_s']} s "
                  "constant; h2 TLS 4 × 100)", "", rates_table(rates), ""]
    return "\n".join(parts)


def write_results(out_dir: Path, md: str, raw: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(md)
    (out_dir / "latest.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment(args)
    with Target() as target:
        print(f"target {target.https_url} (TLS) / {target.http_url} (cleartext)", flush=True)
        measurements = run_shapes(args, target)
        accuracy = run_rates(args, target) if args.rates else []
    shapes = summarize_shapes(args.shape_list, measurements)
    rates = summarize_rates(accuracy)
    md = markdown(env, shapes, rates)
    raw = {
        "environment": env,
        "shapes": [m.to_data() for m in measurements],
        "accuracy": [r.to_data() for r in accuracy],
        "summary": {"shapes": [asdict(s) for s in shapes], "accuracy": [asdict(r) for r in rates]},
    }
    write_results(args.out, md, raw)
    print()
    print(md)
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
