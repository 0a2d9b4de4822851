"""``compare(base, cand)``: per metric, the two sides' values, the difference and its
confidence interval from a bootstrap over their seconds, and a verdict.

A verdict is ``better`` or ``worse`` when the interval of the difference excludes 0 and the
difference is at least ``min_effect`` of the base value (``changed`` for a metric without a
better direction: the share of an address or an HTTP version), ``no significant change``
otherwise, and ``not comparable`` when a spec field the metric depends on differs (the
reason names it) or a side has no samples.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from rafale.actors.contract import LATENCY_CORRECTED
from rafale.analysis.result import Result
from rafale.analysis.verdict.bootstrap import (
    blocks,
    fitted_block_lengths,
    second_means,
    side_weights,
    whole,
    widening,
)
from rafale.analysis.verdict.metrics import Better, Metric, common_tags, describe, share_keys
from rafale.analysis.verdict.metrics import values as metric_values
from rafale.analysis.verdict.series import Series, series_of, stack
from rafale.analysis.verdict.spec import describe_differences, differences

Run: TypeAlias = str | os.PathLike[str] | Result
Side: TypeAlias = Run | Sequence[Run]

BETTER, WORSE, CHANGED = "better", "worse", "changed"
NO_CHANGE, NOT_COMPARABLE = "no significant change", "not comparable"
VERDICTS: tuple[str, ...] = (BETTER, WORSE, CHANGED, NO_CHANGE, NOT_COMPARABLE)
SIGNIFICANT: tuple[str, ...] = (BETTER, WORSE, CHANGED)
HIERARCHICAL_RUNS = 3  # from this many runs a side, runs are resampled too
COLUMNS: tuple[str, ...] = ("metric", "unit", "base", "cand", "difference", "ratio",
                            "ci_low", "ci_high", "verdict", "reason")


@dataclass(frozen=True)
class Options:
    """How to compare: the smallest effect called a change (a fraction of the base value),
    the interval's confidence, the resamples, the seed, and whether runs of different
    targets may be compared."""

    min_effect: float = 0.05
    confidence: float = 0.95
    resamples: int = 1000
    seed: int | None = None
    allow_different: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_effect < 10:
            raise ValueError(f"min_effect {self.min_effect!r}: expected a fraction >= 0 "
                             "such as 0.05 (5 %)")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence {self.confidence!r}: expected 0.5 <= c < 1, e.g. "
                             "0.95")
        if not 50 <= self.resamples <= 100_000:
            raise ValueError(f"resamples {self.resamples!r}: expected 50..100000")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed {self.seed!r}: expected an integer 0 <= seed < 2**63")


def _runs(side: Side) -> list[Result]:
    """A side's runs, loaded; a series' directory (``rafale run --repeat N``: its
    repeat.json) stands for the runs it lists."""
    from rafale.analysis.store import load, repeated_runs

    items = [side] if isinstance(side, str | os.PathLike | Result) else list(side)
    paths: list[Run] = []
    for item in items:
        listed = None if isinstance(item, Result) else repeated_runs(item)
        paths += [item] if listed is None else listed
    if not paths:
        raise ValueError("a side of the comparison has no run; give at least one")
    return [item if isinstance(item, Result) else load(item) for item in paths]


def side_series(side: Side) -> Series:
    """The stacked seconds of a side's runs (paths are loaded)."""
    results = _runs(side)
    return stack([series_of(r) for r in results])


def interval_note(base: Series, cand: Series) -> str:
    """What the interval covers, for the reader of the table."""
    if min(len(base.runs), len(cand.runs)) >= HIERARCHICAL_RUNS:
        return "the interval covers between-run and within-run noise (runs, then seconds)"
    return (f"the interval covers within-run noise only ({len(base.runs)} vs "
            f"{len(cand.runs)} runs); with {HIERARCHICAL_RUNS} or more runs a side it also "
            "covers how much runs differ")


def verdict(metric: Metric, base: float, cand: float, low: float, high: float,
            min_effect: float) -> tuple[str, str]:
    """(verdict, reason) of one metric (spec differences are handled before)."""
    missing = [name for name, v in (("base", base), ("candidate", cand)) if np.isnan(v)]
    if missing or np.isnan(low) or np.isnan(high):
        return NOT_COMPARABLE, f"no samples in {' and '.join(missing) or 'a resample'}"
    if not metric.tested:
        return NOT_COMPARABLE, "no verdict for a maximum (one request)"
    difference = cand - base
    if low <= 0 <= high:
        return NO_CHANGE, "the interval contains 0"
    if abs(difference) < min_effect * abs(base):
        return NO_CHANGE, f"smaller than the minimum effect ({min_effect:.0%})"
    if metric.better is Better.NEITHER:
        return CHANGED, ""
    worse = difference > 0 if metric.better is Better.LOWER else difference < 0
    return (WORSE if worse else BETTER), ""


def block_lengths(base: Series, cand: Series) -> tuple[list[int], list[int]]:
    """Each run's block length, fitted on the per-second mean latency of every run of both
    sides (:func:`fitted_block_lengths`)."""
    per_run = []
    for side in (base, cand):
        hist = side.hists[LATENCY_CORRECTED]
        values = second_means(hist.counts, hist.buckets)
        per_run += np.split(values, np.cumsum(side.runs)[:-1])
    fitted = fitted_block_lengths(per_run)
    return fitted[: len(base.runs)], fitted[len(base.runs):]


def _pieces(side: Series, blocks_s: list[int]) -> int:
    """The independent pieces a side's resample is made of: its runs when they are
    resampled, else its blocks of seconds."""
    if len(side.runs) >= HIERARCHICAL_RUNS:
        return len(side.runs)
    return blocks(side.runs, blocks_s)


def _rows(base: Series, cand: Series, options: Options, rng: np.random.Generator,
          found: dict[str, tuple[str, str]], blocks_s: tuple[list[int], list[int]]
          ) -> list[dict[str, Any]]:
    tags, shares = common_tags(base, cand), share_keys(base, cand)
    sides = []
    for side, sizes in zip((base, cand), blocks_s, strict=True):
        weights = np.vstack([whole(side.seconds), side_weights(
            rng, side.runs, options.resamples, len(side.runs) >= HIERARCHICAL_RUNS, sizes)])
        sides.append(metric_values(side, weights, tags, shares))
    tail = (1 - options.confidence) / 2 * 100
    wider = widening(_pieces(base, blocks_s[0]) + _pieces(cand, blocks_s[1]) - 2,
                               options.confidence)
    rows = []
    for name, base_values in sides[0].items():
        metric = describe(name)
        cand_values = sides[1][name]
        b, c = float(base_values[0]), float(cand_values[0])
        spread = cand_values[1:] - base_values[1:]
        low, high = ((float(x) for x in np.nanpercentile(spread, [tail, 100 - tail]))
                     if np.isfinite(spread).any() else (np.nan, np.nan))
        low, high = c - b + (low - (c - b)) * wider, c - b + (high - (c - b)) * wider
        blocked = describe_differences(found, metric.needs)
        outcome = ((NOT_COMPARABLE, blocked) if blocked
                   else verdict(metric, b, c, low, high, options.min_effect))
        rows.append({"metric": name, "unit": metric.unit, "base": b, "cand": c,
                     "difference": c - b, "ratio": c / b if b else np.nan,
                     "ci_low": low, "ci_high": high, "verdict": outcome[0],
                     "reason": outcome[1]})
    return rows


def compare_series(base: Series, cand: Series, options: Options = Options()
                   ) -> pd.DataFrame:
    """The comparison of two sides already read (see :func:`compare`)."""
    found = differences(base.metas, cand.metas)
    if "target" in found and not options.allow_different:
        raise ValueError(f"runs of different targets: {describe_differences(found, ['target'])}"
                         "; compare them anyway with --allow-different "
                         "(allow_different=True)")
    seed = options.seed if options.seed is not None else secrets.randbits(63)
    rng = np.random.default_rng(seed)
    blocks_s = block_lengths(base, cand)
    frame = pd.DataFrame(_rows(base, cand, options, rng, found, blocks_s),
                         columns=list(COLUMNS))
    frame.attrs.update({
        "seed": seed, "resamples": options.resamples, "confidence": options.confidence,
        "min_effect": options.min_effect, "base": list(base.labels),
        "cand": list(cand.labels), "interval": interval_note(base, cand),
        "block_s": {"base": blocks_s[0], "cand": blocks_s[1]},
        "differences": {k: list(v) for k, v in found.items()},
    })
    return frame


def compare(base: Side, cand: Side, *more: Side, min_effect: float = 0.05,
            confidence: float = 0.95, resamples: int = 1000, seed: int | None = None,
            allow_different: bool = False) -> pd.DataFrame:
    """Compare a candidate (or several) against a base: each side a result directory, a
    loaded Result, or a sequence of them (repeats of one spec); the directory of a
    ``rafale run --repeat N`` series stands for its runs.

    One row per metric (see ``analysis/verdict/metrics.py``) with the columns
    :data:`COLUMNS`; with several candidates, a ``candidate`` column first and one block
    of rows per candidate. ``attrs`` record the seed, the resamples, the block lengths,
    the spec fields that differ and what the interval covers. Raises ValueError for bad
    options, a side without runs, or runs of different targets (unless allowed), and
    FileNotFoundError for a directory that is not a run.
    """
    options = Options(min_effect, confidence, resamples, seed, allow_different)
    return compare_sides(side_series(base), [side_series(c) for c in (cand, *more)], options)


def compare_sides(base: Series, candidates: Sequence[Series], options: Options = Options()
                  ) -> pd.DataFrame:
    """Each candidate against the base (sides already read; see :func:`compare`)."""
    if options.seed is None:  # one seed for every candidate, recorded
        options = Options(options.min_effect, options.confidence, options.resamples,
                          secrets.randbits(63), options.allow_different)
    if len(candidates) == 1:
        return compare_series(base, candidates[0], options)
    frames = []
    for candidate in candidates:
        frame = compare_series(base, candidate, options)
        frame.insert(0, "candidate", " ".join(candidate.labels))
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(frames[0].attrs)
    out.attrs["cand"] = [list(c.labels) for c in candidates]
    return out
