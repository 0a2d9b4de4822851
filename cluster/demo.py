"""``python -m rafale.cluster.demo`` (``make demo``): the protocol × DNS matrix on this machine.

Starts the embedded target (Caddy on 127.0.0.2 and 127.0.0.3) and a local Ray, runs
every HTTP version (1.1, 2, 3 over https; 2c over http) × DNS mode (system, pinned) for a
few seconds each, saves every run under ``results/demo-<timestamp>/``, then prints the
comparison table and the paths of the charts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rafale.cluster.matrix import Case, plan, run_matrix


def _ms(value_us: Any) -> str:
    return "-" if value_us is None else f"{value_us / 1000:.2f} ms"


def _describe(case: Case, result: Any) -> None:
    s = result.summary
    req = s.get("requests", {})
    lat = s.get("latency_corrected_us", {})
    shares = ", ".join(f"{a} {v:.0%}" for a, v in sorted(s.get("address_share", {}).items()))
    print(f"  {case.label:<28} {s.get('rate_per_s', {}).get('completed', 0):8.1f} req/s  "
          f"p50 {_ms(lat.get('p50'))}  p99 {_ms(lat.get('p99'))}  failed {req.get('failed', 0)}"
          f"  addresses {shares or '-'}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rafale.cluster.demo", description=__doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="req/s per run (500)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("--ramp", type=float, default=1.0, help="ramp-up seconds (1)")
    parser.add_argument("--out", default=None, help="default results/demo-<timestamp>")
    args = parser.parse_args(argv)
    out = Path(args.out or f"results/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    began = time.monotonic()

    from rafale.analysis import compare, report
    from rafale.cluster.target import Target

    with Target() as target:
        print(f"target: {target.https_url} and {target.http_url} on "
              f"{', '.join(target.addresses)}", flush=True)
        base: dict[str, Any] = {"rate_per_s": args.rate, "ramp_s": args.ramp,
                                "duration_s": args.duration, "resolve": target.resolve,
                                "cacert": str(target.ca_file)}
        tls, _ = plan(base, [target.https_url], ["1.1", "2", "3"], ["system", "pinned"], out=out)
        clear, _ = plan(base, [target.http_url], ["2c"], ["system", "pinned"], out=out)
        cases = tls + clear
        print(f"{len(cases)} runs of {args.duration:g} s at {args.rate:g} req/s "
              f"(ramp {args.ramp:g} s), one actor per CPU; results in {out}", flush=True)
        results, written = run_matrix(cases, out, on_run=_describe)
    print()
    print(compare.to_markdown(compare.compare(results)), end="")
    print()
    for run_dir in compare.result_dirs(out):  # throughput, latency, address share per run
        written += report.render(run_dir)
    for path in written:
        print(f"wrote {path}")
    print(f"demo took {time.monotonic() - began:.0f} s")
    return 0 if all(r.meta.get("ended") == "completed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
