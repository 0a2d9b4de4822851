"""Pure functions from windows to per-second, per-actor, per-node and per-key tables.

Sources are a :class:`~rafale.analysis.result.Result` (loaded, or a run's result, whose
window log answers :func:`per_second` without decoding a histogram again), a (windows,
counts) pair of DataFrames, or a windows DataFrame. Percentiles always come from merged
HdrHistograms (:mod:`rafale.analysis.aggregate`), never from averaging per-window
percentiles. Field names are the window contract's (``actors/contract.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from rafale.actors.contract import (
    COUNTERS,
    COUNTS_SCHEMA,
    DIMENSIONS,
    LATENCIES,
    LATENCY_CORRECTED,
    MAXIMA,
)
from rafale.analysis.aggregate import FRAME_PERCENTILES, Aggregate, kind_of
from rafale.analysis.latency import merge_histograms, percentile_label, percentiles
from rafale.analysis.result import Result

Source: TypeAlias = Result | tuple[pd.DataFrame, pd.DataFrame] | pd.DataFrame


# --------------------------------------------------------------------------- sources


def split_source(source: Source) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(windows_df, counts_df) from a Result, a (windows, counts) pair or a windows frame."""
    if isinstance(source, pd.DataFrame):
        return source, empty_counts()
    if isinstance(source, tuple):
        return source[0], source[1]
    return source.windows, source.counts


def empty_counts() -> pd.DataFrame:
    return COUNTS_SCHEMA.empty_table().to_pandas()


def _pct_columns(
    groups: Mapping[Any, pd.DataFrame], pcts: Sequence[float]
) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    for column in LATENCIES:
        kind = kind_of(column)
        for pct in pcts:
            cols[f"{percentile_label(pct)}_{kind}_us"] = []
        for frame in groups.values():
            values = (percentiles(merge_histograms(frame[column]), pcts) if column in frame
                      else {})
            for pct in pcts:
                value = values.get(float(pct))
                cols[f"{percentile_label(pct)}_{kind}_us"].append(
                    np.nan if value is None else float(value)
                )
    return cols


def _grouped(
    windows: pd.DataFrame, keys: list[str], pcts: Sequence[float]
) -> pd.DataFrame:
    present = [c for c in COUNTERS if c in windows]
    if windows.empty:
        base = pd.DataFrame(columns=[*keys, *present])
        for col in _pct_columns({}, pcts):
            base[col] = pd.Series([], dtype="float64")
        return base
    groups = dict(tuple(windows.groupby(keys, sort=True)))
    grouped = windows.groupby(keys, sort=True)
    sums = grouped[[c for c in present if c not in MAXIMA]].sum()
    for name in (c for c in present if c in MAXIMA):
        sums[name] = grouped[name].max()
    sums = sums[present].reset_index()
    for name, values in _pct_columns(groups, pcts).items():
        sums[name] = values
    return sums


# --------------------------------------------------------------------------- views


def second_frame(rows: Sequence[Mapping[str, Any]],
                 pcts: Sequence[float] = FRAME_PERCENTILES) -> pd.DataFrame:
    """Rows of per-second aggregates (``second``, counters, ``actors``, percentiles) as the
    per-second frame: sorted, gaps filled with zeros, ``achieved_per_s`` added."""
    columns = ["second", *COUNTERS, "actors",
               *(f"{percentile_label(p)}_{kind_of(n)}_us" for n in LATENCIES for p in pcts)]
    frame = pd.DataFrame(list(rows), columns=columns)
    if frame.empty:
        frame = frame.astype({c: "int64" for c in ("second", "actors", *COUNTERS)
                              if c != "cpu_s"})
        frame["achieved_per_s"] = pd.Series([], dtype="float64")
        return frame
    frame = frame.sort_values("second", kind="stable").set_index("second")
    seconds = range(int(frame.index.min()), int(frame.index.max()) + 1)
    frame = frame.reindex(seconds)
    counters = [*COUNTERS, "actors"]
    frame[counters] = frame[counters].fillna(0)
    for col in counters:
        frame[col] = frame[col].astype("float64" if col == "cpu_s" else "int64")
    frame.index.name = "second"
    frame = frame.reset_index()
    frame["achieved_per_s"] = frame["completed"].astype("float64")
    return frame


def per_second(source: Source, pcts: Sequence[float] = FRAME_PERCENTILES) -> pd.DataFrame:
    """Totals over actors for each run second, gaps filled with zeros.

    Columns: second, the counters, actors (windows seen), achieved_per_s (completed that
    second), and p50_corrected_us … p99_raw_us from the merged histograms of that second;
    for a result, ``partial`` (see :func:`mark_partial`). A run's result answers from its
    window log; saved results merge their windows here.
    """
    duration_s = (((source.meta or {}).get("schedule") or {}).get("duration_s")
                  if isinstance(source, Result) else None)
    if isinstance(source, Result) and source.log is not None:
        return mark_partial(source.log.per_second(pcts), duration_s)
    windows, _ = split_source(source)
    rows = []
    for second, group in windows.groupby("second", sort=True):
        agg = Aggregate()
        for window in group.to_dict("records"):
            agg.add_window(window)
        rows.append({"second": int(second), **agg.row(pcts)})
    frame = second_frame(rows, pcts)
    return mark_partial(frame, duration_s) if isinstance(source, Result) else frame


def mark_partial(frame: pd.DataFrame, duration_s: float | None) -> pd.DataFrame:
    """Add ``partial``: True for a second the schedule did not cover whole (the one it ends
    in, and the grace after it, when requests in flight finish): its counts are not a rate
    over a full second, so charts draw it apart instead of as a fall to zero."""
    if duration_s is None:
        frame["partial"] = False
    else:
        frame["partial"] = frame["second"] + 1 > float(duration_s) + 1e-9
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


def rate_target(spec: Mapping[str, Any]) -> float | None:
    """The spec's target rate: ``rate_per_s``, else the highest stage rate; None if closed."""
    if spec.get("rate_per_s") is not None:
        return float(spec["rate_per_s"])
    rates = [float(rate) for _, rate in spec.get("stages") or ()]
    return max(rates) if rates else None


def run_row(result: Result) -> dict[str, Any]:
    """One-row summary of a run, with the labels comparisons group by.

    Labels and shape come from meta.json as the driver writes it (``label``, ``http``,
    ``dns``, ``spec``, ``cluster.actors``, ``cluster.node_count``); a result without meta
    counts actors and nodes in its windows.
    """
    meta = result.meta or {}
    spec = meta.get("spec") or {}
    cluster = meta.get("cluster") or {}
    summary = result.summary or {}
    requests = summary.get("requests", {})
    corrected = summary.get("latency_corrected_us", {})
    raw = summary.get("latency_raw_us", {})
    addresses = summary.get("address_share", {}) or {}
    completed = int(requests.get("completed", 0))
    failed = int(requests.get("failed", 0))
    sent = int(requests.get("sent", 0))
    return {
        "run_id": summary.get("run_id") or meta.get("run_id") or "",
        "label": meta.get("label") or "",
        "http": str(meta.get("http") or ""),
        "dns": str(meta.get("dns") or ""),
        "actors": int(cluster.get("actors") or summary.get("actors") or 0),
        "nodes": int(cluster.get("node_count") or summary.get("nodes") or 0),
        "rate_target_per_s": rate_target(spec),
        "duration_s": summary.get("duration_s", 0),
        "sent": sent,
        "completed": completed,
        "failed": failed,
        "late": int(requests.get("late", 0)),
        "achieved_per_s": summary.get("rate_per_s", {}).get("completed", 0.0),
        "held_per_s": (summary.get("target") or {}).get("held_per_s"),
        "p50_corrected_us": corrected.get("p50"),
        "p99_corrected_us": corrected.get("p99"),
        "p50_raw_us": raw.get("p50"),
        "p99_raw_us": raw.get("p99"),
        "error_share": failed / (completed + failed) if completed + failed else 0.0,
        "late_share": int(requests.get("late", 0)) / sent if sent else 0.0,
        "addresses_used": len(addresses),
        "max_address_share": max(addresses.values()) if addresses else None,
        # Seconds in which a sender stalled (its results there measure rafale): 0 is clean.
        "stalled_seconds": int((summary.get("sender") or {}).get("stalled_seconds") or 0),
        "sender_stall_s": float((summary.get("sender") or {}).get("stall_s") or 0.0),
    }


# --------------------------------------------------------------------------- feed tags


def per_tag(result: Result) -> pd.DataFrame:
    """One row per tag of a feed: finished, failed, failed share, latency percentiles (ms,
    from the intended send time, completed requests) and the most frequent status."""
    rows = []
    for tag, entry in (result.summary.get("tags") or {}).items():
        latency = entry.get(LATENCY_CORRECTED) or {}
        row: dict[str, Any] = {"tag": tag, "finished": int(entry["finished"]),
                               "failed": int(entry["failed"])}
        row["failed_share"] = row["failed"] / row["finished"] if row["finished"] else 0.0
        for label in ("p50", "p90", "p99", "max"):
            value = latency.get(label)
            row[f"{label}_ms"] = float("nan") if value is None else value / 1000.0
        status = entry.get("status") or {}
        row["top_status"] = next(iter(status), "")
        rows.append(row)
    columns = ["tag", "finished", "failed", "failed_share", "p50_ms", "p90_ms", "p99_ms",
               "max_ms", "top_status"]
    return pd.DataFrame(rows, columns=columns)
