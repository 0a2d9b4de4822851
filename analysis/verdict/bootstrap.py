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
    """The shortest block for a run of ``seconds``: the cube root rule (n^(1/3)), >= 1."""
    return max(1, round(seconds ** (1 / 3)))


def _flat_top(t: np.ndarray) -> np.ndarray:
    return np.clip(2 * (1 - np.abs(t)), 0, 1)


def _pooled_autocovariance(runs: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """Autocovariances at lags 0..longest-1 pooled over runs (each centred on its own mean,
    so a difference between runs is not read as correlation), and the seconds pooled."""
    longest = max(len(r) for r in runs)
    total = np.zeros(longest)
    seconds = 0
    for run in runs:
        centred = run - run.mean()
        n = centred.shape[0]
        total[:n] += [centred[: n - k] @ centred[k:] for k in range(n)]
        seconds += n
    return total / max(seconds, 1), seconds


def fitted_block_lengths(runs: Sequence[np.ndarray]) -> list[int]:
    """A block length for each run, from per-second values (NaN for a second without
    any): the cube root rule, or longer when the seconds stay correlated longer (a busy
    machine's slow spells last tens of seconds). Politis and White's (2004; Patton et al.
    2009) optimal length for the circular block bootstrap, from autocovariances pooled over
    every run compared (one machine, one correlation) with a flat-top kernel; at most half
    a run."""
    series = [np.asarray(r, dtype=np.float64) for r in runs]
    series = [r[np.isfinite(r)] for r in series]
    floors = [block_length(len(r)) for r in runs]
    usable = [r for r in series if r.shape[0] >= 2 and np.ptp(r) > 0]
    if not usable:
        return floors
    cov, n = _pooled_autocovariance(usable)
    if n < 8 or cov[0] <= 0:
        return floors
    rho = cov / cov[0]
    kn = max(5, math.ceil(math.sqrt(math.log10(n))))
    bound = 2 * math.sqrt(math.log10(n) / n)
    m_hat = next((m for m in range(len(rho) - kn)
                  if (np.abs(rho[m + 1: m + 1 + kn]) < bound).all()), len(rho) // 2)
    big_m = min(2 * max(m_hat, 1), math.ceil(math.sqrt(n)) + kn, len(rho) - 1)
    k = np.arange(-big_m, big_m + 1)
    weighted = _flat_top(k / big_m) * cov[np.abs(k)]
    spectrum = float(weighted.sum())
    if spectrum <= 0:
        return floors
    factor = (2 * float((weighted * np.abs(k)).sum()) ** 2 / (4 / 3 * spectrum**2)) ** (1 / 3)
    return [int(min(max(floor, math.ceil(factor * len(run) ** (1 / 3))), max(len(run) // 2, 1)))
            for floor, run in zip(floors, runs, strict=True)]


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


def blocks(runs: Sequence[int], blocks_s: Sequence[int]) -> int:
    """How many blocks of seconds a side's resample is made of."""
    return sum(math.ceil(n / b) for n, b in zip(runs, blocks_s, strict=True) if n > 0)


def widening(freedom: int, confidence: float) -> float:
    """How much wider than the bootstrap's a small sample's interval must be: Student's t
    quantile with ``freedom`` degrees of freedom (independent pieces of both sides, less
    two) over the normal one (the percentile bootstrap of a statistic over few independent
    pieces is too narrow, as a z interval is where a t interval is due). t from its
    Cornish-Fisher expansion (no scipy), at least 2 degrees of freedom."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    v = max(freedom, 2)
    t = (z + (z**3 + z) / (4 * v) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
         + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3))
    return t / z


def within_weights(rng: np.random.Generator, runs: Sequence[int], resamples: int,
                   blocks_s: Sequence[int] | None = None) -> np.ndarray:
    """Blocks resampled inside each run, runs kept as they are (within-run noise only)."""
    sizes = blocks_s or [block_length(n) for n in runs]
    return np.hstack([block_weights(rng, n, resamples, b)
                      for n, b in zip(runs, sizes, strict=True)])


def hierarchical_weights(rng: np.random.Generator, runs: Sequence[int], resamples: int,
                         blocks_s: Sequence[int] | None = None) -> np.ndarray:
    """Runs drawn with replacement, then blocks inside each drawn run."""
    sizes = blocks_s or [block_length(n) for n in runs]
    offsets = np.concatenate([[0], np.cumsum(runs)])
    weights = np.zeros((resamples, int(offsets[-1])))
    picks = rng.integers(0, len(runs), size=(resamples, len(runs)))
    for run, seconds in enumerate(runs):
        rows = np.nonzero(picks == run)[0]
        if rows.size:
            drawn = block_weights(rng, seconds, rows.size, sizes[run])
            np.add.at(weights[:, offsets[run]:offsets[run + 1]], rows, drawn)
    return weights


def side_weights(rng: np.random.Generator, runs: Sequence[int], resamples: int,
                 hierarchical: bool, blocks_s: Sequence[int] | None = None) -> np.ndarray:
    """The resampling weights of one side (the observed side itself: :func:`whole`)."""
    if hierarchical:
        return hierarchical_weights(rng, runs, resamples, blocks_s)
    return within_weights(rng, runs, resamples, blocks_s)


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


def second_means(counts: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """(rows,) the mean latency of each second (NaN for a second without samples)."""
    if counts.shape[1] == 0:
        return np.full(counts.shape[0], np.nan)
    total = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (counts @ _median()[buckets]) / total, np.nan)


def ratios(weights: np.ndarray, numerator: np.ndarray, denominator: np.ndarray
           ) -> np.ndarray:
    """(resamples,) sum of ``numerator`` over sum of ``denominator``; NaN when it is 0."""
    top, bottom = weights @ numerator, weights @ denominator
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / bottom, np.nan)
