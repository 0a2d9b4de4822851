"""What a run's meta.json says: the spec (redacted), the cluster shape, the versions,
start and end, lost actors and nodes, and notes: plain data from what the driver passes
in (no Ray query here)."""

from __future__ import annotations

import datetime as dt
import platform
import time
import uuid
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rafale.actors.config import ResolveEntry
    from rafale.cluster.spec import RunSpec


class Ended(StrEnum):
    """How a run ended: ``meta["ended"]`` (a plain string in the saved JSON)."""

    RUNNING = "running"                    # not ended yet
    COMPLETED = "completed"                # the schedule (or the feed) ran to its end
    STOPPED = "stopped"                    # stop() (or the CLI's stop)
    INTERRUPTED = "interrupted"            # Ctrl-C or SIGTERM
    ABORTED = "aborted"                    # abort(), or a new run started in this process
    THRESHOLD_FAILED = "threshold failed"  # an :abort threshold failed
    DRIVER_ERROR = "driver error"          # the driver failed; what it drained is kept
    ALL_LOST = "all actors lost"           # no sender left


def run_meta(spec: RunSpec, run_id: str, entries: tuple[ResolveEntry, ...],
             nodes: list[dict[str, Any]], actors: list[dict[str, Any]], *, start_at_s: float,
             ended: Ended | None, ended_at_s: float | None, lost: list[dict[str, Any]],
             lost_nodes: list[str], notes: list[str],
             warnings: list[str] | None = None,
             aggregation: dict[str, str] | None = None) -> dict[str, Any]:
    """meta.json content; header values are redacted (spec.redacted, then store.save)."""
    redacted = spec.redacted()
    redacted["actors_option"] = redacted["actors"]
    redacted["actors"] = len(actors)
    per_node: dict[str, int] = {}
    for actor in actors:
        node_id = str(actor.get("node_id", actor.get("node", "")))
        per_node[node_id] = per_node.get(node_id, 0) + 1
    schedule = spec.schedule()
    return {
        "run_id": run_id, "label": spec.label, "http": spec.http, "dns": spec.dns,
        "spec": redacted,
        "resolve": [str(e) for e in entries],
        "schedule": {"duration_s": spec.run_s,
                     "total_requests": schedule.total() if schedule else None},
        "cluster": {"address": spec.address or "local", "nodes": nodes,
                    "node_count": len(per_node), "actors": len(actors),
                    "actors_per_node": per_node,
                    # who polled the senders: the driver (flat) or each node's aggregator
                    "aggregation": aggregation or {"mode": "flat", "why": ""}},
        "actors": actors,
        "versions": versions(next((str(a["libcurl"]) for a in actors if a.get("libcurl")),
                                  "unknown")),
        "started_at": iso(start_at_s), "start_at_s": start_at_s,
        "ended": str(ended or Ended.RUNNING), "ended_at": iso(ended_at_s) if ended_at_s else None,
        "lost": list(lost), "lost_actors": [x["actor"] for x in lost],
        "lost_nodes": list(lost_nodes), "insecure": spec.insecure,
        "notes": list(notes),
        "warnings": list(warnings or ()),
        "niceness_max": max((int(a.get("niceness", 0)) for a in actors), default=0),
        "start_skew_max_s": max((float(a.get("start_skew_s", 0.0)) for a in actors),
                                default=0.0),
        "late_after_s": spec.late_after_s,
        "stall_after_s": spec.stall_after_s,
    }


def new_run_id() -> str:
    """A run's id: its start time and a random suffix (20261207-013000-1a2b3c)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).isoformat(timespec="milliseconds")


def versions(libcurl: str = "unknown") -> dict[str, str]:
    """Versions of rafale, Ray, pycurl and Python here (package metadata only: nothing is
    imported or asked of Ray); ``libcurl`` as the actors report it."""
    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    return {"rafale": installed("rafale"), "libcurl": libcurl, "pycurl": installed("pycurl"),
            "ray": installed("ray"), "python": platform.python_version()}
