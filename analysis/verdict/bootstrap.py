"""Resampling weights and the statistics of weighted histograms, all with numpy.

A resample of a side is a weight per second row (how many times the resample took that
second): ``weights`` has shape (resamples, rows). The moving-block bootstrap takes blocks of
``block_s`` consecutive seconds at random starts until it has as many seconds as the run,
so the correlation of neighbouring seconds is kept; blocks wrap around the run's end (the
circular variant), so that the first and last seconds are drawn as often as the others.
The hierarchical bootstrap first draws runs with replacement, then blocks inside each drawn
run, so the interval also covers how much runs of the same spec differ. A statistic of a
resample is computed on its merged histogram, so percentiles stay exact merges of whole
seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from rafale.analysis.latency import bucket_tables


def block_length(seconds: int) -> int:
    """The block length for a run of ``seconds``: the cube root rule (n^(1/3)), at least 1."""
    return max(1, round(seconds ** (1 / 3)))


def block_weights(rng: np.random.Generator, seconds: int, resamples: int,
                  block_s: int | None = None) -> np.ndarray:
    """(resamples, seconds) moving-block bootstrap weights; each row sums to ``seconds``."""
    if seconds <= 0:
        return np.zeros((resamples, 0))
    size = min(block_s or block_length(seconds), seconds)
    blocks = math.ceil(seconds / size)
    starts = rng.integers(0, seconds, size=(resamples, blocks))
    taken = (starts[:, :, None] + np.arange(size)).reshape(resamples, -1)[:, :seconds]
    taken %= seconds  # circular: a block may wrap, so every second is equally likely
    flat = taken + (np.arange(resamples) * seconds)[:, None]
    counts = np.bincount(flat.ravel(), minlength=resamples * seconds)
    return counts.reshape(resamples, seconds).astype(np.float64)


def blocks(runs: Sequence[int]) -> int:
    """How many blocks a side's resample is made of (its independent pieces)."""
    return sum(math.ceil(n / block_length(n)) for n in runs if n > 0)


def widening(pieces: int, confidence: float) -> float:
    """How much wider than the bootstrap's a small sample's interval must be: Student's t
    quantile with ``pieces - 1`` degrees of freedom over the normal one (the percentile
    bootstrap of a statistic over few independent pieces is too narrow, as a z interval is
    where a t interval is due). t from its Cornish-Fisher expansion (no scipy)."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    v = max(pieces - 1, 2)
    t = (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
         + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))
    return t / z


def within_weights(rng: np.random.Generator, runs: Sequence[int], resamples: int
                   ) -> np.ndarray:
    """Blocks resampled inside each run, runs kept as they are (within-run noise only)."""
    return np.hstack([block_weights(rng, n, resamples) for n in runs])


def hierarchical_weights(rng: np.random.Generator, runs: Sequence[int], resamples: int
                         ) -> np.ndarray:
    """Runs drawn with replacement, then blocks inside each drawn run."""
    offsets = np.concatenate([[0], np.cumsum(runs)])
    weights = np.zeros((resamples, int(offsets[-1])))
    picks = rng.integers(0, len(runs), size=(resamples, len(runs)))
    for run, seconds in enumerate(runs):
        rows = np.nonzero(picks == run)[0]
        if rows.size:
            drawn = block_weights(rng, seconds, rows.size)
            np.add.at(weights[:, offsets[run]:offsets[run + 1]], rows, drawn)
    return weights


def side_weights(rng: np.random.Generator, runs: Sequence[int], resamples: int,
                 hierarchical: bool) -> np.ndarray:
    """The resampling weights of one side; row 0 of nothing: use :func:`whole`."""
    if hierarchical:
        return hierarchical_weights(rng, runs, resamples)
    return within_weights(rng, runs, resamples)


def whole(rows: int) -> np.ndarray:
    """The weights of the observed side itself (every second once)."""
    return np.ones((1, rows))


@functools.cache
def _highest() -> np.ndarray:
    return bucket_tables()[1]


@functools.cache
def _median() -> np.ndarray:
    return bucket_tables()[2].astype(np.float64)


def percentiles(weights: np.ndarray, counts: np.ndarray, buckets: np.ndarray,
                pcts: Sequence[float]) -> np.ndarray:
    """(resamples, len(pcts)) latency at each percentile of each resample's merged histogram
    (the rule of :func:`rafale.analysis.latency.percentiles`; 100 gives the max); NaN for a
    resample without samples.

    The merged histograms are never built: the cumulative count of a resample at bucket k
    is ``weights @ cumulative[:, k]`` (per-second cumulative counts), so a binary search over
    the buckets, all resamples and percentiles at once, costs resamples x seconds x
    percentiles per step instead of resamples x seconds x buckets.
    """
    resamples = weights.shape[0]
    out = np.full((resamples, len(pcts)), np.nan)
    width = counts.shape[1]
    if width == 0:
        return out
    cumulative = np.cumsum(counts, axis=1)  # (seconds, buckets)
    total = weights @ cumulative[:, -1]
    fractions = np.minimum(np.asarray(pcts, dtype=np.float64), 100.0) / 100.0
    targets = np.maximum(np.floor(fractions[None, :] * total[:, None] + 0.5), 1.0)
    low = np.zeros(targets.shape, dtype=np.int64)
    high = np.full(targets.shape, width - 1, dtype=np.int64)
    for _ in range(max(1, int(width).bit_length())):
        middle = (low + high) // 2
        reached = np.einsum("bs,sbp->bp", weights, cumulative[:, middle]) >= targets
        high = np.where(reached, middle, high)
        low = np.where(reached, low, middle + 1)
    values = _highest()[buckets[high]].astype(np.float64)
    return np.where(total[:, None] > 0, values, out)


def means(weights: np.ndarray, counts: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """(resamples,) mean latency of each resample (as latency.mean); NaN without samples."""
    if counts.shape[1] == 0:
        return np.full(weights.shape[0], np.nan)
    total = weights @ counts.sum(axis=1)
    weighted = weights @ (counts @ _median()[buckets])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, weighted / total, np.nan)


def ratios(weights: np.ndarray, numerator: np.ndarray, denominator: np.ndarray
           ) -> np.ndarray:
    """(resamples,) sum of ``numerator`` over sum of ``denominator``; NaN when it is 0."""
    top, bottom = weights @ numerator, weights @ denominator
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / bottom, np.nan)
