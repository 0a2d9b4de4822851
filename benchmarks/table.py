"""Render a results file of ``benchmarks.run`` as markdown tables.

    python -m benchmarks.table                   # the latest benchmarks/results/*.json (by name)
    python -m benchmarks.table FILE.json

``benchmarks/readme.py`` renders the README's ``results:bench`` block with :func:`markdown`
from the latest results file, so the README's figures are a committed file's.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.accuracy import AccuracySummary
from benchmarks.summary import (
    CLIENTS,
    CPU_RATIO_MAX,
    FLOOR,
    P99_DEVIATION_MAX,
    REFERENCE,
    REQ_RATIO_MIN,
    RUN_ERROR_MAX,
    SUBJECT,
    ShapeSummary,
)

__all__ = ["RESULTS_DIR", "cpu_table", "heading", "latest_file", "load", "markdown",
           "rates_table", "results_files", "throughput_table"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NOTES = (
    f"`{REFERENCE}` is `benchmarks/curl_ref.c`, the same libcurl as pycurl's driven from C: the "
    "ceiling. Every figure is a median over the rounds; the ratio columns are medians of the "
    f"per-round ratios of {SUBJECT} to {REFERENCE} (both measured in the same round). Client "
    "CPU is user+system over the main phase: rafale's main-phase windows' `cpu_s` (it runs in "
    "the harness process); every other client's process CPU sampled from outside at the main "
    "phase's start and end instants (`benchmarks/cpu.py`). wrk has no warm-up: its requests "
    "are counted over the whole run and prorated to the main phase."
)

FLOOR_NOTE = (
    f"`{FLOOR}` is `benchmarks/pycurl_floor.py`: rafale's own handles driven by the smallest "
    "Python loop (no pacing, no stats), the least any program driving libcurl through pycurl "
    f"spends: {FLOOR} / {REFERENCE} is what the binding costs, {SUBJECT} / {FLOOR} what "
    "rafale's engine adds."
)

RATES_NOTE = (
    "rafale's CPU µs/req pools every round's constant part (CPU over requests sent); "
    f"{REFERENCE}'s is the median of its rounds; {SUBJECT} / {REFERENCE} is the median of "
    "the per-round ratios, so it need not equal the quotient of the two columns."
)


def results_files(directory: Path = RESULTS_DIR) -> list[Path]:
    """The dated results files, by name (``latest.json`` excluded)."""
    return sorted(p for p in directory.glob("*.json") if p.name != "latest.json")


def latest_file(directory: Path = RESULTS_DIR) -> Path:
    files = results_files(directory)
    if not files:
        raise FileNotFoundError(f"no results file in {directory}: run python -m benchmarks.run")
    return files[-1]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _num(value: float, fmt: str) -> str:
    return "—" if math.isnan(value) else format(value, fmt)


def _goal(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**MISSED**")


def _columns(rows: Sequence[ShapeSummary]) -> list[str]:
    present = {c.client for r in rows for c in r.clients}
    return [c for c in CLIENTS if c in present] + sorted(present - set(CLIENTS))


def _failed(row: ShapeSummary) -> str:
    failed = [f"{c.client} {c.failed:,}" for c in row.clients if c.failed]
    return ", ".join(failed) or "0"


def throughput_table(rows: Sequence[ShapeSummary]) -> str:
    columns = _columns(rows)
    lines = [
        "| shape | " + " | ".join(f"{c} req/s" for c in columns)
        + f" | {SUBJECT} / {REFERENCE} | goal ≥ {REQ_RATIO_MIN:.2f} | failed |",
        "|---|" + "--:|" * (len(columns) + 1) + "---|--:|",
    ]
    for r in rows:
        cells = [_num(f.req_per_s, ",.0f") if (f := r.figures(c)) else "—" for c in columns]
        lines.append(f"| {r.shape} ({r.description}) | " + " | ".join(cells)
                     + f" | {_num(r.req_ratio, '.2f')} | {_goal(r.req_met())} | {_failed(r)} |")
    return "\n".join(lines)


def cpu_table(rows: Sequence[ShapeSummary]) -> str:
    columns = _columns(rows)
    # With the pycurl floor measured: how the gap to libcurl-c splits between the binding
    # (floor / libcurl-c) and rafale's engine (rafale / floor).
    floor = any(not math.isnan(r.floor_cpu_ratio) for r in rows)
    split = f" | {FLOOR} / {REFERENCE} | {SUBJECT} / {FLOOR}" if floor else ""
    lines = [
        "| shape | " + " | ".join(f"{c} µs/req" for c in columns)
        + f" | {SUBJECT} / {REFERENCE} | goal ≤ {CPU_RATIO_MAX:.2f}{split} |",
        "|---|" + "--:|" * (len(columns) + 1) + "---|" + ("--:|--:|" if floor else ""),
    ]
    for r in rows:
        cells = [_num(f.cpu_us_per_req, ".1f") if (f := r.figures(c)) else "—" for c in columns]
        extra = (f" | {_num(r.floor_cpu_ratio, '.2f')} | {_num(r.over_floor_cpu_ratio, '.2f')}"
                 if floor else "")
        lines.append(f"| {r.shape} | " + " | ".join(cells)
                     + f" | {_num(r.cpu_ratio, '.2f')} | {_goal(r.cpu_met())}{extra} |")
    return "\n".join(lines)


def _lag(r: AccuracySummary) -> str:
    return " / ".join("-" if v is None else f"{v / 1000:.2f}"
                      for v in (r.lag_p50_us, r.lag_p99_us, r.lag_max_us))


def rates_table(rows: Sequence[AccuracySummary]) -> str:
    # With libcurl-c's open model measured at the same rates: its CPU and rafale's ratio.
    ref = any(not math.isnan(r.reference_cpu_us_per_req) for r in rows)
    lines = [
        "| target req/s | achieved req/s | run error | vs schedule | mean per-s dev "
        "| worst per-s dev | p99 per-s dev | late | send lag p50 / p99 / max ms | failed "
        "| CPU µs/req |" + (f" {REFERENCE} CPU µs/req | {SUBJECT} / {REFERENCE} |" if ref else "")
        + " targets |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|" + ("--:|--:|" if ref else "") + "---|",
    ]
    for r in rows:
        verdict = ", ".join([
            f"run ≤ {RUN_ERROR_MAX:.1%} {_goal(r.run_error <= RUN_ERROR_MAX)}",
            f"p99 ≤ {P99_DEVIATION_MAX:.0%} {_goal(r.p99_deviation <= P99_DEVIATION_MAX)}",
        ])
        lines.append(
            f"| {r.rate_per_s:,.0f} | {r.achieved_per_s:,.1f} | {r.run_error:.3%} "
            f"| {r.schedule_error:.3%} | {r.mean_deviation:.3%} | {r.worst_deviation:.3%} "
            f"| {r.p99_deviation:.3%} | {r.late} ({r.late_share:.2%}) | {_lag(r)} "
            f"| {r.failed} | {r.cpu_us_per_req:.1f} |"
            + (f" {_num(r.reference_cpu_us_per_req, '.1f')} | {_num(r.cpu_ratio, '.2f')} |"
               if ref else "")
            + f" {verdict} |"
        )
    return "\n".join(lines)


def heading(data: dict[str, Any], source: str | None = None) -> str:
    """Which machine, code and command produced ``data`` (from the file ``source``)."""
    m, v, g, a = data["machine"], data["versions"], data["git"], data["args"]
    load = ", ".join(f"{x:.2f}" for x in m["load_avg_at_start"])
    commit = "unknown commit" if not g.get("commit") else (
        f"commit {g['commit'][:12]}" + (" with uncommitted changes" if g.get("dirty") else ""))
    tools = ", ".join(f"{name} {v[name]}" for name in
                      ("libcurl", "pycurl", "caddy", "h2load", "wrk", "locust") if name in v)
    command = shlex.join(["python", "-m", "benchmarks.run", *a.get("argv", [])])
    return (f"Measured {data['started']} on {m['host']} ({m['cores']} cores, {m['cpu_model']}; "
            f"load average at start {load}; client and target share the cores), {commit}; "
            f"{tools}: `{command}` — {a['rounds']} round(s) × {a['duration_s']} s "
            f"(+{a['warmup_s']} s warm-up) per client and shape, clients interleaved"
            + (f"; from `{source}`" if source else "") + ".\n")


def markdown(data: dict[str, Any], source: str | None = None) -> str:
    """The tables of one results file (no title: it is embedded in the README)."""
    shapes = [ShapeSummary.from_data(s) for s in data["summary"]["shapes"]]
    rates = [AccuracySummary(**r) for r in data["summary"]["accuracy"]]
    parts = [heading(data, source)]
    if shapes:
        parts += ["**Throughput** (closed model, req/s):", "", throughput_table(shapes), "",
                  "**Client CPU per request** (µs):", "", cpu_table(shapes), "", NOTES, ""]
        if any(not math.isnan(s.floor_cpu_ratio) for s in shapes):
            parts += [FLOOR_NOTE, ""]
    if rates:
        a = data["args"]
        parts += [f"**Rate accuracy** ({a['ramp_s']} s ramp, then {a['hold_s']} s constant; "
                  "h2 TLS 4 × 100; libcurl-c, where measured, runs its open model at the same "
                  "rate and shape, its ramp a warm-up at full rate):", "", rates_table(rates),
                  ""]
        if any(not math.isnan(r.reference_cpu_us_per_req) for r in rates):
            parts += [RATES_NOTE, ""]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path,
                        help="a results file (default: the latest benchmarks/results/*.json)")
    args = parser.parse_args(argv)
    path = args.file or latest_file()
    print(markdown(load(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
