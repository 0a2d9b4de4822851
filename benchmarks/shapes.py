"""Benchmark shapes, and rafale's side of a measurement.

A :class:`Shape` is one load shape both clients run against the same target: protocol,
TLS or cleartext, connections and streams per connection. :func:`run_rafale` runs the
engine in this process (closed model: as fast as the in-flight cap allows, like h2load's
``-c``/``-m``) for ``warmup_s + duration_s`` and measures only the windows of the main
phase: seconds ``warmup_s .. warmup_s + duration_s - 1``. Client CPU is the ``cpu_s`` of
those windows (the engine's process CPU time, user+sys, of this process, in which nothing
else runs while the engine does).

Run one shape alone (for profiling with py-spy or pyinstrument)::

    python -m benchmarks.shapes h2-1x100 --duration 5
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.engine import run_in_process
from rafale.cluster.target import Target

__all__ = ["SHAPES", "Measurement", "Shape", "rafale_config", "run_rafale", "shape_named"]


@dataclass(frozen=True)
class Shape:
    """One load shape. ``connections`` × ``streams`` requests are in flight at once."""

    name: str
    http: str  # rafale's http option: "1.1", "2", "2c", "3"
    tls: bool
    connections: int
    streams: int
    h2load: bool = True  # Debian's h2load has no HTTP/3
    family: str = "h2"  # which targets apply: "h1", "h2" or "" (none)

    @property
    def in_flight(self) -> int:
        return self.connections * self.streams

    def describe(self) -> str:
        scheme = "TLS" if self.tls else "cleartext"
        if self.http == "1.1":
            return f"HTTP/1.1 {scheme}, {self.connections} connections"
        label = {"2": "h2", "2c": "h2c", "3": "h3"}[self.http]
        return f"{label} {scheme}, {self.connections} conn × {self.streams} streams"


SHAPES: tuple[Shape, ...] = (
    Shape("h1-100", "1.1", True, 100, 1, family="h1"),
    Shape("h2-1x100", "2", True, 1, 100),
    Shape("h2-4x25", "2", True, 4, 25),
    Shape("h1c-100", "1.1", False, 100, 1, family="h1"),
    Shape("h2c-1x100", "2c", False, 1, 100),
    Shape("h3-1x100", "3", True, 1, 100, h2load=False, family=""),
)


def shape_named(name: str) -> Shape:
    for shape in SHAPES:
        if shape.name == name:
            return shape
    valid = ", ".join(s.name for s in SHAPES)
    raise ValueError(f"unknown shape {name!r}; expected one of {valid}")


@dataclass
class Measurement:
    """One client's main phase of one shape in one round."""

    client: str
    shape: str
    round: int
    duration_s: float
    succeeded: int
    failed: int
    cpu_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def req_per_s(self) -> float:
        return self.succeeded / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s * 1e6 / self.succeeded if self.succeeded else float("nan")

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "req_per_s": self.req_per_s, "cpu_us_per_req": self.cpu_us_per_req}


def _resolve_first(target: Target, port: int) -> tuple[ResolveEntry, ...]:
    """Map the host to the first address only: h2load connects there too."""
    return (ResolveEntry(target.host, port, (target.addresses[0],)),)


def rafale_config(shape: Shape, target: Target, total_s: float) -> EngineConfig:
    """The closed-model engine config of ``shape`` against ``target`` for ``total_s``."""
    port = target.https_port if shape.tls else target.http_port
    multiplexed = shape.http != "1.1"
    return EngineConfig(
        urls=(target.url("/", tls=shape.tls),),
        http=shape.http,
        resolve=_resolve_first(target, port),
        cacert=str(target.ca_file) if shape.tls else None,
        schedule=None,
        duration_s=total_s,
        max_in_flight=shape.in_flight,
        in_flight_step=shape.in_flight,  # all at once, as h2load starts its clients
        max_connections=shape.connections,
        streams_per_connection=shape.streams if multiplexed else 1,
    )


def _ok(window: dict[str, Any]) -> int:
    return sum(n for code, n in window["status"].items() if code.startswith(("2", "3")))


def _merge_counts(windows: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for window in windows:
        for name, n in window[key].items():
            out[name] = out.get(name, 0) + n
    return out


def measure_windows(
    windows: Sequence[dict[str, Any]], shape: str, round_: int, warmup_s: int, duration_s: int
) -> Measurement:
    """rafale's measurement from the windows of seconds warmup_s .. warmup_s+duration_s-1."""
    main = [w for w in windows if warmup_s <= w["second"] < warmup_s + duration_s]
    non_ok = sum(w["completed"] for w in main) - sum(_ok(w) for w in main)
    return Measurement(
        client="rafale",
        shape=shape,
        round=round_,
        duration_s=float(duration_s),
        succeeded=sum(_ok(w) for w in main),
        failed=sum(w["failed"] for w in main) + non_ok,
        cpu_s=sum(w["cpu_s"] for w in main),
        extra={
            "windows": len(main),
            "version": _merge_counts(main, "version"),
            "error": _merge_counts(main, "error"),
            "loops": sum(w["loops"] for w in main),
            "new_connections": sum(w["new_connections"] for w in windows),
        },
    )


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_rafale(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: int = 1, duration_s: int = 5
) -> Measurement:
    """Run rafale's engine in this process on ``shape`` and measure the main phase."""
    config = rafale_config(shape, target, float(warmup_s + duration_s))
    cpu0 = _self_cpu_s()
    windows = run_in_process(config)
    cpu_total = _self_cpu_s() - cpu0
    result = measure_windows(windows, shape.name, round_, warmup_s, duration_s)
    result.extra["cpu_s_whole_run"] = cpu_total  # warm-up and drain included
    return result


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shapes",
        description="Run rafale alone on one benchmark shape (for profiling).",
    )
    parser.add_argument("shape", choices=[s.name for s in SHAPES])
    parser.add_argument("--duration", type=int, default=5, help="main phase, seconds")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up, seconds")
    parser.add_argument("--rounds", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    shape = shape_named(args.shape)
    with Target() as target:
        for round_ in range(args.rounds):
            m = run_rafale(shape, target, round_, warmup_s=args.warmup, duration_s=args.duration)
            print(
                f"{shape.name} round {round_}: {m.req_per_s:,.0f} req/s, "
                f"{m.cpu_us_per_req:.1f} µs CPU/request, {m.failed} failed, "
                f"versions {m.extra['version']}",
                flush=True,
            )
            print(json.dumps(m.to_data()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
