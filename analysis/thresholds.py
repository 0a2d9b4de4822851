"""Thresholds: pass/fail verdicts over the merged results of every actor and host.

An expression is ``METRIC[SCOPE][WINDOW] OP VALUE[UNIT][:abort][:abort-after=DURATION]``:

- METRIC: ``p50`` … ``p99.99``, ``max``, ``mean`` of the latency from the intended send time
  (``latency.p99`` is the same; ``latency_raw.p99`` from the actual send; ``send_lag.p99``;
  ``connect.p99``, new connections' connect time; ``ttfb.p99``, time to first byte);
  ``error_rate`` (finished requests without a response), ``status_5xx_rate`` (any class
  1xx-5xx, of finished requests), ``late_rate`` (late / sent), ``rate`` (sent / due: the
  target reached), ``dropped`` (a count), ``share`` (of completed requests; with a scope);
  the sender's health: ``sender_stall_s`` (time lost in stalled seconds, summed over
  actors: ``sender_stall_s<1s``) and ``runq_wait_share`` (the sending threads' run-queue
  wait over their time: ``runq_wait_share<5%``);
- SCOPE (optional): ``[tag=NAME]`` (a feed's tag: latency, error and status rates, share),
  ``[address=IP]`` or ``[version=2]`` (``share`` only: what the windows count per key);
- WINDOW (optional): ``[10s]`` — every rolling window of that many seconds must pass, not
  only the whole run;
- OP: ``<``, ``<=``, ``>``, ``>=``; UNIT: ``us``, ``ms``, ``s`` (latencies), ``%`` (rates).

e.g. ``p99<250ms``, ``error_rate<1%``, ``p99[tag=checkout][10s]<400ms``, ``rate>=99%``,
``share[address=127.0.0.3]>=40%``, ``p99<250ms:abort:abort-after=5s``. Evaluated on merged
HdrHistograms and summed counters (never averaged percentiles), so a verdict over several
hosts is exact. ``cluster/threshold_syntax.py`` parses the expressions (a bad one raises
ValueError with the position of the error); this module evaluates them.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    CONNECT,
    DIMENSIONS,
    LATENCY_CORRECTED,
    LATENCY_RAW,
    SEND_LAG,
    TAG_SEPARATOR,
    TTFB,
)
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.latency import mean, percentiles

__all__ = ["DURATIONS", "HISTS", "RATES", "SCOPES", "STAT", "STATUS_RATE", "Threshold",
           "ThresholdWatch", "evaluate"]

# The metrics (the parser in cluster/threshold_syntax.py reads expressions into Thresholds).
HISTS = {"latency": LATENCY_CORRECTED, "latency_raw": LATENCY_RAW, "send_lag": SEND_LAG,
         "connect": CONNECT, "ttfb": TTFB}
RATES = ("error_rate", "late_rate", "rate", "share", "runq_wait_share")
DURATIONS = ("sender_stall_s",)  # a time over the run (µs inside, like latencies)
# The dimensions a threshold may be scoped to (the windows count responses per key).
SCOPES = tuple(d for d in DIMENSIONS if d not in ("status", "error"))
STAT = re.compile(r"p(\d{1,2}(?:\.\d{1,3})?)|max|mean")
STATUS_RATE = re.compile(r"status_([1-5])xx_rate")
_OPS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold. ``limit`` is in µs for latencies and durations, a fraction for
    rates."""

    expression: str
    metric: str  # "latency.p99", "error_rate", "status_5xx_rate", "rate", ...
    op: str
    limit: float
    scope: tuple[str, str] | None = None  # ("tag", "checkout")
    window_s: int | None = None
    abort: bool = False
    abort_after_s: float = 0.0

    def __str__(self) -> str:
        return self.expression

    def passes(self, value: float | None) -> bool:
        """No value (no samples in scope) passes: there is nothing to fail."""
        return value is None or _OPS[self.op](float(value), self.limit)

    def value(self, agg: Aggregate) -> float | None:
        """The metric over ``agg`` (µs, a fraction or a count); None without samples."""
        kind, _, stat = self.metric.partition(".")
        if stat:
            return _latency(self._hist(agg, kind), stat)
        counters = agg.counters
        if kind == "dropped":
            return float(counters["dropped"])
        if kind == "sender_stall_s":
            return float(counters["stall_us"])
        if kind == "runq_wait_share":
            return counters["runq_wait_us"] / (agg.windows * 1e6) if agg.windows else None
        if kind == "rate":
            due = counters["intended"]
            return counters["sent"] / due if due else None
        if kind == "late_rate":
            sent = counters["sent"]
            return counters["late"] / sent if sent else None
        if kind == "share":
            assert self.scope is not None
            return _share(agg, *self.scope)
        finished, failed, by_status = _finished(agg, self.scope)
        if not finished:
            return None
        if kind == "error_rate":
            return failed / finished
        status_class = STATUS_RATE.fullmatch(kind)
        assert status_class is not None
        digit = status_class.group(1)
        return sum(n for code, n in by_status.items() if code.startswith(digit)) / finished

    def _hist(self, agg: Aggregate, kind: str) -> HdrHistogram | None:
        if self.scope is not None:
            return agg.tag_hists.get(self.scope[1])
        return agg.hists[HISTS[kind]]

    def result(self, value: float | None) -> dict[str, Any]:
        return {"threshold": self.expression, "metric": self.metric, "op": self.op,
                "limit": self.limit, "value": value, "passed": self.passes(value)}


def _latency(hist: HdrHistogram | None, stat: str) -> float | None:
    if hist is None or not hist.get_total_count():
        return None
    if stat == "max":
        return float(hist.get_max_value())
    if stat == "mean":
        found = mean(hist)
        return None if found is None else float(found)
    pct = float(stat[1:])
    found_pct = percentiles(hist, (pct,))[pct]
    return None if found_pct is None else float(found_pct)


def _finished(agg: Aggregate, scope: tuple[str, str] | None
              ) -> tuple[int, int, dict[str, int]]:
    """(finished requests, failed ones, completed by status) overall or for one tag."""
    if scope is None:
        completed, failed = int(agg.counters["completed"]), int(agg.counters["failed"])
        return completed + failed, failed, dict(agg.maps["status"])
    by_status: dict[str, int] = {}
    failed = 0
    for key, count in agg.maps["tag"].items():
        tag, _, outcome = key.rpartition(TAG_SEPARATOR)
        if tag != scope[1]:
            continue
        if outcome.isdigit():
            by_status[outcome] = by_status.get(outcome, 0) + count
        else:
            failed += count
    return sum(by_status.values()) + failed, failed, by_status


def _share(agg: Aggregate, dimension: str, key: str) -> float | None:
    if dimension == "tag":
        counts: dict[str, int] = {}
        for name, count in agg.maps["tag"].items():
            tag, _, outcome = name.rpartition(TAG_SEPARATOR)
            if outcome.isdigit():
                counts[tag] = counts.get(tag, 0) + count
    else:
        counts = agg.maps[dimension]
    total = sum(counts.values())
    return counts.get(key, 0) / total if total else None


# ----------------------------------------------------------------------------- evaluating


def evaluate(thresholds: Sequence[Threshold], total: Aggregate,
             failed_windows: dict[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """Each threshold's verdict: over the whole run, and (windowed ones) over every rolling
    window seen (``failed_windows``: threshold -> start seconds of failing windows)."""
    results = []
    for threshold in thresholds:
        result = threshold.result(threshold.value(total))
        if threshold.window_s is not None:
            failing = (failed_windows or {}).get(threshold.expression, [])
            result["window_s"] = threshold.window_s
            result["failed_windows"] = len(failing)
            result["first_failed_window_s"] = failing[0] if failing else None
            result["passed"] = not failing and result["passed"]
        results.append(result)
    return results


@dataclass
class ThresholdWatch:
    """Live evaluation, one complete second at a time (from the driver's window log):
    rolling windows for windowed thresholds, and the first failure of each threshold."""

    thresholds: tuple[Threshold, ...]
    seconds: deque[tuple[int, Aggregate]] = field(default_factory=deque)
    failed_windows: dict[str, list[int]] = field(default_factory=dict)
    first_failed_s: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._longest = max((t.window_s or 0 for t in self.thresholds), default=0)

    def add_second(self, second: int, agg: Aggregate) -> None:
        """A second every actor has reported (its aggregate is not kept beyond the longest
        window)."""
        if not self._longest:
            return
        self.seconds.append((second, agg))
        while self.seconds and self.seconds[0][0] <= second - self._longest:
            self.seconds.popleft()
        for threshold in self.thresholds:
            size = threshold.window_s
            if size is None:
                continue
            inside = [a for s, a in self.seconds if s > second - size]
            if len(inside) < size:
                continue
            merged = Aggregate()
            for part in inside:
                merged.add(part)
            if not threshold.passes(threshold.value(merged)):
                self.failed_windows.setdefault(threshold.expression, []).append(
                    second - size + 1)
                self.first_failed_s.setdefault(threshold.expression, float(second + 1))

    def check_total(self, total: Aggregate, elapsed_s: float) -> None:
        """Unwindowed thresholds over the run so far (for aborting early)."""
        for threshold in self.thresholds:
            if threshold.window_s is None and not threshold.passes(threshold.value(total)):
                self.first_failed_s.setdefault(threshold.expression, elapsed_s)

    def abort_reason(self, elapsed_s: float) -> str | None:
        """Why the run should stop now (an :abort threshold failed after its grace)."""
        for threshold in self.thresholds:
            failed_at = self.first_failed_s.get(threshold.expression)
            if (threshold.abort and failed_at is not None
                    and elapsed_s >= threshold.abort_after_s):
                return f"threshold {threshold.expression} failed at {failed_at:.0f} s"
        return None

