"""A run as Prometheus metrics: counters, gauges and histograms from its merged windows.

The driver serves these (cluster/metrics.py) from the aggregate of every actor on every
host, so one scrape target covers the whole cluster. Names follow Prometheus conventions:
base units (seconds), ``_total`` for counters, the run's id and name as labels. Windows
count each dimension apart (status, version, address, error), so each is its own counter
family rather than one family with every label at once.

Histogram buckets come from the HdrHistograms exactly: each edge is the highest value of
an HdrHistogram bucket (``highest_equivalent_value`` of a round number: 5 ms is 5.003 ms
at 3 significant digits), so the count at an edge is the exact count of recorded values
at or below it, not an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from rafale.actors.contract import LATENCY_CORRECTED, LATENCY_RAW, SEND_LAG, new_histogram
from rafale.analysis import latency
from rafale.analysis.aggregate import Aggregate

__all__ = ["BUCKETS_US", "buckets", "families"]

# Nominal edges, µs: 0.5 ms .. 60 s; each is moved up to its HdrHistogram bucket's top.
_NOMINAL_US = (500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
               1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000)
BUCKETS_US: tuple[int, ...] = tuple(
    int(new_histogram().get_highest_equivalent_value(v)) for v in _NOMINAL_US)

_HISTOGRAMS = (
    (LATENCY_CORRECTED, "rafale_request_duration_seconds",
     "Request duration from its intended send time (coordinated omission corrected)."),
    (LATENCY_RAW, "rafale_request_duration_raw_seconds",
     "Request duration from its actual send time."),
    (SEND_LAG, "rafale_send_lag_seconds", "Actual send time minus intended send time."),
)


def buckets(hist: HdrHistogram, edges_us: Sequence[int] = BUCKETS_US
            ) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs in seconds, +Inf last, and the sum of values (s)."""
    total = int(hist.get_total_count())
    sum_us = (latency.mean(hist) or 0.0) * total
    cumulative = [(f"{edge / 1e6:g}", float(count)) for edge, count in
                  zip(edges_us, latency.counts_at_or_below(hist, edges_us), strict=True)]
    cumulative.append(("+Inf", float(total)))
    return cumulative, sum_us / 1e6


def families(total: Aggregate, labels: Mapping[str, str], *, target_rate_per_s: float | None,
             in_flight: int, actors: Mapping[str, int], info: Mapping[str, str]
             ) -> list[Metric]:
    """Every metric of the run so far from its merged aggregate (``labels``: run_id, run)."""
    names, values = list(labels), list(labels.values())
    c = total.counters
    out: list[Metric] = []

    def counter(name: str, doc: str, value: float) -> None:
        single = CounterMetricFamily(name, doc, labels=names)
        single.add_metric(values, value)
        out.append(single)

    requests = CounterMetricFamily("rafale_requests", "Requests that ended, by outcome.",
                                   labels=[*names, "outcome"])
    requests.add_metric([*values, "completed"], c["completed"])
    requests.add_metric([*values, "failed"], c["failed"])
    out.append(requests)
    counter("rafale_intended", "Requests the schedule made due.", c["intended"])
    counter("rafale_sent", "Requests sent.", c["sent"])
    counter("rafale_dropped", "Requests due and never sent (the schedule ended first).",
            c["dropped"])
    counter("rafale_retries", "Feed rows sent again.", c["retries"])
    late = CounterMetricFamily("rafale_late", "Requests sent later than late_after, by cause.",
                               labels=[*names, "cause"])
    other = c["late"] - c["late_cap"] - c["late_loop"]
    for cause, value in (("cap", c["late_cap"]), ("loop", c["late_loop"]),
                         ("other", max(other, 0))):
        late.add_metric([*values, cause], value)
    out.append(late)
    for dimension, name, doc in (
            ("status", "rafale_responses", "Answered requests, by HTTP status."),
            ("version", "rafale_responses_by_version", "Answered requests, by HTTP version."),
            ("address", "rafale_responses_by_address", "Answered requests, by server address."),
            ("error", "rafale_failures", "Failed requests, by kind and curl code.")):
        family = CounterMetricFamily(name, doc, labels=[*names, dimension])
        for key, count in sorted(total.maps.get(dimension, {}).items()):
            family.add_metric([*values, str(key)], count)
        out.append(family)
    for field, name, doc in _HISTOGRAMS:
        histogram = HistogramMetricFamily(name, doc, labels=names)
        pairs, sum_s = buckets(total.hists[field])
        histogram.add_metric(values, pairs, sum_s)
        out.append(histogram)
    gauges: list[tuple[str, str, Any]] = [
        ("rafale_in_flight", "Requests open at the end of each actor's latest window.", in_flight),
    ]
    if target_rate_per_s is not None:
        gauges.append(("rafale_target_rate", "The schedule's rate now, req/s.",
                       target_rate_per_s))
    for name, doc, value in gauges:
        gauge = GaugeMetricFamily(name, doc, labels=names)
        gauge.add_metric(values, float(value))
        out.append(gauge)
    state = GaugeMetricFamily("rafale_actors", "Sender actors, by state.",
                              labels=[*names, "state"])
    for key, count in sorted(actors.items()):
        state.add_metric([*values, key], float(count))
    out.append(state)
    run_info = GaugeMetricFamily("rafale_run_info", "The run's settings (value 1).",
                                 labels=[*names, *info])
    run_info.add_metric([*values, *info.values()], 1.0)
    out.append(run_info)
    return out
