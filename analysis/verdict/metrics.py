"""The metrics a comparison reports, their units, which way is better, and which spec
fields must match for a verdict; and their values over resampled seconds.

Names are those of ``--threshold`` and ``--fail-if`` (``analysis/thresholds.py``):
``rate`` (completed requests per second), ``latency.p99`` (from the intended send time),
``latency_raw.p99``, ``send_lag.p99``, ``error_rate``, ``late_rate``, ``dropped_rate``,
``share[address=IP]``, ``share[version=2]``, ``latency.p99[tag=NAME]``,
``error_rate[tag=NAME]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from rafale.actors.contract import LATENCY_CORRECTED, LATENCY_RAW, SEND_LAG
from rafale.analysis.latency import percentile_label
from rafale.analysis.thresholds import HISTS
from rafale.analysis.verdict.bootstrap import (
    means,
    percentiles,
    ratios,
)
from rafale.analysis.verdict.series import SHARE_DIMENSIONS, TAG_PREFIX, Series, tag_outcomes

LATENCY_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
SEND_LAG_PERCENTILES: tuple[float, ...] = (99.0,)
TAG_PERCENTILES: tuple[float, ...] = (50.0, 99.0)
_KIND = {field: kind for kind, field in HISTS.items()}  # latency_corrected_us -> latency
COMPARED: tuple[str, ...] = (LATENCY_CORRECTED, LATENCY_RAW, SEND_LAG)  # latency rows


class Better(Enum):
    """Which way a metric improves; NEITHER: a change is only ``changed``."""

    LOWER = "lower"
    HIGHER = "higher"
    NEITHER = "neither"


@dataclass(frozen=True)
class Metric:
    """What a row of the comparison measures. ``needs`` are the spec fields (see
    ``analysis/verdict/spec.py``) that must be equal on both sides for a verdict."""

    name: str
    unit: str  # "us", "per_s" or "share"
    better: Better
    needs: tuple[str, ...]
    # False for a maximum: one request decides it, and a bootstrap of a maximum does not
    # give an interval to trust (it never exceeds the observed one), so no verdict.
    tested: bool = True


_LOAD = ("rate",)  # latency and errors at another offered rate are not comparable


def describe(name: str) -> Metric:
    """The Metric of a row name (``latency.p99``, ``share[address=127.0.0.2]``...)."""
    base, _, scope = name.partition("[")
    if base == "rate":
        return Metric(name, "per_s", Better.HIGHER, _LOAD)
    if base == "share":
        needs = ("rate", "http") if scope.startswith("version=") else ("rate", "dns")
        return Metric(name, "share", Better.NEITHER, needs)
    if base.endswith("_rate"):
        return Metric(name, "share", Better.LOWER, _LOAD)
    if base.endswith(".max"):
        return Metric(name, "us", Better.LOWER, (*_LOAD, "duration_s"), tested=False)
    return Metric(name, "us", Better.LOWER, _LOAD)


def check_row(name: str) -> str | None:
    """Why a comparison has no row ``name`` (None when it may have one: a share or a tag
    row exists when a run counted that key)."""
    base, _, scope = name.partition("[")
    kind, _, stat = base.partition(".")
    if base == "share" and scope.startswith("tag="):
        return "share is compared per address and per HTTP version, not per tag"
    if not stat:
        rates = ("rate", "error_rate", "late_rate", "dropped_rate", "share")
        return None if base in rates else f"{base} is not compared; expected one of " \
            f"{', '.join(rates)} or a latency"
    if kind not in (_KIND[field] for field in COMPARED):
        return f"{base} is not compared (a threshold of one run only); expected a latency " \
            "(latency, latency_raw, send_lag), rate, error_rate, late_rate, dropped_rate " \
            "or share"
    if scope.startswith("tag="):
        allowed = [*(percentile_label(p) for p in TAG_PERCENTILES)]
    elif kind == _KIND[SEND_LAG]:
        allowed = [percentile_label(p) for p in SEND_LAG_PERCENTILES]
    else:
        allowed = [*(percentile_label(p) for p in LATENCY_PERCENTILES), "max", "mean"]
    if stat in allowed:
        return None
    return f"{name} is not compared; {base.split('.')[0]}{'[tag=...]' if scope else ''} " \
        f"has {', '.join(allowed)}"


def _latency_rows(kind: str, pcts: tuple[float, ...], extra: bool, scope: str = ""
                  ) -> list[str]:
    names = [f"{kind}.{percentile_label(p)}{scope}" for p in pcts]
    return [*names, f"{kind}.max{scope}", f"{kind}.mean{scope}"] if extra else names


def values(side: Series, weights: np.ndarray, tags: tuple[str, ...] = (),
           shares: dict[str, tuple[str, ...]] | None = None) -> dict[str, np.ndarray]:
    """Every metric over each resample (row of ``weights``): name -> (resamples,); the
    shares of the keys in ``shares`` (dimension -> keys; a key the side lacks has 0), else
    of the side's own keys; the latency and errors of ``tags``."""
    out: dict[str, np.ndarray] = {}
    counters = side.counters
    seconds = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["rate"] = np.where(seconds > 0, (weights @ counters["completed"]) / seconds,
                               np.nan)
    for field in COMPARED:
        hist = side.hists[field]
        lag = field == SEND_LAG
        pcts = SEND_LAG_PERCENTILES if lag else LATENCY_PERCENTILES
        found = percentiles(weights, hist.counts, hist.buckets, (*pcts, 100.0))
        names = _latency_rows(_KIND[field], pcts, extra=not lag)
        for i, name in enumerate(names[: len(pcts)]):
            out[name] = found[:, i]
        if not lag:
            out[names[-2]] = found[:, -1]
            out[names[-1]] = means(weights, hist.counts, hist.buckets)
    finished = counters["completed"] + counters["failed"]
    out["error_rate"] = ratios(weights, counters["failed"], finished)
    out["late_rate"] = ratios(weights, counters["late"], counters["sent"])
    out["dropped_rate"] = ratios(weights, counters["dropped"], counters["intended"])
    for dimension in SHARE_DIMENSIONS:
        keys = side.keys[dimension]
        total = keys.to_numpy().sum(axis=1)
        zero = np.zeros(len(keys))
        for key in (shares or {}).get(dimension, tuple(keys.columns)):
            counts = keys[key].to_numpy() if key in keys else zero
            out[f"share[{dimension}={key}]"] = ratios(weights, counts, total)
    outcomes = tag_outcomes(side.keys["tag"])
    for tag in tags:
        scope = f"[tag={tag}]"
        hist = side.hists[f"{TAG_PREFIX}{tag}"]
        found = percentiles(weights, hist.counts, hist.buckets, TAG_PERCENTILES)
        for i, name in enumerate(_latency_rows("latency", TAG_PERCENTILES, False, scope)):
            out[name] = found[:, i]
        if tag in outcomes:
            finished_tag, failed_tag = outcomes[tag]
            out[f"error_rate{scope}"] = ratios(weights, failed_tag, finished_tag)
    return out


def share_keys(base: Series, cand: Series) -> dict[str, tuple[str, ...]]:
    """dimension -> the keys either side counted (a key one side lacks has a share of 0)."""
    return {d: tuple(sorted({str(k) for s in (base, cand) for k in s.keys[d].columns}))
            for d in SHARE_DIMENSIONS}


def common_tags(base: Series, cand: Series) -> tuple[str, ...]:
    """The feed tags both sides have a latency histogram for."""
    def tags(side: Series) -> set[str]:
        return {n.removeprefix(TAG_PREFIX) for n in side.hists if n.startswith(TAG_PREFIX)}

    return tuple(sorted(tags(base) & tags(cand)))
