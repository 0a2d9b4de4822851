"""The README's real comparison: two series recorded against the embedded target, the
second with a delay added at the target, and what ``rafale compare`` says of them.

    python -m benchmarks.compare_example --record --out docs/results   # record, compare
    python -m benchmarks.compare_example --out docs/results            # compare again

``--record`` runs ``rafale.repeat`` twice (by default three runs of 10 s at 400 req/s over
HTTP/2 a side; the second side asks the target's ``/delay/2`` route, answered 2 ms later)
into ``docs/results/compare/example/{before,after}`` (machine paths scrubbed from their
meta.json). Then the comparison (seed 24) of the committed sides is written as
``compare_example.json`` with its two charts next to the runs; ``benchmarks/readme.py``
puts the table into the README, and ``tests/test_benchmarks_maths.py`` checks that comparing
the committed runs again gives the committed table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.machine import machine
from rafale.analysis import store
from rafale.analysis.verdict import charts, compare, side_series, text

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "docs" / "results" / "compare" / "example"
RESULTS_NAME = "compare_example.json"
SIDES = ("before", "after")
SEED = 24
METRICS = ("rate", "latency.p50", "latency.p90", "latency.p99", "latency.mean",
           "send_lag.p99", "error_rate", "late_rate")
CHARTS = {"over_time": "over-time.png", "spectrum": "spectrum.png"}


def record(root: Path, runs: int, seconds: float, rate_per_s: float, delay_ms: int) -> None:
    """Both sides, one series each, against one embedded target (machine paths scrubbed)."""
    import rafale

    with rafale.Target(delay=True) as target:
        for name, path in zip(SIDES, ("/delay/0", f"/delay/{delay_ms}"), strict=True):
            rafale.repeat(runs, out=root / name, urls=target.url(path), label=name,
                          resolve=target.resolve, cacert=str(target.ca_file), http="2",
                          rate_per_s=rate_per_s, duration_s=seconds)
    for meta_path in root.glob(f"*/*/{store.META_FILE}"):
        meta = json.loads(meta_path.read_text())
        meta["spec"]["cacert"] = "<the embedded target's CA>"
        meta["spec"]["out"] = meta_path.parent.relative_to(ROOT).as_posix()
        store.write_json(meta_path, meta)


def table(root: Path = RECORDING) -> pd.DataFrame:
    """What ``rafale compare before after`` says of the recording (seed :data:`SEED`)."""
    return compare(root / SIDES[0], root / SIDES[1], seed=SEED)


def rows(compared: pd.DataFrame) -> list[dict[str, str]]:
    """The README's rows: :data:`METRICS`, as ``rafale compare`` prints them."""
    chosen = compared.set_index("metric").loc[list(METRICS)].reset_index()
    return [{k: v for k, v in row.items() if k != "candidate"} for row in text.cells(chosen)]


def draw(root: Path) -> list[Path]:
    """The comparison's two charts, saved next to the recording."""
    base, cand = (side_series(root / name) for name in SIDES)
    written = []
    for name, figure in (("over_time", charts.over_time(base, [cand])),
                         ("spectrum", charts.spectrum(base, [cand]))):
        path = root / CHARTS[name]
        figure.savefig(path, dpi=80)
        written.append(path)
    return written


def results(root: Path, compared: pd.DataFrame) -> dict[str, Any]:
    attrs = compared.attrs
    first = json.loads((root / SIDES[0] / "1" / store.META_FILE).read_text())
    after = json.loads((root / SIDES[1] / "1" / store.META_FILE).read_text())
    delay_path = "/" + str(after["spec"]["urls"][0]).split("/", 3)[-1]
    return {"recording": root.relative_to(ROOT).as_posix(),
            "runs_a_side": len(store.repeated_runs(root / SIDES[0]) or []),
            "seconds": first["schedule"]["duration_s"], "rate_per_s": first["spec"]["rate_per_s"],
            "http": first["http"], "delay_path": delay_path,
            "seed": attrs["seed"], "resamples": attrs["resamples"],
            "min_effect": attrs["min_effect"], "interval": attrs["interval"],
            "rows": rows(compared), "machine": machine()}


def markdown(data: dict[str, Any]) -> str:
    """The comparison as a README block (rendered by ``benchmarks/readme.py``)."""
    recording = data["recording"]
    lines = [f"Recorded on the development machine ({data['machine']['cores']} cores, "
             f"shared): {data['runs_a_side']} runs a side of {data['seconds']:g} s at "
             f"{data['rate_per_s']:g} req/s over HTTP/{data['http']} against the embedded "
             f"target, the second side against its `{data['delay_path']}` route (answered "
             f"{data['delay_path'].rsplit('/', 1)[-1]} ms later), in `{recording}`; "
             "`python -m benchmarks.compare_example --record --out docs/results`, which runs "
             f"`rafale compare {recording}/before {recording}/after --seed {data['seed']}`:",
             "", "| metric | before | after | change | interval | verdict |",
             "|---|--:|--:|--:|--:|---|"]
    for row in data["rows"]:
        lines.append(f"| {row['metric']} | {row['base']} | {row['cand']} | {row['change']} | "
                     f"{row['interval']} | {row['verdict']} |")
    lines += ["", f"{data['interval']}; 95 % interval of {data['resamples']} resamples, seed "
              f"{data['seed']}, minimum effect {data['min_effect']:.0%}.", "",
              f"![throughput and latency per second, both sides]({recording}/"
              f"{CHARTS['over_time']})",
              f"![latency percentile spectrum, both sides]({recording}/{CHARTS['spectrum']})"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_example",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="record both sides again")
    parser.add_argument("--runs", type=int, default=3, help="runs a side (3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds a run (10)")
    parser.add_argument("--rate", type=float, default=400.0, help="req/s (400)")
    parser.add_argument("--delay-ms", type=int, default=2, help="the after side's delay (2)")
    parser.add_argument("--out", type=Path, default=None, help="write RESULTS_NAME here")
    args = parser.parse_args(argv)
    if args.record:
        record(RECORDING, args.runs, args.seconds, args.rate, args.delay_ms)
    compared = table(RECORDING)
    for path in draw(RECORDING):
        print("wrote", path.relative_to(ROOT))
    data = results(RECORDING, compared)
    print(markdown(data))
    if args.out is not None:
        path = args.out / RESULTS_NAME
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
