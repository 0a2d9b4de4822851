"""Put the committed results' numbers into the README: ``python -m benchmarks.readme``.

Each README block between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` is
rendered from ``docs/results/NAME.json`` (written by the benchmark that measured it and
committed), except ``bench``: the latest (by name) ``benchmarks/results/*.json`` that
``python -m benchmarks.run`` wrote (``benchmarks.table``). ``tests/test_readme.py`` checks
that every block equals its rendering, so a number in the README can only come from a
committed results file.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    compare_calibration,
    compare_example,
    connection_wall,
    contention,
    driver_scale,
    driver_tree,
    feeds,
    metrics_cost,
    table,
    webpush,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results"
_BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)"
                    r"(<!-- /results:(?P=name) -->)", re.S)


def _machine(info: dict[str, Any], command: str) -> str:
    load = ", ".join(f"{x:.2f}" for x in info.get("load_average", []))
    versions = ", ".join(f"{name} {info[name]}" for name in ("python", "pyarrow", "hdrhistogram")
                         if name in info)
    return (f"Measured {info.get('date', '?')} on this project's development machine "
            f"({info.get('cpu_count')} CPUs, {info.get('platform', '?')}; {versions}; load "
            f"average at start {load}): `{command}`.\n")


def render_driver_scale(data: dict[str, Any]) -> str:
    cases = [driver_scale.Case(**case) for case in data["cases"]]
    command = (f"python -m benchmarks.driver_scale --max-windows {data['max_windows']} "
               "--out docs/results")
    return (_machine(data["machine"], command) + "\n"
            + driver_scale.markdown(cases, list(data["verdicts"]), int(data["max_windows"])))


def render_driver_tree(data: dict[str, Any]) -> str:
    cases = [driver_tree.ModeCase(**case) for case in data["cases"]]
    modes = ",".join(dict.fromkeys(c.mode for c in cases))
    pairs = list(dict.fromkeys((c.senders, c.nodes) for c in cases))
    command = (f"python -m benchmarks.driver_scale --mode {modes} --senders "
               f"{','.join(str(n) for n, _ in pairs)} --nodes {','.join(str(m) for _, m in pairs)}"
               f" --seconds {data['seconds']} --out docs/results")
    return (_machine(data["machine"], command) + "\n"
            + driver_tree.markdown(cases, list(data["verdicts"])))


def render_metrics_cost(data: dict[str, Any]) -> str:
    args = data["args"]
    command = (f"python -m benchmarks.metrics_cost --actors {args['actors']} --seconds "
               f"{args['seconds']} --rounds {args['rounds']} --out docs/results")
    return _machine(data["machine"], command) + "\n" + metrics_cost.markdown(data["cases"])


def render_contention(data: dict[str, Any]) -> str:
    cases = [contention.Case(**case) for case in data["cases"]]
    rounds = data["machine"].get("rounds", 3)
    command = f"python -m benchmarks.contention --rounds {rounds} --out docs/results"
    return (_machine(data["machine"], command) + "\n"
            + contention.markdown(cases, list(data["verdicts"])))


def render_feeds(data: dict[str, Any]) -> str:
    args = data["args"]
    command = (f"python -m benchmarks.feeds --rows {args['rows']} --rounds {args['rounds']} "
               "--out docs/results")
    return _machine(data["machine"], command) + "\n" + feeds.markdown(data)


def render_webpush(data: dict[str, Any]) -> str:
    args = data["args"]
    command = (f"python -m benchmarks.webpush --messages {args['messages']} "
               f"--rounds {args['rounds']} --rates {args['rates']} --out docs/results")
    return _machine(data["machine"], command) + "\n" + webpush.markdown(data)


def render_connection_wall(data: dict[str, Any]) -> str:
    command = "python -m benchmarks.connection_wall --out docs/results/connection_wall.json"
    return _machine(data["machine"], command) + "\n" + connection_wall.markdown(data)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value) / 1000:,.2f}"


def _demo_stalls(data: dict[str, Any], rate: float) -> list[str]:
    """What the "stalled s" column says of the two phases (nothing for an older demo.json)."""
    phases = {name: [row.get("stalled_seconds") for row in data[name]]
              for name in ("max", "latency")}
    if any(value is None for values in phases.values() for value in values):
        return []
    def said(values: list[Any]) -> str:
        stalled = sum(1 for value in values if value)
        return ("no second stalled" if not stalled else
                f"{stalled} of {len(values)} runs had sender-stalled seconds")
    return [f"**stalled s**: seconds in which a sender stalled (see *stalls* under What the "
            f"numbers mean). At maximum throughput {said(phases['max'])}: the closed model "
            "keeps the 2 cores busy and the senders wait for a CPU beside the target, so that "
            "table is this machine's ceiling, senders and target together, not the target's. "
            f"At {rate:,.0f} req/s {said(phases['latency'])}.", ""]


def render_demo(data: dict[str, Any]) -> str:
    """The demo's two tables (from docs/results/demo/demo.json) and its charts."""
    def table(rows: list[dict[str, Any]]) -> list[str]:
        lines = ["| HTTP | DNS | actors | req/s | p50 ms | p99 ms | addresses | stalled s |",
                 "|---|---|--:|--:|--:|--:|--:|--:|"]
        for row in rows:
            lines.append(f"| {row['http']} | {row['dns']} | {row['actors']} | "
                         f"{float(row['achieved_per_s']):,.0f} | {_ms(row['p50_corrected_us'])} | "
                         f"{_ms(row['p99_corrected_us'])} | {row['addresses_used']} | "
                         f"{row.get('stalled_seconds', '-')} |")
        return lines

    rate = float(data["rate_per_s"])
    parts = [
        f"Measured {data.get('date', '?')} on this project's development machine "
        f"({data.get('cpu_count', '?')} CPUs; the target on the same cores): "
        f"`python -m rafale.cluster.demo --publish docs/results/demo`.", "",
        "**Maximum throughput** (closed model, 100 requests in flight per actor):", "",
        *table(data["max"]), "",
        f"**Latency at {rate:,.0f} req/s** (pinned DNS; req/s is the mean over the run, its "
        "1 s ramp included):", "",
        *table(data["latency"]), "",
        *_demo_stalls(data, rate),
        "![maximum throughput by protocol and DNS mode](docs/results/demo/max-comparison.png)",
        "![latency at a fixed rate](docs/results/demo/latency-comparison.png)",
        "![pinned DNS: both addresses](docs/results/demo/address-share-pinned.png)",
        "![system DNS: one address](docs/results/demo/address-share-system.png)",
    ]
    return "\n".join(parts) + "\n"


def render_bench(data: dict[str, Any], path: Path | None = None) -> str:
    """``make bench``'s tables (rafale against libcurl-c and its peers), from its results;
    the heading names the file."""
    source = None if path is None else path.resolve().relative_to(ROOT).as_posix()
    return table.markdown(data, source)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "demo": render_demo,
    "webpush": render_webpush,
    "feeds": render_feeds,
    "driver_scale": render_driver_scale,
    "driver_tree": render_driver_tree,
    "contention": render_contention,
    "metrics_cost": render_metrics_cost,
    "compare_calibration": compare_calibration.markdown,
    "compare_example": compare_example.markdown,
    "connection_wall": render_connection_wall,
}


_SOURCE = re.compile(r"from `(?P<path>benchmarks/results/[^`]+\.json)`")


def results_path(name: str, block: str | None = None) -> Path:
    """The results file block ``name`` is rendered from. ``bench``: the file its README
    ``block`` names (so that a newer local run does not change what the committed README
    is checked against), else the latest ``benchmarks/results/*.json``."""
    if name == "bench":
        named = _SOURCE.search(block or "")
        return ROOT / named.group("path") if named else table.latest_file()
    path = RESULTS / f"{name}.json"
    if not path.exists():  # a benchmark that publishes a folder (charts and its json)
        path = RESULTS / name / f"{name}.json"
    return path


def render(name: str, block: str | None = None) -> str:
    path = results_path(name, block)
    data = json.loads(path.read_text(encoding="utf-8"))
    if name == "bench":
        return render_bench(data, path)
    return RENDERERS[name](data)


def blocks(text: str) -> dict[str, str]:
    """{name: body} of every results block in ``text``."""
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


def update(text: str) -> str:
    """``text`` with every results block rendered again from its results file."""
    return _BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = update(text)
    README.write_text(new, encoding="utf-8")
    print(f"{README}: {len(blocks(new))} results blocks, "
          f"{'changed' if new != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
