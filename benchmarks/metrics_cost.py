"""What the /metrics endpoint costs the driver: ``python -m benchmarks.metrics_cost``.

The driver's second as ``benchmarks.driver_scale`` simulates it (N actors' realistic windows
appended to the window log, a progress snapshot, a checkpoint every 5 s), once without and
once with a real :class:`~rafale.cluster.metrics.MetricsEndpoint` scraped every simulated
second over HTTP by a separate process (a Prometheus server's part): the endpoint builds
every family from the merged log (``analysis/prometheus.py``) in its own thread of the
driver's process, so ``time.process_time`` counts it, and the scraper's own work is not
counted. Rounds alternate the two modes; the figures are medians over rounds of each
case's median CPU per second (seconds without a checkpoint) and mean (with them). On a
shared machine the difference of two such totals is mostly noise, so the cost is also
measured directly: the driver process's CPU from asking for a scrape to having its answer
(building the families, the exposition, the HTTP server's thread), median over seconds;
the target is judged on that, as a share of the driver's CPU per second without it.

    .venv/bin/python -m benchmarks.metrics_cost [--actors 64,256] [--seconds 60]
        [--rounds 3] [--out docs/results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import driver_scale
from rafale.analysis import prometheus
from rafale.analysis.log import WindowLog
from rafale.cluster.metrics import MetricsEndpoint

COST_TARGET = 0.05  # the endpoint scraped every second: < 5 % more driver CPU at N=256
_SCRAPER = ("import sys, urllib.request\n"
            "for url in sys.stdin:\n"
            "    with urllib.request.urlopen(url.strip(), timeout=30) as page:\n"
            "        print(len(page.read()), flush=True)\n")


class Scraper:
    """A process that GETs the endpoint each time it is asked, and says how many bytes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.process = subprocess.Popen([sys.executable, "-c", _SCRAPER], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.bytes = 0
        self.cpu_s: list[float] = []  # this process's CPU for each scrape

    def __call__(self, _log: WindowLog) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        began = time.process_time()
        self.process.stdin.write(self.url + "\n")
        self.process.stdin.flush()
        self.bytes = int(self.process.stdout.readline())
        self.cpu_s.append(time.process_time() - began)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def scraped_case(actors: int, seconds: int, pool: list[dict[str, Any]]
                 ) -> tuple[driver_scale.Case, Scraper]:
    """One case with the endpoint scraped every second; (case, its scraper's figures)."""
    endpoint = MetricsEndpoint("127.0.0.1:0")
    log_box: list[WindowLog] = []

    def build() -> list[Any]:
        total = log_box[0].total()
        return prometheus.families(total, {"run_id": "metrics-cost", "run": "metrics-cost"},
                                   target_rate_per_s=1000.0 * actors,
                                   in_flight=log_box[0].in_flight(),
                                   actors={"alive": actors, "lost": 0},
                                   info={"http": "auto", "dns": "system", "ended": "running"})

    endpoint.attach(build)
    scraper = Scraper(endpoint.url)

    def each_second(log: WindowLog) -> None:
        log_box[:] = [log]
        scraper(log)

    try:
        case = driver_scale.run_case(actors, seconds, 10**9, pool, each_second)
    finally:
        scraper.close()
        endpoint.stop()
    return case, scraper


def measure(actors: list[int], seconds: int, rounds: int) -> list[dict[str, Any]]:
    pool = driver_scale.window_pool(64)
    driver_scale.run_case(min(actors), 5, 10**9, pool)  # warm-up, not kept
    records = []
    for n in actors:
        plain: list[driver_scale.Case] = []
        scraped: list[driver_scale.Case] = []
        page_bytes = 0
        scrape_cpu: list[float] = []
        for r in range(rounds):
            order = ("plain", "scraped") if r % 2 == 0 else ("scraped", "plain")
            for mode in order:
                if mode == "plain":
                    plain.append(driver_scale.run_case(n, seconds, 10**9, pool))
                else:
                    case, scraper = scraped_case(n, seconds, pool)
                    scraped.append(case)
                    page_bytes = scraper.bytes
                    scrape_cpu += scraper.cpu_s
        record: dict[str, Any] = {"actors": n, "seconds": seconds, "rounds": rounds,
                                  "page_bytes": page_bytes}
        for name, cases in (("plain", plain), ("scraped", scraped)):
            record[f"{name}_cpu_per_s_median_s"] = statistics.median(
                c.cpu_per_s_median_s for c in cases)
            record[f"{name}_cpu_per_s_mean_s"] = statistics.median(
                c.cpu_per_s_mean_s for c in cases)
        record["difference_share"] = (record["scraped_cpu_per_s_mean_s"]
                                      / record["plain_cpu_per_s_mean_s"] - 1)
        record["scrape_cpu_median_s"] = statistics.median(scrape_cpu)
        record["scrape_cpu_max_s"] = max(scrape_cpu)
        record["extra_share"] = record["scrape_cpu_median_s"] / record["plain_cpu_per_s_mean_s"]
        records.append(record)
        print(f"N={n}: driver CPU/s mean {record['plain_cpu_per_s_mean_s'] * 1e3:.1f} ms "
              f"without, {record['scraped_cpu_per_s_mean_s'] * 1e3:.1f} ms scraped every "
              f"second; one scrape {record['scrape_cpu_median_s'] * 1e3:.2f} ms "
              f"(+{record['extra_share']:.1%}; page {page_bytes:,} B)", flush=True)
    return records


def markdown(records: list[dict[str, Any]]) -> str:
    rows = ["| N actors | driver CPU/s without (median / mean) | with a scrape every second "
            "(median / mean) | one scrape's CPU (median / max) | more CPU | page |",
            "|--:|--:|--:|--:|--:|--:|"]
    for r in records:
        rows.append(
            f"| {r['actors']} | {r['plain_cpu_per_s_median_s'] * 1e3:.1f} / "
            f"{r['plain_cpu_per_s_mean_s'] * 1e3:.1f} ms | "
            f"{r['scraped_cpu_per_s_median_s'] * 1e3:.1f} / "
            f"{r['scraped_cpu_per_s_mean_s'] * 1e3:.1f} ms | "
            f"{r['scrape_cpu_median_s'] * 1e3:.2f} / {r['scrape_cpu_max_s'] * 1e3:.2f} ms "
            f"| +{r['extra_share']:.1%} | {r['page_bytes'] / 1024:.1f} KiB |")
    return "\n".join([*rows, "", verdict(records)]) + "\n"


def verdict(records: list[dict[str, Any]]) -> str:
    largest = max(records, key=lambda r: r["actors"])
    met = largest["extra_share"] < COST_TARGET
    return (f"Target: the endpoint scraped every second costs the driver < {COST_TARGET:.0%} "
            f"more CPU at N={largest['actors']} (one scrape's CPU over the driver's CPU per "
            f"second without it): {'met' if met else 'MISSED'} "
            f"(+{largest['extra_share']:.1%}; the difference of the two totals, mostly noise "
            f"on a shared machine: {largest['difference_share']:+.1%}).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--actors", default="64,256", help="comma-separated N")
    parser.add_argument("--seconds", type=int, default=60, help="simulated seconds per case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.seconds < 5 or args.rounds < 1:
        parser.error(f"--seconds must be >= 5 and --rounds >= 1, got {args.seconds} and "
                     f"{args.rounds}")
    info = driver_scale.machine()
    records = measure(driver_scale._ints(args.actors), args.seconds, args.rounds)
    info["load_average_end"] = list(os.getloadavg())
    info["date_end"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics_cost.json").write_text(
        json.dumps({"machine": info, "args": vars(args) | {"out": str(args.out)},
                    "cases": records, "verdict": verdict(records)}, indent=2) + "\n",
        encoding="utf-8")
    print("\n" + markdown(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
