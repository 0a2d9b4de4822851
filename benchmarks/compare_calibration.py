"""Calibrate ``rafale compare`` on a recorded run: how often it calls noise a change (A/A)
and how often it finds a known change (A/B).

    python -m benchmarks.compare_calibration --out docs/results            # from the recording
    python -m benchmarks.compare_calibration --record --out docs/results   # record it again

The recording (``docs/results/compare/recorded``) is a real run against the embedded target
(``--record``: 120 s at 400 requests/s, on the development machine, shared). Both sides of a
pair come from it, so they are the same target and build (A/A), drawn three ways
(:func:`draw_sides`): ``seconds`` (seconds drawn independently: the method's own
assumption), ``stretches`` (one stretch of consecutive seconds a side, at different times:
what two real runs on a busy machine are) and ``stretches3`` (three stretches a side: the
hierarchical bootstrap). For A/B, the candidate's latencies are multiplied by 1.15 (every
bucket of its corrected and raw histograms moved to the bucket of 1.15 times its middle
value) and 1 % of its finished requests are added as failures.

The false-positive share is the share of verdicts, over every pair and every metric with
one, that are ``better``, ``worse`` or ``changed`` (and the same over the latency rows
only); the detection share is the share of pairs whose median latency and error rate are
both ``worse`` (each shifted metric's own share is given too).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.machine import machine
from rafale.actors.contract import LATENCY_CORRECTED, LATENCY_RAW, new_histogram
from rafale.actors.hist import _indexes
from rafale.analysis import store
from rafale.analysis.latency import bucket_tables
from rafale.analysis.verdict import NOT_COMPARABLE, SIGNIFICANT, WORSE, Options, compare_series
from rafale.analysis.verdict.bootstrap import block_length, percentiles
from rafale.analysis.verdict.series import TAG_PREFIX, Hist, Series, series_of, stack

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "docs" / "results" / "compare" / "recorded"
RESULTS_NAME = "compare_calibration.json"
LATENCY_FACTOR = 1.15
ERROR_SHARE = 0.01
SHIFTED = ("latency.p50", "latency.p90", "latency.p99", "latency.mean", "error_rate")
# A pair's shift is detected when both its latency (the median) and its errors are worse;
# each shifted metric's own share is reported too (the p99 of a short run on a busy
# machine varies several fold from second to second: a 15 % shift of it is seldom seen).
DETECTED_TOGETHER = ("latency.p50", "error_rate")
RUNS_A_SIDE = 3
# (mode, pseudo-run seconds) calibrated: see draw_sides.
CASES = (("seconds", 30), ("stretches", 30), ("stretches3", 15))


def record(out: Path, seconds: int = 120, rate_per_s: int = 400) -> Path:
    """A real run against the embedded target into ``out`` (machine paths scrubbed)."""
    import rafale

    shutil.rmtree(out, ignore_errors=True)
    with rafale.Target() as target:
        run = rafale.start(urls=target.https_url, resolve=target.resolve,
                           cacert=str(target.ca_file), rate_per_s=rate_per_s,
                           duration_s=seconds, out=str(out), label="calibration")
        run.wait()
    meta_path = out / store.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["spec"]["cacert"] = "<the embedded target's CA>"
    meta["spec"]["out"] = "docs/results/compare/recorded"
    store.write_json(meta_path, meta)
    return out


def rows_of(series: Series, rows: np.ndarray) -> Series:
    """The seconds ``rows`` of ``series`` (in that order) as a run."""
    return Series(series.labels, (len(rows),),
                  {k: v[rows] for k, v in series.counters.items()},
                  {k: v.iloc[rows].reset_index(drop=True) for k, v in series.keys.items()},
                  {k: Hist(h.buckets, h.counts[rows]) for k, h in series.hists.items()},
                  series.metas)


def halves(series: Series) -> tuple[Series, Series]:
    """The first and the second half of a run's seconds."""
    middle = series.seconds // 2
    return (rows_of(series, np.arange(middle)),
            rows_of(series, np.arange(middle, series.seconds)))


def pseudo_run(series: Series, rng: np.random.Generator, seconds: int) -> Series:
    """``seconds`` seconds of ``series`` taken in circular blocks of consecutive seconds at
    random starts (a run of the same spec, its seconds' order kept inside blocks)."""
    size = block_length(series.seconds)
    starts = rng.integers(0, series.seconds, size=math.ceil(seconds / size))
    rows = (starts[:, None] + np.arange(size)).ravel()[:seconds] % series.seconds
    return rows_of(series, rows)


def bootstrap_percentiles(weights: np.ndarray, hist: Hist, pcts: Sequence[float]
                          ) -> np.ndarray:
    """The percentiles of ``hist`` merged with ``weights`` (first resample)."""
    return percentiles(weights, hist.counts, hist.buckets, pcts)[0]


def _scaled(hist: Hist, factor: float) -> Hist:
    """Every count moved to the bucket of ``factor`` times its bucket's middle value."""
    middle = bucket_tables()[2][hist.buckets].astype(np.float64)
    moved = _indexes(new_histogram(), np.round(middle * factor).astype(np.int64))
    buckets, column = np.unique(moved, return_inverse=True)
    counts = np.zeros((hist.counts.shape[0], buckets.shape[0]))
    np.add.at(counts.T, column, hist.counts.T)
    return Hist(buckets.astype(np.int64), counts)


def shifted(series: Series, factor: float = LATENCY_FACTOR, errors: float = ERROR_SHARE
            ) -> Series:
    """The same seconds with latencies times ``factor`` and ``errors`` of the finished
    requests failed (added to each second's failures)."""
    hists = {name: (_scaled(h, factor) if name in (LATENCY_CORRECTED, LATENCY_RAW)
                    or name.startswith(TAG_PREFIX) else h) for name, h in series.hists.items()}
    counters = dict(series.counters)
    finished = counters["completed"] + counters["failed"]
    counters["failed"] = counters["failed"] + np.round(finished * errors)
    return replace(series, counters=counters, hists=hists)


def stretches(series: Series, rng: np.random.Generator, count: int, seconds: int
              ) -> list[Series]:
    """``count`` non-overlapping stretches of ``seconds`` consecutive seconds at random
    places of the recording, in random order: runs made at different times."""
    slots = series.seconds // seconds
    if slots < count:
        raise ValueError(f"a recording of {series.seconds} s has no {count} stretches of "
                         f"{seconds} s")
    chosen = rng.choice(slots, size=count, replace=False)
    slack = series.seconds - slots * seconds  # shift the grid by up to the leftover
    offset = int(rng.integers(0, slack + 1))
    return [rows_of(series, np.arange(offset + i * seconds, offset + (i + 1) * seconds))
            for i in chosen]


def draw_sides(recorded: Series, mode: str, rng: np.random.Generator, seconds: int
               ) -> tuple[Series, Series]:
    """Two sides of the same spec, drawn from the recording as ``mode`` says:

    - ``seconds``: each side ``seconds`` seconds drawn one by one with replacement: runs
      whose seconds are independent, as the interval assumes (a check of the method);
    - ``stretches``: each side one stretch of consecutive seconds, at another time
      (the machine's slow spells and drift between runs included);
    - ``stretches3``: three stretches a side (the hierarchical bootstrap).
    """
    if mode == "seconds":
        draws = [rows_of(recorded, rng.integers(0, recorded.seconds, seconds))
                 for _ in range(2)]
        return draws[0], draws[1]
    runs = RUNS_A_SIDE if mode == "stretches3" else 1
    parts = stretches(recorded, rng, 2 * runs, seconds)
    return stack(parts[:runs]), stack(parts[runs:])


def calibrate(recorded: Series, mode: str = "seconds", pairs: int = 200,
              seconds: int = 30, seed: int = 24, resamples: int = 300) -> dict[str, Any]:
    """A/A false-positive and A/B detection shares over ``pairs`` pairs of sides drawn as
    ``mode`` says (:func:`draw_sides`; see the module docstring)."""
    rng = np.random.default_rng(seed)
    aa: list[pd.DataFrame] = []
    ab: list[pd.DataFrame] = []
    for pair in range(pairs):
        base, cand = draw_sides(recorded, mode, rng, seconds)
        if rng.random() < 0.5:
            base, cand = cand, base
        options = Options(resamples=resamples, seed=seed * 100_000 + pair)
        aa.append(compare_series(base, cand, options).assign(pair=pair))
        ab.append(compare_series(base, shifted(cand), options).assign(pair=pair))
    same, changed = pd.concat(aa), pd.concat(ab)
    judged = same[same["verdict"] != NOT_COMPARABLE]
    called = judged["verdict"].isin(SIGNIFICANT)
    latency = judged["unit"] == "us"
    worse = changed[changed["metric"].isin(SHIFTED)].pivot(
        index="pair", columns="metric", values="verdict") == WORSE
    return {
        "mode": mode, "pairs": pairs, "seconds": seconds, "resamples": resamples,
        "seed": seed, "runs_a_side": RUNS_A_SIDE if mode == "stretches3" else 1,
        "aa_false_positive_share": float(called.mean()),
        "aa_false_positive_share_latency": float(called[latency].mean()),
        "aa_verdicts": int(len(judged)),
        "aa_called_by_metric": {str(k): int(v) for k, v in
                                judged[called].groupby("metric").size().items()},
        "ab_detection_share": float((worse[list(DETECTED_TOGETHER)].all(axis=1)).mean()),
        "ab_detected_by_metric": {str(k): float(v) for k, v in worse.mean().items()},
        "ab_shift": {"latency_factor": LATENCY_FACTOR, "error_share": ERROR_SHARE,
                     "a_pair_is_detected_when_worse": list(DETECTED_TOGETHER)},
    }


_MODES = {"seconds": "seconds drawn one by one (the interval's assumption)",
          "stretches": "one stretch of consecutive seconds a side, at another time",
          "stretches3": "three stretches a side (hierarchical)"}


def markdown(data: dict[str, Any]) -> str:
    """The calibration as a README table (rendered by ``benchmarks/readme.py``)."""
    recorded = data["recorded"]
    machine_ = data["machine"]
    lines = [f"Calibrated on a recorded run of {recorded['seconds']} s "
             f"({recorded['requests']:,} requests against the embedded target, "
             f"`{data['recording']}`) on the development machine ({machine_['cores']} "
             "cores, shared): `python -m benchmarks.compare_calibration --out docs/results`.",
             "",
             "| sides drawn as | s a run | runs a side | A/A: noise called a change | "
             "A/B: p50 x1.15 and errors +1 % both found | p99 x1.15 found |",
             "|---|--:|--:|--:|--:|--:|"]
    for case in data["cases"]:
        found = case["ab_detected_by_metric"]
        lines.append(f"| {_MODES.get(case['mode'], case['mode'])} | {case['seconds']} | "
                     f"{case['runs_a_side']} | {case['aa_false_positive_share']:.1%} of "
                     f"{case['aa_verdicts']:,} verdicts | "
                     f"{case['ab_detection_share']:.1%} of {case['pairs']} pairs | "
                     f"{found['latency.p99']:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_calibration")
    parser.add_argument("--record", action="store_true", help="record the run again")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="write RESULTS_NAME here")
    args = parser.parse_args(argv)
    if args.record:
        record(RECORDING)
    recorded = series_of(store.load(RECORDING))
    cases = []
    for mode, seconds in CASES:
        started = time.perf_counter()
        found = calibrate(recorded, mode, pairs=args.pairs, seconds=seconds)
        found["elapsed_s"] = round(time.perf_counter() - started, 2)
        cases.append(found)
    summary = json.loads((RECORDING / store.SUMMARY_FILE).read_text())
    text = json.dumps({"recording": str(RECORDING.relative_to(ROOT)),
                       "recorded": {"seconds": recorded.seconds,
                                    "requests": summary.get("requests", {}).get("completed"),
                                    "run_id": summary.get("run_id")},
                       "machine": machine(), "cases": cases}, indent=2, sort_keys=True)
    print(text)
    if args.out is not None:
        (args.out / RESULTS_NAME).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
