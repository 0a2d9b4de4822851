"""One side of a comparison as per-second arrays: the runs' counters, their per-key counts
and their latency histograms, one row per second of each run.

A histogram is kept as the counts of the buckets any second of the side used (a second
row per run second), so that a resample is a weighted sum of rows (``weights @ counts``)
and its percentiles are exact merges, as :func:`rafale.analysis.latency.percentiles` gives
them. The seconds after the schedule's end (the requests in flight finishing) are folded
into its last second: every request counts, and every row is a whole second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rafale.actors.contract import (
    LATENCY_CORRECTED,
    LATENCY_RAW,
    REQUESTS,
    SEND_LAG,
    TAG_LATENCY,
    TAG_SEPARATOR,
    counts_view,
    decode,
)
from rafale.analysis.result import Result

# The histograms compared (a tag's, from the intended send time, is "tag=NAME").
HISTOGRAMS: tuple[str, ...] = (LATENCY_CORRECTED, LATENCY_RAW, SEND_LAG)
# The dimensions whose per-key counts are compared as shares of completed requests.
SHARE_DIMENSIONS: tuple[str, ...] = ("address", "version")
TAG_PREFIX = "tag="


@dataclass(frozen=True)
class Hist:
    """Per-second counts of the buckets used: ``counts[row, j]`` is bucket ``buckets[j]``."""

    buckets: np.ndarray  # (K,) int64 bucket indexes of the contract's histogram
    counts: np.ndarray  # (S, K) float64

    def __repr__(self) -> str:
        return f"Hist(seconds={self.counts.shape[0]}, buckets={self.buckets.shape[0]})"


@dataclass(frozen=True)
class Series:
    """The seconds of one side (one run or several, stacked): counters, keys, histograms.

    ``runs`` holds each run's number of rows, in order; ``metas`` each run's meta.json.
    """

    labels: tuple[str, ...]
    runs: tuple[int, ...]
    counters: dict[str, np.ndarray]  # REQUESTS counter -> (S,)
    keys: dict[str, pd.DataFrame]  # dimension -> (S rows, one column per key)
    hists: dict[str, Hist]
    metas: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def seconds(self) -> int:
        return sum(self.runs)

    def __repr__(self) -> str:
        return (f"Series(labels={self.labels}, runs={self.runs}, "
                f"hists={sorted(self.hists)})")


def _rows(seconds: pd.Series, duration_s: float | None) -> tuple[np.ndarray, int]:
    """Each window's row (its second, folded into the schedule's last whole second) and
    the number of rows."""
    values = seconds.to_numpy(dtype=np.int64)
    last = int(values.max()) if values.size else 0
    if duration_s is not None and duration_s >= 1:
        last = min(last, math.ceil(float(duration_s)) - 1)
    first = 0 if not values.size else min(0, int(values.min()))
    return np.clip(values, first, last) - first, last - first + 1


def _hist(encoded: Sequence[Any], rows: np.ndarray, n_rows: int) -> Hist:
    """Decode every window's histogram once and add it into its row."""
    parts_rows, parts_buckets, parts_counts = [], [], []
    for row, text in zip(rows, encoded, strict=True):
        hist = decode(text) if isinstance(text, str | bytes) else None
        if hist is None:
            continue
        view = counts_view(hist)
        used = np.flatnonzero(view)
        parts_rows.append(np.full(used.shape, row, dtype=np.int64))
        parts_buckets.append(used)
        parts_counts.append(view[used].astype(np.float64))
    if not parts_buckets:
        return Hist(np.zeros(0, dtype=np.int64), np.zeros((n_rows, 0)))
    buckets = np.concatenate(parts_buckets)
    used_buckets, column = np.unique(buckets, return_inverse=True)
    counts = np.zeros((n_rows, used_buckets.shape[0]))
    np.add.at(counts, (np.concatenate(parts_rows), column), np.concatenate(parts_counts))
    return Hist(used_buckets.astype(np.int64), counts)


def _tag_hists(windows: pd.DataFrame, rows: np.ndarray, n_rows: int) -> dict[str, Hist]:
    if TAG_LATENCY not in windows:
        return {}
    by_tag: dict[str, tuple[list[int], list[Any]]] = {}
    for row, entries in zip(rows, windows[TAG_LATENCY], strict=True):
        for tag, encoded in dict(entries if entries is not None else ()).items():
            rows_of_tag, texts = by_tag.setdefault(str(tag), ([], []))
            rows_of_tag.append(int(row))
            texts.append(encoded)
    return {f"{TAG_PREFIX}{tag}": _hist(texts, np.asarray(r, dtype=np.int64), n_rows)
            for tag, (r, texts) in sorted(by_tag.items())}


def _keys(counts: pd.DataFrame, second_rows: dict[int, int], n_rows: int
          ) -> dict[str, pd.DataFrame]:
    """dimension -> per-row counts of each key (share dimensions and the tags' outcomes)."""
    out: dict[str, pd.DataFrame] = {}
    for dimension in (*SHARE_DIMENSIONS, "tag"):
        part = counts[counts["dimension"] == dimension]
        rows = part["second"].map(second_rows)
        wide = (part.assign(row=rows).pivot_table(index="row", columns="key", values="count",
                                                 aggfunc="sum", fill_value=0)
                if not part.empty else pd.DataFrame())
        out[dimension] = wide.reindex(range(n_rows), fill_value=0).astype(np.float64)
    return out


def series_of(result: Result, label: str | None = None) -> Series:
    """One run's seconds (see the module docstring)."""
    windows = result.windows
    meta = dict(result.meta or {})
    duration_s = (meta.get("schedule") or {}).get("duration_s")
    rows, n_rows = _rows(windows["second"], duration_s)
    first = 0 if windows.empty else min(0, int(windows["second"].min()))
    counts = result.counts
    second_rows = {int(s): int(np.clip(s - first, 0, n_rows - 1))
                   for s in pd.unique(pd.concat([windows["second"], counts["second"]]))}
    counters = {name: np.bincount(rows, weights=windows[name].to_numpy(np.float64),
                                  minlength=n_rows) for name in REQUESTS}
    hists = {name: _hist(list(windows[name]), rows, n_rows) for name in HISTOGRAMS}
    hists.update(_tag_hists(windows, rows, n_rows))
    name = label or str(result.path or meta.get("label") or meta.get("run_id") or "run")
    return Series((name,), (n_rows,), counters, _keys(counts, second_rows, n_rows), hists,
                  (meta,))


def stack(parts: Sequence[Series]) -> Series:
    """Several runs as one side: rows stacked in order, keys and buckets unioned."""
    if len(parts) == 1:
        return parts[0]
    counters = {name: np.concatenate([p.counters[name] for p in parts]) for name in REQUESTS}
    keys = {dim: pd.concat([p.keys[dim] for p in parts], ignore_index=True).fillna(0.0)
            for dim in parts[0].keys}
    hists: dict[str, Hist] = {}
    for name in sorted({n for p in parts for n in p.hists}):
        if not all(name in p.hists for p in parts):
            continue  # a tag every run of the side has, or none
        buckets = np.unique(np.concatenate([p.hists[name].buckets for p in parts]))
        blocks = []
        for part in parts:
            hist = part.hists[name]
            dense = np.zeros((hist.counts.shape[0], buckets.shape[0]))
            dense[:, np.searchsorted(buckets, hist.buckets)] = hist.counts
            blocks.append(dense)
        hists[name] = Hist(buckets, np.vstack(blocks))
    return Series(tuple(label for p in parts for label in p.labels),
                  tuple(n for p in parts for n in p.runs), counters, keys, hists,
                  tuple(m for p in parts for m in p.metas))


def tag_outcomes(keys: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """tag -> (finished, failed) per row, from the "tag|outcome" keys (an outcome that is
    not a status code is a failure)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key in keys.columns:
        tag, _, outcome = str(key).rpartition(TAG_SEPARATOR)
        finished, failed = out.setdefault(tag, (np.zeros(len(keys)), np.zeros(len(keys))))
        finished += keys[key].to_numpy()
        if not outcome.isdigit():
            failed += keys[key].to_numpy()
    return out
