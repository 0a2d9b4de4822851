"""Build window dicts exactly per the window contract (actors/contract.py) from random
latencies, with real HdrHistograms.

Independent of actors/ on purpose: analysis/ is tested against the contract, not an
implementation of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

ERROR_KINDS = ("connect:7", "timeout:28", "tls:35")


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 600_000_000, 3)


@dataclass(frozen=True)
class RunShape:
    """A synthetic run: actors × seconds, addresses, versions, error rate."""

    actors: int = 2
    seconds: int = 4
    requests_per_window: int = 50
    addresses: tuple[str, ...] = ("127.0.0.2", "127.0.0.3")
    versions: tuple[str, ...] = ("2",)
    error_every: int = 10  # one failed request in every N (0 = never)
    nodes: int = 1
    run_id: str = "run-test"
    seed: int = 7
    latency_factor: float = 1.0  # every latency times this (a slower target, same draws)


@dataclass
class Samples:
    """Every latency recorded, to check merged histograms against one big histogram."""

    corrected_us: list[int] = field(default_factory=list)
    raw_us: list[int] = field(default_factory=list)


def make_window(
    actor: int,
    second: int,
    latencies_corrected_us: list[int],
    latencies_raw_us: list[int],
    *,
    failed: dict[str, int] | None = None,
    addresses: dict[str, int] | None = None,
    versions: dict[str, int] | None = None,
    late: int = 0,
    run_id: str | None = None,
    node: str | None = None,
) -> dict[str, Any]:
    corrected, raw, failed_hist, lag, connect, ttfb = (new_histogram() for _ in range(6))
    for value in latencies_corrected_us:
        corrected.record_value(value)
    for value in latencies_raw_us:
        raw.record_value(value)
        ttfb.record_value(max(1, value * 9 // 10))  # the first byte a little before the last
    new_connections = 2 if second == 0 else 0  # each actor opens two in its first second
    for i in range(new_connections):
        connect.record_value(800 + 400 * i)
    completed = len(latencies_corrected_us)
    errors = dict(failed or {})
    n_failed = sum(errors.values())
    for i in range(n_failed):  # failures end after 1..5 s (timeouts, resets)
        failed_hist.record_value(1_000_000 * (1 + i % 5))
    for c, r in zip(latencies_corrected_us, latencies_raw_us, strict=True):
        lag.record_value(max(1, c - r))
    window: dict[str, Any] = {
        "actor": actor,
        "second": second,
        "intended": completed + n_failed,
        "sent": completed + n_failed,
        "completed": completed,
        "failed": n_failed,
        "late": late,
        "dropped": 0,
        "late_stall": 0,
        "late_cap": late,
        "late_connect": 0,
        "late_loop": 0,
        "retries": n_failed // 2,
        "in_flight": 3,
        "bytes_in": completed * 120,
        "new_connections": new_connections,
        "cpu_s": 0.25,
        "loops": 400,
        # A healthy sender: a little run-queue wait, short loop gaps (max-merged).
        "runq_wait_us": 1_000 + 10 * actor,
        "thread_cpu_us": 200_000,
        "loop_gap_max_us": 2_000 + 100 * actor + second,
        "stall_us": 0,
        "stalled": 0,
        "niceness": 0,
        "status": {"200": completed} if completed else {},
        "error": errors,
        "address": dict(addresses or {}),
        "version": dict(versions or {}),
        "tag": {f"t{actor % 2}|200": completed} if completed else {},
        "latency_by_tag_us": ({f"t{actor % 2}": corrected.encode().decode("ascii")}
                              if completed else {}),
        "latency_corrected_us": corrected.encode().decode("ascii"),
        "latency_raw_us": raw.encode().decode("ascii"),
        "latency_failed_us": failed_hist.encode().decode("ascii"),
        "send_lag_us": lag.encode().decode("ascii"),
        "connect_us": connect.encode().decode("ascii"),
        "ttfb_us": ttfb.encode().decode("ascii"),
    }
    if run_id is not None:
        window["run_id"] = run_id
    if node is not None:
        window["node"] = node
    return window


def make_run(shape: RunShape = RunShape()) -> tuple[list[dict[str, Any]], Samples]:
    """Windows for every actor × second plus every latency sample recorded in them."""
    rng = random.Random(shape.seed)
    windows: list[dict[str, Any]] = []
    samples = Samples()
    request = 0
    for second in range(shape.seconds):
        for actor in range(shape.actors):
            corrected: list[int] = []
            raw: list[int] = []
            failed: dict[str, int] = {}
            addresses: dict[str, int] = {}
            versions: dict[str, int] = {}
            for _ in range(shape.requests_per_window):
                request += 1
                if shape.error_every and request % shape.error_every == 0:
                    kind = ERROR_KINDS[request // shape.error_every % len(ERROR_KINDS)]
                    failed[kind] = failed.get(kind, 0) + 1
                    continue
                factor = shape.latency_factor
                raw_us = max(1, int(rng.lognormvariate(7.5, 0.8) * factor))
                delay_us = int(rng.expovariate(1 / 300) * factor) if rng.random() < 0.2 else 0
                raw.append(raw_us)
                corrected.append(raw_us + delay_us)
                address = shape.addresses[request % len(shape.addresses)]
                addresses[address] = addresses.get(address, 0) + 1
                version = shape.versions[request % len(shape.versions)]
                versions[version] = versions.get(version, 0) + 1
            samples.corrected_us += corrected
            samples.raw_us += raw
            windows.append(
                make_window(
                    actor,
                    second,
                    corrected,
                    raw,
                    failed=failed,
                    addresses=addresses,
                    versions=versions,
                    late=sum(1 for c, r in zip(corrected, raw, strict=True) if c != r),
                    run_id=shape.run_id,
                    node=f"node-{actor % shape.nodes}",
                )
            )
    return windows, samples
