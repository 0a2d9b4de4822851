"""The benchmark harness: rafale against the libcurl ceiling and its peers, then rate accuracy.

    python -m benchmarks.run                       # 3 rounds × 5 s, every shape and client
    python -m benchmarks.run --shapes h2-1x100 --rounds 5
    python -m benchmarks.run --clients rafale,libcurl-c --shapes h1-100,h2-1x100
    python -m benchmarks.run --quick               # 1 round × 2 s, short accuracy runs

Clients, each on the shapes it can do: ``rafale`` (the engine in this process),
``libcurl-c`` (``benchmarks/curl_ref.c``: the same libcurl driven from C, the ceiling every
table compares rafale to), ``pycurl-floor`` (``benchmarks/pycurl_floor.py``: rafale's
handles driven by the smallest Python loop, the least any pycurl sender spends), ``h2load``
(every shape but HTTP/3), ``wrk`` (HTTP/1.1 shapes) and ``locust`` (``h1-100``). Every round
runs every selected shape with every client one after the other, the clients' order rotating
by round (interleaved, so drift of a noisy machine hits all of them alike), then the accuracy
runs (rafale, and libcurl-c's open model at the same rates for the CPU per request). The
tables show medians over the rounds; rafale's ratios to libcurl-c are medians of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import machine, table
from benchmarks.accuracy import RATE_SHAPE, AccuracyRound, cpu_us_per_sent, run_accuracy
from benchmarks.curl_ref import build as build_curl_ref
from benchmarks.curl_ref import run_curl_ref, run_curl_ref_rate
from benchmarks.h2load import ensure_h2load, ensure_tool, run_h2load
from benchmarks.peers import ensure_nss_wrapper, locust_applies, run_locust, run_wrk, wrk_applies
from benchmarks.pycurl_floor import run_pycurl_floor
from benchmarks.shapes import SHAPES, Measurement, Shape, run_rafale, shape_named
from benchmarks.summary import CLIENTS, summarize_rates, summarize_shapes
from rafale.cluster.target import Target

RESULTS_DIR = table.RESULTS_DIR
APPLIES: dict[str, Callable[[Shape], bool]] = {
    "libcurl-c": lambda shape: True,
    "rafale": lambda shape: True,
    "pycurl-floor": lambda shape: True,
    "h2load": lambda shape: shape.h2load,
    "wrk": wrk_applies,
    "locust": locust_applies,
}

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
                        help=f"comma list of {','.join(CLIENTS)} (default all; each runs the "
                             "shapes it can do)")
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
    args.clients = [c for c in CLIENTS if c in args.clients]  # canonical order
    try:
        names = [s.name for s in SHAPES] if args.shapes is None else args.shapes
        args.shape_list = [shape_named(n) for n in names]
    except ValueError as exc:
        parser.error(str(exc))


# ----- running ---------------------------------------------------------------------------


Runner = Callable[[Shape, Target, int], Measurement]


def needed_clients(clients: Sequence[str], shapes: Sequence[Shape]) -> list[str]:
    """The clients that apply to at least one of the shapes, in ``clients`` order."""
    return [c for c in clients if any(APPLIES[c](s) for s in shapes)]


def _ensure_locust() -> None:
    if importlib.util.find_spec("locust") is None:
        raise RuntimeError("locust is not installed: pip install -e '.[bench]'")


def _runners(args: argparse.Namespace) -> dict[str, Runner]:
    """A runner per needed client; installs or builds each external client first."""
    phases = {"warmup_s": args.warmup, "duration_s": args.duration}
    runners: dict[str, Runner] = {}
    for client in needed_clients(args.clients, args.shape_list):
        if client == "rafale":
            runners[client] = partial(run_rafale, **phases)
        elif client == "pycurl-floor":
            runners[client] = partial(run_pycurl_floor, **phases)
        elif client == "libcurl-c":
            runners[client] = partial(run_curl_ref, **phases, binary=build_curl_ref())
        elif client == "h2load":
            runners[client] = partial(run_h2load, **phases, binary=ensure_h2load())
        elif client == "wrk":
            ensure_nss_wrapper()
            runners[client] = partial(run_wrk, **phases, binary=ensure_tool("wrk", "wrk"))
        elif client == "locust":
            _ensure_locust()
            ensure_nss_wrapper()
            runners[client] = partial(run_locust, **phases)
    return runners


def clients_for(shape: Shape, clients: Sequence[str], round_: int) -> list[str]:
    """The clients that apply to ``shape``, their order rotated by one per round."""
    names = [c for c in clients if APPLIES[c](shape)]
    if not names:
        return []
    turn = round_ % len(names)
    return names[turn:] + names[:turn]


def run_shapes(args: argparse.Namespace, target: Target) -> list[Measurement]:
    runners = _runners(args)
    out: list[Measurement] = []
    for round_ in range(args.rounds):
        for shape in args.shape_list:
            for client in clients_for(shape, list(runners), round_):
                m = runners[client](shape, target, round_)
                print(f"  round {round_} {shape.name:<10} {client:<9} "
                      f"{m.req_per_s:>9,.0f} req/s {m.cpu_us_per_req:>7.1f} µs/req "
                      f"failed {m.failed}", flush=True)
                out.append(m)
    return out


def _rafale_rate(args: argparse.Namespace, target: Target, rate: float,
                 round_: int) -> AccuracyRound:
    r = run_accuracy(target, rate, round_, ramp_s=args.ramp_s, hold_s=args.hold_s)
    print(f"  round {round_} rate {rate:>8,.0f}/s: sent {r.achieved_per_s:,.1f}/s, run error "
          f"{r.run_error:.3%}, worst second {max(r.deviations or (0,)):.3%}, "
          f"{cpu_us_per_sent(r.cpu_s, r.sent):.1f} µs/req", flush=True)
    return r


def _curl_rate(args: argparse.Namespace, target: Target, rate: float, round_: int,
               binary: Path) -> Measurement:
    m = run_curl_ref_rate(RATE_SHAPE, target, rate, round_, warmup_s=args.ramp_s,
                          duration_s=args.hold_s, binary=binary)
    print(f"  round {round_} rate {rate:>8,.0f}/s libcurl-c: sent "
          f"{m.extra['sent'] / m.duration_s:,.1f}/s, "
          f"{cpu_us_per_sent(m.cpu_s, m.extra['sent']):.1f} µs/req", flush=True)
    return m


def run_rates(args: argparse.Namespace, target: Target
              ) -> tuple[list[AccuracyRound], list[Measurement]]:
    """rafale's accuracy rounds and, with libcurl-c among the clients, libcurl-c's open-model
    runs at the same rates on the same shape (its warm-up as long as rafale's ramp, its main
    phase as long as the hold): the two one after the other, libcurl-c first in odd rounds."""
    out: list[AccuracyRound] = []
    reference: list[Measurement] = []
    binary = build_curl_ref() if "libcurl-c" in args.clients else None
    for round_ in range(args.rounds):
        for rate in args.rates:
            if binary is not None and round_ % 2:
                reference.append(_curl_rate(args, target, rate, round_, binary))
            out.append(_rafale_rate(args, target, rate, round_))
            if binary is not None and not round_ % 2:
                reference.append(_curl_rate(args, target, rate, round_, binary))
    return out, reference


# ----- results ---------------------------------------------------------------------------


def describe_args(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    return {
        "argv": list(argv),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "shapes": [s.name for s in args.shape_list],
        "clients": list(args.clients),
        "rates": list(args.rates),
        "ramp_s": args.ramp_s,
        "hold_s": args.hold_s,
        "quick": args.quick,
    }


def results_name(day: str, host: str) -> str:
    """``<YYYY-MM-DD>-<hostname>.json``, the host name made file-safe."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host) or "unknown"
    return f"{day}-{safe}.json"


def write_results(out_dir: Path, raw: dict[str, Any]) -> Path:
    """Write the dated results file and latest.md / latest.json; the dated file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(raw, indent=1, default=str) + "\n"
    dated = out_dir / results_name(raw["day"], raw["machine"]["host"])
    dated.write_text(text)
    (out_dir / "latest.json").write_text(text)
    (out_dir / "latest.md").write_text("# rafale against libcurl-c and its peers\n\n"
                                       + table.markdown(raw))
    return dated


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    raw: dict[str, Any] = {
        "day": time.strftime("%Y-%m-%d"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine.machine(),  # load average before anything runs
        "git": machine.git_state(),
        "args": describe_args(args, argv),
    }
    with Target() as target:
        print(f"target {target.https_url} (TLS) / {target.http_url} (cleartext)", flush=True)
        measurements = run_shapes(args, target)
        accuracy, reference = run_rates(args, target) if args.rates else ([], [])
    shapes = summarize_shapes(args.shape_list, measurements)
    rates = summarize_rates(accuracy, reference)
    raw.update({
        "versions": machine.versions(),  # after the runs: tools are installed by now
        "shapes": [m.to_data() for m in measurements],
        "accuracy": [r.to_data() for r in accuracy],
        "accuracy_reference": [m.to_data() for m in reference],
        "summary": {"shapes": [s.to_data() for s in shapes],
                    "accuracy": [asdict(r) for r in rates]},
    })
    dated = write_results(args.out, raw)
    print()
    print(table.markdown(raw))
    print(f"written: {dated}, {args.out / 'latest.md'}, {args.out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
