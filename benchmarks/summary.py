"""The harness's maths: medians over rounds, per-round ratios to the reference, verdicts.

Every client's figures for a shape are medians over the rounds. rafale's ratios to the
reference client (``libcurl-c``: the same libcurl driven from C, the ceiling) are medians of
the **per-round** ratios, both clients measured in the same round, so that slow drift of a
noisy machine cancels out. Pure functions of measurements: no traffic, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.accuracy import AccuracyRound, AccuracySummary, cpu_us_per_sent, summarize
from benchmarks.shapes import Measurement, Shape

__all__ = ["CLIENTS", "CPU_RATIO_MAX", "FLOOR", "P99_DEVIATION_MAX", "REFERENCE", "REQ_RATIO_MIN",
           "RUN_ERROR_MAX", "SUBJECT", "ClientFigures", "ShapeSummary", "median", "ratios",
           "summarize_rates", "summarize_shapes"]

REFERENCE = "libcurl-c"
SUBJECT = "rafale"
FLOOR = "pycurl-floor"  # the least a Python program driving pycurl spends per request
CLIENTS = (REFERENCE, SUBJECT, FLOOR, "h2load", "wrk", "locust")  # the tables' column order
REQ_RATIO_MIN = 0.95  # rafale's req/s ≥ 0.95 × libcurl-c's
CPU_RATIO_MAX = 1.10  # rafale's CPU per request ≤ 1.10 × libcurl-c's
RUN_ERROR_MAX = 0.005
P99_DEVIATION_MAX = 0.02


def median(values: Sequence[float]) -> float:
    """The median of the values that are not NaN; NaN when there are none."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def ratios(mine: Sequence[Measurement], theirs: Sequence[Measurement],
           key: Callable[[Measurement], float]) -> list[float]:
    """``key(mine) / key(theirs)`` per round, for the rounds both have (and a positive,
    finite denominator); in the order of ``mine``."""
    by_round = {m.round: m for m in theirs}
    out = []
    for m in mine:
        other = by_round.get(m.round)
        if other is None:
            continue
        denominator = key(other)
        if denominator > 0 and math.isfinite(denominator):
            out.append(key(m) / denominator)
    return out


@dataclass(frozen=True)
class ClientFigures:
    """One client on one shape: medians over its rounds, failures summed."""

    client: str
    rounds: int
    req_per_s: float
    cpu_us_per_req: float
    failed: int


@dataclass(frozen=True)
class ShapeSummary:
    shape: str
    description: str
    clients: tuple[ClientFigures, ...]
    req_ratio: float  # rafale / libcurl-c req/s: median of per-round ratios
    cpu_ratio: float  # rafale / libcurl-c CPU µs/req: median of per-round ratios
    # pycurl-floor / libcurl-c CPU µs/req (what driving libcurl from Python costs at least),
    # and rafale / pycurl-floor (what rafale's engine adds to that); NaN when not measured
    floor_cpu_ratio: float = math.nan
    over_floor_cpu_ratio: float = math.nan

    def figures(self, client: str) -> ClientFigures | None:
        return next((c for c in self.clients if c.client == client), None)

    def req_met(self) -> bool | None:
        return None if math.isnan(self.req_ratio) else self.req_ratio >= REQ_RATIO_MIN

    def cpu_met(self) -> bool | None:
        return None if math.isnan(self.cpu_ratio) else self.cpu_ratio <= CPU_RATIO_MAX

    def met(self) -> bool | None:
        req, cpu = self.req_met(), self.cpu_met()
        return None if req is None or cpu is None else req and cpu

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ShapeSummary:
        clients = tuple(ClientFigures(**c) for c in data["clients"])
        return cls(data["shape"], data["description"], clients, float(data["req_ratio"]),
                   float(data["cpu_ratio"]),
                   float(data.get("floor_cpu_ratio", math.nan)),
                   float(data.get("over_floor_cpu_ratio", math.nan)))


def _figures(client: str, rounds: Sequence[Measurement]) -> ClientFigures:
    return ClientFigures(
        client=client,
        rounds=len(rounds),
        req_per_s=median([m.req_per_s for m in rounds]),
        cpu_us_per_req=median([m.cpu_us_per_req for m in rounds]),
        failed=sum(m.failed for m in rounds),
    )


def _cpu(m: Measurement) -> float:
    return m.cpu_us_per_req


def summarize_shapes(shapes: Sequence[Shape], results: Sequence[Measurement]) -> list[ShapeSummary]:
    """One summary per shape that has any measurement, clients in ``CLIENTS`` order (then
    any other client by name)."""
    out = []
    for shape in shapes:
        mine = [m for m in results if m.shape == shape.name]
        if not mine:
            continue
        present = {m.client for m in mine}
        order = [c for c in CLIENTS if c in present] + sorted(present - set(CLIENTS))
        by_client = {c: [m for m in mine if m.client == c] for c in order}
        subject, reference = by_client.get(SUBJECT, []), by_client.get(REFERENCE, [])
        floor = by_client.get(FLOOR, [])
        out.append(ShapeSummary(
            shape=shape.name,
            description=shape.describe(),
            clients=tuple(_figures(c, by_client[c]) for c in order),
            req_ratio=median(ratios(subject, reference, lambda m: m.req_per_s)),
            cpu_ratio=median(ratios(subject, reference, _cpu)),
            floor_cpu_ratio=median(ratios(floor, reference, _cpu)),
            over_floor_cpu_ratio=median(ratios(subject, floor, _cpu)),
        ))
    return out


def summarize_rates(rounds: Sequence[AccuracyRound],
                    reference: Sequence[Measurement] = ()) -> list[AccuracySummary]:
    """One accuracy summary per target rate, by increasing rate; with ``reference``
    (libcurl-c's open-model runs), its CPU per request sent at the same rate and rafale's
    ratio to it (median of the per-round ratios)."""
    out = []
    for rate in sorted({r.rate_per_s for r in rounds}):
        mine = [r for r in rounds if r.rate_per_s == rate]
        summary = summarize(mine)
        theirs = {m.round: cpu_us_per_sent(m.cpu_s, int(m.extra["sent"])) for m in reference
                  if m.extra.get("rate_per_s") == rate}
        if theirs:
            per_round = [cpu_us_per_sent(r.cpu_s, r.sent) / theirs[r.round] for r in mine
                         if r.round in theirs and theirs[r.round] > 0]
            summary = dataclasses.replace(summary,
                                          reference_cpu_us_per_req=median(list(theirs.values())),
                                          cpu_ratio=median(per_round))
        out.append(summary)
    return out
