"""What a run's meta.json says: the spec (redacted), the cluster shape, the versions,
start and end, lost actors and nodes, and notes. Ray is imported only when asked."""

from __future__ import annotations

import datetime as dt
import platform
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actors.config import ResolveEntry
    from cluster.spec import RunSpec


def run_meta(spec: RunSpec, run_id: str, entries: tuple[ResolveEntry, ...],
             nodes: list[dict[str, Any]], actors: list[dict[str, Any]], *, start_at_s: float,
             ended: str | None, ended_at_s: float | None, lost: list[dict[str, Any]],
             lost_nodes: list[str], notes: list[str]) -> dict[str, Any]:
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
                    "actors_per_node": per_node},
        "actors": actors,
        "versions": versions(),
        "started_at": iso(start_at_s), "start_at_s": start_at_s,
        "ended": ended or "running", "ended_at": iso(ended_at_s) if ended_at_s else None,
        "lost": list(lost), "lost_actors": [x["actor"] for x in lost],
        "lost_nodes": list(lost_nodes), "insecure": spec.insecure,
        "notes": list(notes),
    }


def iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).isoformat(timespec="milliseconds")


def alive_node_ids() -> set[str] | None:
    """Ids of the alive Ray nodes, or None when Ray cannot tell right now."""
    from cluster import placement

    try:
        return {str(getattr(n, "node_id", "")) for n in placement.nodes()}
    except Exception:  # noqa: BLE001 - Ray busy: assume nothing changed
        return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import ray

    try:
        rafale = version("rafale")
    except PackageNotFoundError:
        rafale = "unknown"
    try:
        import pycurl

        libcurl = str(pycurl.version_info()[1])
    except ImportError:
        libcurl = "unknown"
    return {"rafale": rafale, "libcurl": libcurl, "ray": ray.__version__,
            "python": platform.python_version()}


def node_infos(node_ids: list[str]) -> list[dict[str, Any]]:
    from cluster import placement

    out = []
    for node in placement.nodes():
        node_id = str(getattr(node, "node_id", ""))
        out.append({"node_id": node_id, "ip": getattr(node, "ip", ""),
                    "hostname": getattr(node, "hostname", ""),
                    "cpus": getattr(node, "cpus", None), "actors": node_ids.count(node_id)})
    return out
