"""A run as Prometheus metrics: counters, gauges and histograms from its merged windows.

The driver serves these (cluster/metrics.py) from the aggregate of every actor on every
host, so one scrape target covers the whole cluster. Names follow Prometheus conventions:
base units (seconds), ``_total`` for counters, the run's id and name as labels. Windows
count each dimension apart (status, version, address, error), so each is its own counter
family rather than one family with every label at once. A feed's tags count their own
outcomes (``rafale_requests_by_tag_total{tag,outcome,result}``) and latency
(``rafale_request_duration_by_tag_seconds{tag}``).

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

from rafale.actors.contract import (
    CONNECT,
    LATENCY_CORRECTED,
    LATENCY_RAW,
    SEND_LAG,
    TTFB,
    new_histogram,
)
from rafale.analysis import latency
from rafale.analysis.aggregate import Aggregate
from rafale.analysis.summary import tag_outcomes

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
    (CONNECT, "rafale_connect_seconds",
     "Time to open a new connection (TCP connect plus the TLS or QUIC handshake)."),
    (TTFB, "rafale_time_to_first_byte_seconds",
     "Time from the actual send to the response's first byte."),
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
    gauges: list[tuple[str, str, Any]] = [
        ("rafale_in_flight", "Requests open at the end of each actor's latest window.", in_flight),
    ]
    if target_rate_per_s is not None:
        gauges.append(("rafale_target_rate", "The schedule's rate now, req/s.",
                       target_rate_per_s))
    out = [*_counters(total, names, values), *_by_tag(total, names, values),
           *_histograms(total, names, values)]
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


def _counters(total: Aggregate, names: list[str], values: list[str]) -> list[Metric]:
    """The request counters: by outcome, the schedule's, late by cause, and one family per
    dimension of the windows (status, version, address, error)."""
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
    stall = c.get("late_stall", 0)
    other = c["late"] - stall - c["late_cap"] - c["late_connect"] - c["late_loop"]
    for cause, value in (("stall", stall), ("cap", c["late_cap"]),
                         ("connect", c["late_connect"]), ("loop", c["late_loop"]),
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
    return out


def _by_tag(total: Aggregate, names: list[str], values: list[str]) -> list[Metric]:
    """Feed tags: requests that ended, by tag, outcome (completed: a response, failed: none)
    and result (the status, or the error's kind:code, as ``rafale_responses_total`` and
    ``rafale_failures_total`` have them), and each tag's duration histogram (completed
    requests, from the intended send time). Empty families without a tagged feed."""
    requests = CounterMetricFamily(
        "rafale_requests_by_tag", "Feed requests that ended, by tag, outcome and result.",
        labels=[*names, "tag", "outcome", "result"])
    for tag, entry in tag_outcomes(total.maps.get("tag", {})).items():
        for outcome, results in (("completed", entry["status"]), ("failed", entry["errors"])):
            for result, count in results.items():
                requests.add_metric([*values, tag, outcome, result], count)
    duration = HistogramMetricFamily(
        "rafale_request_duration_by_tag_seconds",
        "Duration of a feed tag's completed requests from their intended send time.",
        labels=[*names, "tag"])
    for tag, hist in sorted(total.tag_hists.items()):
        pairs, sum_s = buckets(hist)
        duration.add_metric([*values, tag], pairs, sum_s)
    return [requests, duration]


def _histograms(total: Aggregate, names: list[str], values: list[str]) -> list[Metric]:
    out: list[Metric] = []
    for field, name, doc in _HISTOGRAMS:
        histogram = HistogramMetricFamily(name, doc, labels=names)
        pairs, sum_s = buckets(total.hists[field])
        histogram.add_metric(values, pairs, sum_s)
        out.append(histogram)
    return out
