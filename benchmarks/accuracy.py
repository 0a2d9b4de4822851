"""Rate accuracy: does rafale send on time at a fixed target rate?

One round at one rate runs ``Schedule.ramp_then_constant(rate, ramp_s, ramp_s + hold_s)``
(2 s ramp, then 10 s constant by default) over h2 TLS, 4 connections × 100 streams, and
looks at the windows of the constant part only (seconds ``ramp_s .. ramp_s + hold_s - 1``):

- run error: ``|Σ sent − Σ intended| / Σ intended`` over the constant part;
- per-second deviation: ``|sent − intended| / intended`` of each window; its mean,
  worst and p99 (pooled over the rounds in the summary);
- schedule error: ``|Σ sent − ideal| / ideal`` with ``ideal`` the schedule's own count
  over the constant part (independent of the engine's ``intended`` bookkeeping).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from benchmarks.shapes import Shape
from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.contract import SEND_LAG, encode
from rafale.actors.engine import run_in_process
from rafale.actors.pacing import Schedule
from rafale.analysis.latency import merge_histograms, percentiles
from rafale.cluster.target import Target

__all__ = ["RATE_SHAPE", "AccuracyRound", "AccuracySummary", "accuracy_config", "measure",
           "cpu_us_per_sent", "run_accuracy", "summarize"]

CONNECTIONS = 4
STREAMS = 100
# The same shape for libcurl-c's open-model runs (benchmarks.curl_ref.run_curl_ref_rate).
RATE_SHAPE = Shape("rate-h2-4x100", "2", True, CONNECTIONS, STREAMS)


@dataclass(frozen=True)
class AccuracyRound:
    rate_per_s: float
    round: int
    seconds: int
    intended: int
    sent: int
    ideal: int
    completed: int
    failed: int
    late: int
    cpu_s: float
    deviations: tuple[float, ...]  # per second, |sent - intended| / intended
    send_lag: str = ""  # the hold's send-lag histogram (contract text form)

    @property
    def run_error(self) -> float:
        return abs(self.sent - self.intended) / self.intended if self.intended else float("nan")

    @property
    def schedule_error(self) -> float:
        return abs(self.sent - self.ideal) / self.ideal if self.ideal else float("nan")

    @property
    def achieved_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def to_data(self) -> dict[str, Any]:
        return {**asdict(self), "run_error": self.run_error,
                "schedule_error": self.schedule_error, "achieved_per_s": self.achieved_per_s}


@dataclass(frozen=True)
class AccuracySummary:
    """Medians over rounds; worst and p99 per-second deviation pooled over all rounds."""

    rate_per_s: float
    rounds: int
    achieved_per_s: float
    run_error: float
    schedule_error: float
    mean_deviation: float
    worst_deviation: float
    p99_deviation: float
    failed: int
    late: int
    cpu_us_per_req: float
    lag_p50_us: int | None = None
    lag_p99_us: int | None = None
    lag_max_us: int | None = None
    sent: int = 0  # over all rounds' constant parts
    # libcurl-c's open model at the same rate and shape (benchmarks.curl_ref): its CPU per
    # request sent (median over rounds), and rafale's / its, the median of per-round ratios
    reference_cpu_us_per_req: float = math.nan
    cpu_ratio: float = math.nan

    @property
    def late_share(self) -> float:
        return self.late / self.sent if self.sent else 0.0

    def met(self, run_limit: float = 0.005, p99_limit: float = 0.02) -> bool:
        return self.run_error <= run_limit and self.p99_deviation <= p99_limit


def accuracy_config(target: Target, rate_per_s: float, ramp_s: int, hold_s: int) -> EngineConfig:
    port = target.https_port
    return EngineConfig(
        urls=(target.url("/"),),
        http="2",
        resolve=(ResolveEntry(target.host, port, (target.addresses[0],)),),
        cacert=str(target.ca_file),
        schedule=Schedule.ramp_then_constant(rate_per_s, ramp_s, ramp_s + hold_s),
        duration_s=float(ramp_s + hold_s),
        max_in_flight=CONNECTIONS * STREAMS,
        max_connections=CONNECTIONS,
        streams_per_connection=STREAMS,
    )


def measure(windows: Sequence[dict[str, Any]], schedule: Schedule, rate_per_s: float,
            round_: int, ramp_s: int, hold_s: int) -> AccuracyRound:
    hold = [w for w in windows if ramp_s <= w["second"] < ramp_s + hold_s]
    ideal = schedule.count_due(float(ramp_s + hold_s)) - schedule.count_due(float(ramp_s))
    return AccuracyRound(
        rate_per_s=rate_per_s,
        round=round_,
        seconds=len(hold),
        intended=sum(w["intended"] for w in hold),
        sent=sum(w["sent"] for w in hold),
        ideal=ideal,
        completed=sum(w["completed"] for w in hold),
        failed=sum(w["failed"] for w in hold),
        late=sum(w["late"] for w in hold),
        cpu_s=sum(w["cpu_s"] for w in hold),
        deviations=tuple(
            abs(w["sent"] - w["intended"]) / w["intended"] if w["intended"] else 1.0
            for w in hold
        ),
        send_lag=encode(merge_histograms(w[SEND_LAG] for w in hold)),
    )


def run_accuracy(target: Target, rate_per_s: float, round_: int = 0, *, ramp_s: int = 2,
                 hold_s: int = 10) -> AccuracyRound:
    config = accuracy_config(target, rate_per_s, ramp_s, hold_s)
    assert config.schedule is not None
    windows = run_in_process(config)
    return measure(windows, config.schedule, rate_per_s, round_, ramp_s, hold_s)


def cpu_us_per_sent(cpu_s: float, sent: int) -> float:
    """CPU µs per request sent; NaN when none was."""
    return cpu_s * 1e6 / sent if sent else math.nan


def summarize(rounds: Sequence[AccuracyRound]) -> AccuracySummary:
    if not rounds:
        raise ValueError("no accuracy rounds to summarize")
    pooled = [d for r in rounds for d in r.deviations] or [float("nan")]
    sent = sum(r.sent for r in rounds)
    lag = merge_histograms(r.send_lag for r in rounds)
    lag_p50, lag_p99 = percentiles(lag, (50, 99)).values()
    return AccuracySummary(
        rate_per_s=rounds[0].rate_per_s,
        rounds=len(rounds),
        achieved_per_s=statistics.median(r.achieved_per_s for r in rounds),
        run_error=statistics.median(r.run_error for r in rounds),
        schedule_error=statistics.median(r.schedule_error for r in rounds),
        mean_deviation=statistics.median(float(np.mean(r.deviations or [1.0])) for r in rounds),
        worst_deviation=max(pooled),
        p99_deviation=float(np.percentile(pooled, 99)),
        failed=sum(r.failed for r in rounds),
        late=sum(r.late for r in rounds),
        cpu_us_per_req=cpu_us_per_sent(sum(r.cpu_s for r in rounds), sent),
        lag_p50_us=lag_p50, lag_p99_us=lag_p99,
        lag_max_us=int(lag.get_max_value()) if lag.total_count else None, sent=sent,
    )
