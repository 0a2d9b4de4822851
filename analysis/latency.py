"""Latency numbers from HdrHistograms: merge encoded histograms, percentiles, summaries.

Percentiles always come from merged histograms (windows merge losslessly), never from
averaging per-window percentiles. Values are in µs, as recorded. hdrh computes percentiles
and the mean with Python loops over ~21k buckets (~0.4 ms and ~100 ms); here they are
computed with numpy over the same buckets, with tables made from hdrh's own functions, so
the results are equal to hdrh's (a test checks).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from rafale.actors.contract import VECTOR_OK, add_histogram, counts_view, decode, new_histogram

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)

Encoded = str | bytes


def merge_histograms(items: Iterable[Encoded | HdrHistogram | None]) -> HdrHistogram:
    """Add encoded (str or bytes) or decoded histograms into one; empty input gives an empty one."""
    merged = new_histogram()
    for item in items:
        if item is None or (isinstance(item, float) and math.isnan(item)):
            continue
        hist = item if isinstance(item, HdrHistogram) else decode(item)
        if hist is not None:
            add_histogram(merged, hist)
    return merged


def without(whole: HdrHistogram, part: HdrHistogram) -> HdrHistogram:
    """A new histogram: ``whole`` less ``part`` (every value of ``part`` was recorded in
    ``whole``: e.g. the run's latency without its stalled seconds')."""
    out = new_histogram()
    if not (_vector(whole) and _vector(part)):
        for item in whole.get_recorded_iterator():
            value = int(item.value_iterated_to)
            left = int(item.count_at_value_iterated_to) - int(part.get_count_at_value(value))
            if left > 0:
                out.record_value(value, left)
        return out
    counts = counts_view(whole).astype(np.int64) - counts_view(part).astype(np.int64)
    if (counts < 0).any():
        raise ValueError("the part holds values the whole does not: not a part of it")
    found = np.flatnonzero(counts)
    if found.size:
        lowest, _, _ = _tables()
        counts_view(out)[:] = counts.astype(np.uint64)
        out.total_count = int(counts.sum())
        out.min_value = int(lowest[found[0]])
        out.max_value = int(lowest[found[-1]])
    return out


def percentile_label(pct: float) -> str:
    """50 -> 'p50', 99.9 -> 'p99.9'."""
    return f"p{pct:g}"


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket of the contract's histogram: lowest, highest and median equivalent value."""
    hist = new_histogram()
    values = [hist.get_value_from_index(i) for i in range(hist.counts_len)]
    lowest = np.array([hist.get_lowest_equivalent_value(v) for v in values], dtype=np.int64)
    highest = np.array([hist.get_highest_equivalent_value(v) for v in values], dtype=np.int64)
    median = np.array([hist._hdr_median_equiv_value(v) for v in values], dtype=np.int64)
    return lowest, highest, median


def bucket_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bucket index of the contract's histogram: its lowest, highest and median
    equivalent value (µs), as hdrh computes them."""
    return _tables()


def _vector(hist: HdrHistogram) -> bool:
    """numpy may read this histogram's buckets with the contract's tables."""
    return VECTOR_OK and hist.counts_len == len(_tables()[0])


def percentiles(hist: HdrHistogram, pcts: Sequence[float] = DEFAULT_PERCENTILES
                ) -> dict[float, int | None]:
    """Latency at each percentile of ``hist`` (as hdrh's get_value_at_percentile); None for
    every one when it is empty."""
    total = int(hist.get_total_count())
    if total == 0:
        return {float(p): None for p in pcts}
    if not _vector(hist):
        return {float(p): int(hist.get_value_at_percentile(p)) for p in pcts}
    lowest, highest, _ = _tables()
    cumulative = np.cumsum(counts_view(hist), dtype=np.int64)
    out: dict[float, int | None] = {}
    for pct in pcts:
        target = max(int((min(pct, 100.0) * total / 100) + 0.5), 1)
        index = min(int(np.searchsorted(cumulative, target)), len(cumulative) - 1)
        out[float(pct)] = int(highest[index] if pct else lowest[index])
    return out


def counts_at_or_below(hist: HdrHistogram, edges_us: Sequence[int]) -> list[int]:
    """For each edge, the count of recorded values at or below it: exact when the edge is
    the highest equivalent value of a bucket (each bucket counts wholly on one side)."""
    if not _vector(hist):
        counts = [0] * len(edges_us)
        for item in hist.get_recorded_iterator():
            for i, edge in enumerate(edges_us):
                if int(item.value_iterated_to) <= edge:
                    counts[i] += int(item.count_added_in_this_iter_step)
        return counts
    _, highest, _ = _tables()
    cumulative = np.cumsum(counts_view(hist), dtype=np.int64)
    last = np.searchsorted(highest, np.asarray(edges_us, dtype=np.int64), side="right") - 1
    return [int(cumulative[i]) if i >= 0 else 0 for i in last]


def mean(hist: HdrHistogram) -> float | None:
    """The mean latency (as hdrh's get_mean_value), None when empty."""
    total = int(hist.get_total_count())
    if total == 0:
        return None
    if not _vector(hist):
        return float(hist.get_mean_value())
    _, _, median = _tables()
    weighted = int(np.dot(counts_view(hist).astype(np.int64), median))
    return float(weighted) / total


def latency_summary(hist: HdrHistogram, pcts: Sequence[float] = DEFAULT_PERCENTILES
                    ) -> dict[str, Any]:
    """{'count', 'mean', 'p50', ..., 'max'} in µs (None when there are no samples)."""
    count = int(hist.get_total_count())
    out: dict[str, Any] = {"count": count}
    out["mean"] = mean(hist)
    for pct, value in percentiles(hist, pcts).items():
        out[percentile_label(pct)] = value
    out["max"] = int(hist.get_max_value()) if count else None
    return out
