"""``python -m rafale.cluster.demo`` (``make demo``): how fast each protocol goes, and what
pinning connections over every resolved address changes — on this machine, in ~2 minutes.

Starts the embedded target (Caddy on 127.0.0.2 and 127.0.0.3) and a local Ray, then:

1. **maximum throughput**: every HTTP version (1.1, 2, 3 over https; 2c over http) × DNS
   mode (system, pinned) in the closed model (as fast as ``--max-in-flight`` allows) for a
   few seconds each: the comparison chart's bars are each protocol's ceiling here, and the
   per-address charts show pinned DNS spreading the load over both addresses;
2. **latency at a fixed rate**: one run per HTTP version (pinned DNS) at ``--rate``, so the
   latencies are compared at the same load.

Each phase ends with its baseline: every cell against the phase's first (HTTP/1.1 system
DNS for the first phase, HTTP/1.1 pinned for the second), a verdict for the rate, p50, p99
and error rate (significantly better, worse, or noise). Every run is saved under
``results/demo-<timestamp>/{max,latency}/``; the terminal shows the key columns, the full
tables are in ``comparison.md`` and ``baseline.md``. ``--publish DIR`` also copies the
tables and charts there with ``demo.json`` (what the README shows, rendered by
``benchmarks.readme``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rafale.cluster.matrix import Case, plan, run_matrix
from rafale.cluster.meta import Ended

VERSIONS_TLS = ("1.1", "2", "3")
VERSIONS_CLEAR = ("2c",)
DNS_MODES = ("system", "pinned")


def _describe(case: Case, result: Any) -> None:
    s = result.summary
    lat = s.get("latency_corrected_us", {})
    p99 = "-" if lat.get("p99") is None else f"{lat['p99'] / 1000:.2f} ms"
    shares = ", ".join(f"{a} {v:.0%}" for a, v in sorted(s.get("address_share", {}).items()))
    held = (s.get("target") or {}).get("held_per_s")
    rate = f"{s.get('rate_per_s', {}).get('completed', 0):9,.0f} req/s" + (
        "" if held is None else f" ({held:,.0f} held)")
    print(f"  {case.label:<26} {rate}  "
          f"p99 {p99:>9}  failed {s.get('requests', {}).get('failed', 0):,}  "
          f"addresses {shares or '-'}", flush=True)


def _cases(target: Any, base: dict[str, Any], out: Path, dns_modes: Sequence[str]
           ) -> list[Case]:
    tls, _ = plan(base, [target.https_url], VERSIONS_TLS, dns_modes, out=out)
    clear, _ = plan(base, [target.http_url], VERSIONS_CLEAR, dns_modes, out=out)
    return tls + clear


def _publish(out: Path, publish: Path, tables: dict[str, Any]) -> None:
    from rafale.analysis import plots, store

    publish.mkdir(parents=True, exist_ok=True)
    for phase in ("max", "latency"):
        shutil.copy(out / phase / "comparison.png", publish / f"{phase}-comparison.png")
    pinned = next((out / "max").glob("http2-pinned-*"), None)
    system = next((out / "max").glob("http2-system-*"), None)
    for name, run in (("pinned", pinned), ("system", system)):
        if run is None:
            continue
        chart = run / "address_share.png"
        if not chart.exists():  # --no-run-charts: draw just the published one
            plots.save_png(plots.address_share(store.load(run)), chart)
        shutil.copy(chart, publish / f"address-share-{name}.png")
    (publish / "demo.json").write_text(json.dumps(tables, indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rafale.cluster.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="req/s of the latency runs (1000)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run (4)")
    parser.add_argument("--max-in-flight", type=int, default=100,
                        help="requests open at once per actor in the throughput runs (100)")
    parser.add_argument("--out", default=None, help="default results/demo-<timestamp>")
    parser.add_argument("--publish", default=None, help="also copy tables and charts here")
    parser.add_argument("--no-run-charts", action="store_true",
                        help="skip each run's own charts (throughput, latency, address share: "
                             "~1 s of CPU a run); the comparison charts and tables, and the "
                             "published address-share charts, are drawn either way")
    args = parser.parse_args(argv)
    out = Path(args.out or f"results/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    began = time.monotonic()

    from rafale.analysis import compare, report
    from rafale.analysis.verdict.baseline import baseline_text
    from rafale.cluster.target import Target

    with Target() as target:
        print(f"target: {target.https_url} and {target.http_url} on "
              f"{', '.join(target.addresses)}", flush=True)
        common: dict[str, Any] = {"duration_s": args.duration, "resolve": target.resolve,
                                  "cacert": str(target.ca_file)}
        closed = {**common, "max_in_flight": args.max_in_flight}
        cases = _cases(target, closed, out / "max", DNS_MODES)
        print(f"1. maximum throughput: {len(cases)} runs of {args.duration:g} s, closed model "
              f"({args.max_in_flight} in flight per actor), one actor per CPU", flush=True)
        baselines: list[Any] = []
        maximum, written = run_matrix(cases, out / "max", on_run=_describe,
                                      on_baseline=baselines.append)
        fixed = {**common, "rate_per_s": args.rate, "ramp_s": min(1.0, args.duration / 4)}
        cases = _cases(target, fixed, out / "latency", ("pinned",))
        print(f"2. latency at {args.rate:g} req/s: {len(cases)} runs of {args.duration:g} s",
              flush=True)
        latency, more = run_matrix(cases, out / "latency", on_run=_describe,
                                   on_baseline=baselines.append)
        written += more
    tables = {name: compare.compare(results).to_dict("records")
              for name, results in (("max", maximum), ("latency", latency))}
    print("\nmaximum throughput (closed model):")
    print(compare.to_terminal(compare.compare(maximum)), end="")
    print(baseline_text(baselines[0]), end="")
    print(f"\nlatency at {args.rate:g} req/s:")
    print(compare.to_terminal(compare.compare(latency)), end="")
    print(baseline_text(baselines[1]), end="")
    for phase in ("max", "latency") if not args.no_run_charts else ():
        for run_dir in compare.result_dirs(out / phase):
            written += report.render(run_dir)
    print(f"\nfull tables: {out / 'max' / compare.COMPARISON_MD}, "
          f"{out / 'latency' / compare.COMPARISON_MD}; {len(written)} files written")
    if args.publish:
        info = {"rate_per_s": args.rate, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "cpu_count": os.cpu_count()}
        _publish(out, Path(args.publish), {**info, **tables})
        print(f"published to {args.publish}")
    print(f"demo took {time.monotonic() - began:.0f} s")
    return 0 if all(r.meta.get("ended") == Ended.COMPLETED for r in maximum + latency) else 1


if __name__ == "__main__":
    sys.exit(main())
