"""The run summary (summary.json): totals, mean rates, latency percentiles and per-key
tables, from one :class:`~rafale.analysis.aggregate.Aggregate` of the whole run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from hdrh.histogram import HdrHistogram

from rafale.actors.contract import (
    COUNTERS,
    HEALTH,
    LATENCIES,
    LATENCY_CORRECTED,
    LATENCY_FAILED,
    MAXIMA,
    RATES,
    REQUESTS,
    TAG_LATENCY,
    TAG_SEPARATOR,
    add_histogram,
    decode,
    new_histogram,
)
from rafale.analysis.aggregate import SUMMED, Aggregate
from rafale.analysis.latency import latency_summary, merge_histograms
from rafale.analysis.sender import sender_summary

# Every finished request (completed or failed) from its intended send time: the summary's
# "all finished" latency, next to the completed-only latency_corrected_us.
LATENCY_ALL = "latency_all_us"
# The completed requests' latency (from intended) without the sender-stalled seconds: given
# only when some second stalled (the rest measures the target, not rafale).
LATENCY_HEALTHY = "latency_healthy_us"


def _sorted(counts: dict[str, int]) -> dict[str, int]:
    """Largest first, then by key."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def tag_outcomes(counts: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Per tag of a feed, from the "tag" dimension (keys "tag|status" or "tag|kind:code"):
    finished requests, failed ones, and both by status and by error; tags in order."""
    tags: dict[str, dict[str, Any]] = {}
    for key, count in counts.items():
        tag, _, outcome = key.rpartition(TAG_SEPARATOR)
        entry = tags.setdefault(tag, {"finished": 0, "failed": 0, "status": {}, "errors": {}})
        entry["finished"] += count
        if outcome.isdigit():
            entry["status"][outcome] = entry["status"].get(outcome, 0) + count
        else:
            entry["failed"] += count
            entry["errors"][outcome] = entry["errors"].get(outcome, 0) + count
    for entry in tags.values():
        entry["status"], entry["errors"] = _sorted(entry["status"]), _sorted(entry["errors"])
    return dict(sorted(tags.items()))


def tag_table(counts: dict[str, int],
              hists: Mapping[str, HdrHistogram] | None = None) -> dict[str, dict[str, Any]]:
    """Per tag of a feed: finished requests, by status and by error ("tag" dimension), and
    the latency of its completed requests from the intended send time."""
    tags = tag_outcomes(counts)
    for tag, entry in tags.items():
        hist = (hists or {}).get(tag)
        entry[LATENCY_CORRECTED] = latency_summary(hist if hist is not None else new_histogram())
    return tags


def summarize(total: Aggregate, nodes: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The summary of a run from the aggregate of all its windows (``nodes``: meta's, for
    the likely cause of a stalled sender).

    Rates are over the sending span (first to last second in which requests were due or
    sent): the seconds after it only let in-flight requests finish.
    """
    span_s = 0 if total.seconds is None else total.seconds[1] - total.seconds[0] + 1
    duration_s = (total.busy[1] - total.busy[0] + 1) if total.busy else span_s
    sums = {name: total.counters[name] for name in SUMMED}
    requests = {name: int(sums[name]) for name in REQUESTS}
    requests["in_flight_end"] = total.in_flight_end
    finished = requests["completed"] + requests["failed"]
    errors = _sorted(total.maps["error"])
    kinds: dict[str, int] = {}
    for key, count in errors.items():
        kind = key.partition(":")[0]
        kinds[kind] = kinds.get(kind, 0) + count
    address = _sorted(total.maps["address"])
    version = _sorted(total.maps["version"])
    run_ids = sorted(total.run_ids)
    latency = {name: latency_summary(total.hists[name]) for name in LATENCIES}
    everything = new_histogram()
    for name in (LATENCY_CORRECTED, LATENCY_FAILED):
        add_histogram(everything, total.hists[name])
    return {
        "run_id": ",".join(run_ids),
        "windows": total.windows,
        "actors": len(total.actors),
        "nodes": len(total.nodes),
        "first_second": None if total.seconds is None else total.seconds[0],
        "duration_s": duration_s,
        "span_s": span_s,
        "requests": requests,
        "bytes_in": int(sums["bytes_in"]),
        "new_connections": int(sums["new_connections"]),
        "cpu_s": float(sums["cpu_s"]),
        "loops": int(sums["loops"]),
        "rate_per_s": {name: requests[name] / duration_s if duration_s else 0.0
                       for name in RATES},
        # Requests still open after the grace period (longer than the timeout) count as
        # errors too: they got no answer in time.
        "error_share": ((requests["failed"] + requests["in_flight_end"]) / requests["sent"]
                        if requests["sent"] else 0.0),
        "accounted": requests["sent"] == finished + requests["in_flight_end"],
        **latency,
        LATENCY_ALL: latency_summary(everything),
        "error_kinds": dict(sorted(kinds.items())),
        "errors": errors,
        # Of those, the failures that ended in sender-stalled seconds (the sender's doing).
        "errors_stalled": _sorted(total.stalled_errors),
        "status": _sorted(total.maps["status"]),
        "address": address,
        "address_share": _shares(address),
        "version": version,
        "version_share": _shares(version),
        "tags": tag_table(total.maps["tag"], total.tag_hists),
        "sender": sender_summary(total, nodes),
        **_healthy(total),
    }


def _healthy(total: Aggregate) -> dict[str, Any]:
    healthy = total.healthy_latency()
    return {} if healthy is None else {LATENCY_HEALTHY: latency_summary(healthy)}


def aggregate_frames(windows: pd.DataFrame, counts: pd.DataFrame) -> Aggregate:
    """The aggregate of saved windows and counts (decodes every histogram once)."""
    total = Aggregate()
    if windows.empty:
        return total
    for name in COUNTERS:
        if name in windows:
            column = windows[name]
            total.counters[name] = (column.max() if name in MAXIMA else column.sum()).item()
    for window in windows[["actor", "second", *(h for h in HEALTH if h in windows)]].to_dict(
            "records"):
        total.add_health(int(window["actor"]), int(window["second"]), window)
    for (dimension, key), count in counts.groupby(["dimension", "key"])["count"].sum().items():
        total.maps[str(dimension)][str(key)] = int(count)
    for name in LATENCIES:
        total.hists[name] = merge_histograms(windows[name])
    if "stalled" in windows and (windows["stalled"] > 0).any():
        stalled = windows.loc[windows["stalled"] > 0]
        total.add_stalled_latency(merge_histograms(stalled[LATENCY_CORRECTED]))
        errors = counts[counts["dimension"] == "error"].merge(stalled[["actor", "second"]])
        total.add_stalled_errors(errors.groupby("key")["count"].sum().to_dict())
    if TAG_LATENCY in windows:
        for by_tag in windows[TAG_LATENCY]:
            for tag, encoded in dict(by_tag if by_tag is not None else ()).items():
                hist = decode(encoded)
                if hist is not None:
                    add_histogram(total.tag_hists.setdefault(str(tag), new_histogram()), hist)
    total.actors = {int(a) for a in windows["actor"].unique()}
    total.nodes = {str(n) for n in windows["node"].unique()}
    total.actor_nodes = {int(a): str(n) for a, n in zip(windows["actor"], windows["node"],
                                                         strict=True)}
    total.run_ids = {str(r) for r in windows["run_id"].unique() if r}
    total.windows = len(windows)
    seconds = windows["second"]
    total.seconds = (int(seconds.min()), int(seconds.max()))
    busy = seconds[(windows["sent"] > 0) | (windows["intended"] > 0)]
    total.busy = None if busy.empty else (int(busy.min()), int(busy.max()))
    last = windows.sort_values("second").groupby("actor").tail(1)
    total.last = {int(a): (int(s), int(f)) for a, s, f in
                  zip(last["actor"], last["second"], last["in_flight"], strict=True)}
    return total


def summarize_frames(windows: pd.DataFrame, counts: pd.DataFrame) -> dict[str, Any]:
    """The summary of saved windows and counts (a result that lacks its summary.json)."""
    return summarize(aggregate_frames(windows, counts))
