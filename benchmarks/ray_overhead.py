"""Ray overhead: one SenderActor through Ray against the engine alone in this process.

Same embedded target, same shape (closed model: as fast as the in-flight cap allows),
rounds interleaved (alternating which side goes first) so that drift on the machine
hits both sides alike. Also times a local start: ``connect(None)`` until every planned
actor answers ``where()``, and until the first request is sent. On a busy machine the
req/s ratio is noisy; req per sender CPU-second is the steadier measure of overhead.

    .venv/bin/python -m benchmarks.ray_overhead [--seconds 5] [--rounds 3] [--http 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

import ray

from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.engine import run_in_process
from rafale.cluster import placement
from rafale.cluster.target import Target


@dataclass(frozen=True)
class Round:
    in_process_per_s: float
    ray_per_s: float
    in_process_per_cpu_s: float
    ray_per_cpu_s: float

    @property
    def ratio(self) -> float:
        return self.ray_per_s / self.in_process_per_s if self.in_process_per_s else 0.0


def completed_per_s(windows: list[dict[str, Any]], duration_s: float) -> float:
    """Completed requests per second over the sending seconds (not the grace tail)."""
    done = sum(int(w["completed"]) for w in windows if w["second"] < duration_s)
    return done / duration_s


def completed_per_cpu_s(windows: list[dict[str, Any]]) -> float:
    """Completed requests per second of the sender's CPU: less sensitive to a busy host."""
    cpu_s = sum(float(w["cpu_s"]) for w in windows)
    return sum(int(w["completed"]) for w in windows) / cpu_s if cpu_s else 0.0


def config_for(target: Target, http: str, duration_s: float, in_flight: int) -> EngineConfig:
    return EngineConfig(
        urls=(target.https_url if http != "2c" else target.http_url,),
        http=http,
        resolve=tuple(ResolveEntry.parse(r) for r in target.resolve),
        cacert=str(target.ca_file),
        schedule=None,
        duration_s=duration_s,
        max_in_flight=in_flight,
        in_flight_step=in_flight,
        timeout_s=5.0,
        drain_s=2.0,
    )


def run_through_ray(config: EngineConfig, node_id: str) -> list[dict[str, Any]]:
    (handle,), _ = placement.place([config], [node_id])
    try:
        ray.get(handle.start.remote(time.time() + 0.2))
        while not ray.get(handle.join.remote(1.0)):
            pass
        return list(ray.get(handle.drain.remote()))
    finally:
        placement.kill_all([handle])


def time_local_start(target: Target) -> tuple[float, float, int]:
    """(s to all actors ready, s to the first request sent, actors) from connect(None)."""
    began = time.monotonic()
    placement.connect(None)
    plan = placement.plan_actors("auto")
    configs = [EngineConfig(urls=(target.https_url,), cacert=str(target.ca_file),
                            resolve=tuple(ResolveEntry.parse(r) for r in target.resolve),
                            duration_s=1.0, max_in_flight=4, actor_index=i,
                            actor_count=len(plan)) for i in range(len(plan))]
    handles, _ = placement.place(configs, plan)
    ready_s = time.monotonic() - began
    try:
        ray.get([h.start.remote(time.time()) for h in handles])
        while True:
            statuses: list[dict[str, Any]] = ray.get([h.status.remote() for h in handles])
            if any(status["sent"] for status in statuses):
                break
            time.sleep(0.005)
        first_s = time.monotonic() - began
    finally:
        placement.kill_all(handles)
    return ready_s, first_s, len(plan)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http", default="2", choices=["1.1", "2", "2c", "3"])
    parser.add_argument("--in-flight", type=int, default=100)
    args = parser.parse_args()
    with Target() as target:
        ready_s, first_s, count = time_local_start(target)
        node_id = placement.plan_actors(1)[0]
        config = config_for(target, args.http, args.seconds, args.in_flight)
        rounds: list[Round] = []
        for _ in range(args.rounds):
            if len(rounds) % 2:  # alternate which side goes first, against drift
                ray_windows = run_through_ray(config, node_id)
                local_windows = run_in_process(config)
            else:
                local_windows = run_in_process(config)
                ray_windows = run_through_ray(config, node_id)
            rounds.append(Round(completed_per_s(local_windows, args.seconds),
                                completed_per_s(ray_windows, args.seconds),
                                completed_per_cpu_s(local_windows),
                                completed_per_cpu_s(ray_windows)))
            last = rounds[-1]
            print(f"round {len(rounds)}: in-process {last.in_process_per_s:,.0f} req/s "
                  f"({last.in_process_per_cpu_s:,.0f}/CPU-s), Ray {last.ray_per_s:,.0f} req/s "
                  f"({last.ray_per_cpu_s:,.0f}/CPU-s), ratio {last.ratio:.3f}", flush=True)
    ray.shutdown()
    median_local = statistics.median(r.in_process_per_s for r in rounds)
    median_ray = statistics.median(r.ray_per_s for r in rounds)
    median_ratio = statistics.median(r.ratio for r in rounds)
    shape = f"h{args.http}, {args.in_flight} in flight, {args.seconds:g} s, closed"
    print()
    print(f"| measure ({shape}, {args.rounds} rounds)    | value |")
    print("|---|---|")
    print(f"| connect(None) -> {count} actors answer where() | {ready_s:.2f} s |")
    print(f"| connect(None) -> first request sent       | {first_s:.2f} s |")
    print(f"| engine in-process, median                  | {median_local:,.0f} req/s |")
    print(f"| one SenderActor through Ray, median        | {median_ray:,.0f} req/s |")
    cpu_local = statistics.median(r.in_process_per_cpu_s for r in rounds)
    cpu_ray = statistics.median(r.ray_per_cpu_s for r in rounds)
    print(f"| req per sender CPU-second, in-process / Ray | {cpu_local:,.0f} / {cpu_ray:,.0f} "
          f"({cpu_ray / cpu_local if cpu_local else 0:.3f}) |")
    print(f"| Ray / in-process, median of round ratios   | {median_ratio:.3f} "
          f"({'ok' if median_ratio >= 0.95 else 'BELOW 0.95'}) |")
    return 0 if median_ratio >= 0.95 else 1


if __name__ == "__main__":
    raise SystemExit(main())
