"""Pure functions from window frames to per-second, per-actor, per-node and per-key tables.

Percentiles always come from merged HdrHistograms (windows merge losslessly), never from
averaging per-window percentiles. Imports only pandas, numpy and hdrh.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

if TYPE_CHECKING:
    from analysis.store import Result

# Contract: 1 µs .. 10 min, 3 significant digits.
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 600_000_000
HIST_DIGITS = 3
DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
LATENCY_COLUMNS = ("latency_corrected_us", "latency_raw_us")
COUNTER_COLUMNS = (
    "intended", "sent", "completed", "failed", "late", "in_flight",
    "bytes_in", "new_connections", "cpu_s", "loops",
)
DIMENSIONS = ("status", "error", "address", "version")

Encoded = str | bytes
Source = Union["Result", tuple[pd.DataFrame, pd.DataFrame], pd.DataFrame]


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def merge_histograms(encoded: Iterable[Encoded | HdrHistogram | None]) -> HdrHistogram:
    """Add encoded (str or bytes) or decoded histograms into one; empty input gives an empty one."""
    merged = new_histogram()
    for item in encoded:
        if item is None or (isinstance(item, float) and math.isnan(item)):
            continue
        if isinstance(item, HdrHistogram):
            merged.add(item)
        elif item:
            merged.decode_and_add(item)
    return merged


def percentile_label(pct: float) -> str:
    """50 -> 'p50', 99.9 -> 'p99.9'."""
    return f"p{pct:g}"


def percentiles(
    encoded: Iterable[Encoded | HdrHistogram | None] | HdrHistogram,
    pcts: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[float, int | None]:
    """Latency at each percentile (same unit as recorded, µs) of the merged histograms.

    Returns None for every percentile when no sample was recorded.
    """
    hist = encoded if isinstance(encoded, HdrHistogram) else merge_histograms(encoded)
    if hist.get_total_count() == 0:
        return {float(p): None for p in pcts}
    return {float(p): int(hist.get_value_at_percentile(p)) for p in pcts}


def latency_summary(
    encoded: Iterable[Encoded | HdrHistogram | None],
    pcts: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[str, Any]:
    """{'count', 'mean', 'p50', ..., 'max'} in µs (None when there are no samples)."""
    hist = merge_histograms(encoded)
    count = int(hist.get_total_count())
    out: dict[str, Any] = {"count": count}
    out["mean"] = float(hist.get_mean_value()) if count else None
    for pct, value in percentiles(hist, pcts).items():
        out[percentile_label(pct)] = value
    out["max"] = int(hist.get_max_value()) if count else None
    return out


# --------------------------------------------------------------------------- sources


def split_source(source: Source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows_df, counts_df) from a Result, a (windows, counts) pair or a windows frame."""
    if isinstance(source, pd.DataFrame):
        return source, empty_counts()
    if isinstance(source, tuple):
        return source[0], source[1]
    return source.windows, source.counts


def empty_counts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": pd.Series([], dtype="str"),
            "actor": pd.Series([], dtype="int64"),
            "second": pd.Series([], dtype="int64"),
            "dimension": pd.Series([], dtype="str"),
            "key": pd.Series([], dtype="str"),
            "count": pd.Series([], dtype="int64"),
        }
    )


def _pct_columns(
    groups: Mapping[Any, pd.DataFrame], pcts: Sequence[float]
) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    for column in LATENCY_COLUMNS:
        kind = column.removeprefix("latency_").removesuffix("_us")  # corrected / raw
        for pct in pcts:
            cols[f"{percentile_label(pct)}_{kind}_us"] = []
        for frame in groups.values():
            values = percentiles(frame[column], pcts) if column in frame else {}
            for pct in pcts:
                value = values.get(float(pct))
                cols[f"{percentile_label(pct)}_{kind}_us"].append(
                    np.nan if value is None else float(value)
                )
    return cols


def _grouped(
    windows: pd.DataFrame, keys: list[str], pcts: Sequence[float]
) -> pd.DataFrame:
    present = [c for c in COUNTER_COLUMNS if c in windows]
    if windows.empty:
        base = pd.DataFrame(columns=[*keys, *present])
        for col in _pct_columns({}, pcts):
            base[col] = pd.Series([], dtype="float64")
        return base
    groups = dict(tuple(windows.groupby(keys, sort=True)))
    sums = windows.groupby(keys, sort=True)[present].sum().reset_index()
    for name, values in _pct_columns(groups, pcts).items():
        sums[name] = values
    return sums


# --------------------------------------------------------------------------- views


def per_second(
    source: Source, pcts: Sequence[float] = (50.0, 90.0, 99.0)
) -> pd.DataFrame:
    """Totals over actors for each run second, gaps filled with zeros.

    Columns: second, the counters, actors (windows seen), achieved_per_s (completed that
    second), and p50_corrected_us … p99_raw_us from the merged histograms of that second.
    """
    windows, _ = split_source(source)
    frame = _grouped(windows, ["second"], pcts)
    if windows.empty:
        frame["actors"] = pd.Series([], dtype="int64")
        frame["achieved_per_s"] = pd.Series([], dtype="float64")
        return frame
    frame["actors"] = windows.groupby("second", sort=True)["actor"].nunique().to_numpy()
    seconds = range(int(frame["second"].min()), int(frame["second"].max()) + 1)
    frame = frame.set_index("second").reindex(seconds)
    counters = [c for c in (*COUNTER_COLUMNS, "actors") if c in frame]
    frame[counters] = frame[counters].fillna(0)
    for col in counters:
        if col != "cpu_s":
            frame[col] = frame[col].astype("int64")
    frame.index.name = "second"
    frame = frame.reset_index()
    frame["achieved_per_s"] = frame["completed"].astype("float64")
    return frame


def per_actor(source: Source, pcts: Sequence[float] = (50.0, 99.0)) -> pd.DataFrame:
    """One row per actor: totals, seconds seen, mean rates and merged percentiles."""
    windows, _ = split_source(source)
    keys = ["actor", "node"] if "node" in windows else ["actor"]
    return _with_rates(_grouped(windows, keys, pcts), windows, keys)


def per_node(source: Source, pcts: Sequence[float] = (50.0, 99.0)) -> pd.DataFrame:
    """One row per node: actors, totals, mean rates and merged percentiles."""
    windows, _ = split_source(source)
    frame = _with_rates(_grouped(windows, ["node"], pcts), windows, ["node"])
    actors = (
        windows.groupby("node", sort=True)["actor"].nunique().to_numpy()
        if not windows.empty
        else pd.Series([], dtype="int64")
    )
    frame.insert(1, "actors", actors)
    return frame


def _with_rates(frame: pd.DataFrame, windows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if windows.empty:
        for col in ("seconds", "sent_per_s", "achieved_per_s"):
            frame[col] = pd.Series([], dtype="float64")
        return frame
    grouped = windows.groupby(keys, sort=True)
    seconds = grouped["second"].nunique().to_numpy()
    if "in_flight" in frame:  # end-of-window gauge: the peak means something, the sum does not
        frame["in_flight"] = grouped["in_flight"].max().to_numpy()
    frame["seconds"] = seconds
    frame["sent_per_s"] = frame["sent"] / np.maximum(seconds, 1)
    frame["achieved_per_s"] = frame["completed"] / np.maximum(seconds, 1)
    return frame


def per_key(source: Source, dimension: str) -> pd.DataFrame:
    """key, count, share for one dimension (status, error, address, version), largest first."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension {dimension!r} is not one of {', '.join(DIMENSIONS)}")
    _, counts = split_source(source)
    rows = counts[counts["dimension"] == dimension]
    table = rows.groupby("key", sort=True)["count"].sum().reset_index()
    table = table.sort_values(["count", "key"], ascending=[False, True], kind="stable")
    total = int(table["count"].sum())
    table["share"] = table["count"] / total if total else 0.0
    table = table.reset_index(drop=True)
    table["count"] = table["count"].astype("int64")
    table["share"] = table["share"].astype("float64")
    return table


def per_address(source: Source) -> pd.DataFrame:
    return per_key(source, "address")


def per_version(source: Source) -> pd.DataFrame:
    return per_key(source, "version")


def per_status(source: Source) -> pd.DataFrame:
    return per_key(source, "status")


def per_error(source: Source) -> pd.DataFrame:
    """key ('connect:7'), kind, curl_code, count, share (share of all failed requests)."""
    table = per_key(source, "error")
    keys = [str(k) for k in table["key"]]
    table.insert(1, "kind", pd.Series([k.partition(":")[0] for k in keys], dtype="str"))
    table.insert(2, "curl_code", pd.Series([k.partition(":")[2] for k in keys], dtype="str"))
    return table


def error_kinds(source: Source) -> dict[str, int]:
    """Failed requests by kind ('connect', 'timeout', ...) summed over curl codes."""
    table = per_error(source)
    return {str(k): int(v) for k, v in table.groupby("kind", sort=True)["count"].sum().items()}


def key_per_second(source: Source, dimension: str, by_kind: bool = False) -> pd.DataFrame:
    """Wide frame: index second (gaps filled), one column of counts per key of the dimension.

    With by_kind (errors), keys are reduced to the part before ':'.
    """
    windows, counts = split_source(source)
    rows = counts[counts["dimension"] == dimension]
    if rows.empty:
        return pd.DataFrame(index=pd.Index([], dtype="int64", name="second"))
    keys = [str(k) for k in rows["key"]]
    if by_kind:
        keys = [k.partition(":")[0] for k in keys]
    wide = rows.assign(key=keys).pivot_table(
        index="second", columns="key", values="count", aggfunc="sum", fill_value=0
    )
    seconds = [wide.index.min(), wide.index.max()]
    if not windows.empty:
        seconds += [windows["second"].min(), windows["second"].max()]
    wide = wide.reindex(range(int(min(seconds)), int(max(seconds)) + 1), fill_value=0)
    wide.index.name = "second"
    wide.columns.name = dimension
    order = wide.sum().sort_values(ascending=False, kind="stable").index
    return wide[order].astype("int64")


# --------------------------------------------------------------------------- run rows


def _first(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = mapping.get(name)
        if value not in (None, ""):
            return value
    return None


def _stage_rate(stage: Any) -> float | None:
    """Rate of one stage: {'rate_per_s': r} / {'target_per_s': r} / {'rate': r} or [dur, r]."""
    if isinstance(stage, Mapping):
        stage = [None, _first(stage, "rate_per_s", "target_per_s", "rate")]
    if isinstance(stage, (list, tuple)) and len(stage) == 2 and _is_number(stage[1]):
        return float(stage[1])
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rate_target(spec: Mapping[str, Any]) -> float | None:
    value = _first(spec, "rate_per_s", "rate", "target_rate_per_s")
    if _is_number(value):
        return float(value)
    stages = _first(spec, "stages", "schedule")
    if isinstance(stages, Mapping):
        stages = stages.get("stages")
    if isinstance(stages, (list, tuple)):
        rates = [r for r in map(_stage_rate, stages) if r is not None]
        if rates:
            return max(rates)
    return None


def _count(value: Any) -> int | None:
    """An actor/node count from an int, a numeric string or a list of ids ('auto' -> None)."""
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    if _is_number(value):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def run_row(result: Result) -> dict[str, Any]:
    """One-row summary of a run, with the labels comparisons group by.

    Labels come from meta (meta['spec'] first, then meta, then meta['cluster']): label|name,
    http|http_version, dns|dns_mode, rate target (spec rate_per_s|rate, else the highest
    stage rate). actors/nodes: the first count found in meta, meta['cluster'], meta['spec']
    (an int, a digit string or a list of ids; 'auto' is skipped), else counted in the windows.
    """
    meta = result.meta or {}
    spec = meta.get("spec") if isinstance(meta.get("spec"), Mapping) else {}
    cluster = meta.get("cluster") if isinstance(meta.get("cluster"), Mapping) else {}
    places: tuple[Mapping[str, Any], ...] = (spec or {}, meta, cluster or {})
    summary = result.summary or {}
    requests = summary.get("requests", {})
    corrected = summary.get("latency_corrected_us", {})
    raw = summary.get("latency_raw_us", {})
    windows = result.windows

    def label(*names: str) -> Any:
        for place in places:
            value = _first(place, *names)
            if value is not None:
                return value
        return None

    def count(*names: str, column: str) -> int:
        for place in (meta, cluster or {}, spec or {}):  # actual shape before the request
            for name in names:
                found = _count(place.get(name))
                if found is not None:
                    return found
        return 0 if windows.empty or column not in windows else int(windows[column].nunique())

    actors = count("actors", "actor_count", "n_actors", column="actor")
    nodes = count("nodes", "node_count", "n_nodes", column="node")
    addresses = summary.get("address_share", {}) or {}
    completed = int(requests.get("completed", 0))
    failed = int(requests.get("failed", 0))
    sent = int(requests.get("sent", 0))
    return {
        "run_id": summary.get("run_id") or meta.get("run_id") or "",
        "label": label("label", "name") or "",
        "http": str(label("http", "http_version") or ""),
        "dns": str(label("dns", "dns_mode") or ""),
        "actors": actors,
        "nodes": nodes,
        "rate_target_per_s": _rate_target(spec or {}),
        "duration_s": summary.get("duration_s", 0),
        "sent": sent,
        "completed": completed,
        "failed": failed,
        "late": int(requests.get("late", 0)),
        "achieved_per_s": summary.get("rate_per_s", {}).get("completed", 0.0),
        "p50_corrected_us": corrected.get("p50"),
        "p99_corrected_us": corrected.get("p99"),
        "p50_raw_us": raw.get("p50"),
        "p99_raw_us": raw.get("p99"),
        "error_share": failed / (completed + failed) if completed + failed else 0.0,
        "late_share": int(requests.get("late", 0)) / sent if sent else 0.0,
        "addresses_used": len(addresses),
        "max_address_share": max(addresses.values()) if addresses else None,
    }
