"""The summary's ``sender`` part: was the sender itself the bottleneck, when, and likely why.

A window is *stalled* when its actor's loop did not turn for longer than ``stall_after_s``
or its sending thread waited for a CPU (the kernel's run-queue wait) for more than 20 % of
the second (``actors/health.py`` measures both, the window contract carries them). What a
stalled second shows (late requests, latency, timeouts) measures rafale, not the target:
this part says which seconds, how much, and the likely cause, from one
:class:`~rafale.analysis.aggregate.Aggregate` of the run. No ray, no pycurl.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rafale.analysis.aggregate import Aggregate

__all__ = ["BUSY_CORE_SHARE", "sender_line", "sender_summary", "seconds_text"]

# Run-queue wait in the stalled seconds above this share: the core was busy with others.
BUSY_CORE_SHARE = 0.2


def seconds_text(seconds: Iterable[int]) -> str:
    """[2, 3, 4, 7] -> "2–4, 7"."""
    spans: list[list[int]] = []
    for second in sorted(set(seconds)):
        if spans and second == spans[-1][1] + 1:
            spans[-1][1] = second
        else:
            spans.append([second, second])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in spans)


def _actor(health: Mapping[str, int], stalls: Mapping[int, tuple[int, int]]) -> dict[str, Any]:
    windows = max(int(health.get("windows", 0)), 1)
    stalled_wait_us = sum(wait for _, wait in stalls.values())
    return {
        "stalled_seconds": len(stalls),
        "seconds": sorted(stalls),
        "stall_s": health.get("stall_us", 0) / 1e6,
        "runq_wait_s": health.get("runq_wait_us", 0) / 1e6,
        "runq_wait_share": health.get("runq_wait_us", 0) / (windows * 1e6),
        "runq_wait_share_stalled": stalled_wait_us / (len(stalls) * 1e6) if stalls else 0.0,
        "thread_cpu_s": health.get("thread_cpu_us", 0) / 1e6,
        "loop_gap_max_ms": health.get("loop_gap_max_us", 0) / 1e3,
        "niceness": int(health.get("niceness", 0)),
    }


def likely_causes(actors: Mapping[str, Mapping[str, Any]],
                  nodes: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Why the stalled actors likely stalled, most telling first."""
    stalled = {a: v for a, v in actors.items() if v["stalled_seconds"]}
    if not stalled:
        return []
    causes = []
    nice = sorted({int(v["niceness"]) for v in stalled.values() if v["niceness"] > 0})
    if nice:
        causes.append(f"the sending thread ran at niceness {', '.join(map(str, nice))}: on a "
                      "busy core it gets a small share of the CPU (renice it to 0; with Ray, "
                      "start the nodes with RAY_worker_niceness=0)")
    busy = max(v["runq_wait_share_stalled"] for v in stalled.values())
    if busy > BUSY_CORE_SHARE:
        causes.append(f"its core was busy: the sending thread waited for a CPU {busy:.0%} of "
                      "the stalled seconds (other processes on the client host, or more "
                      "senders than cores)")
    crowded = [n for n in nodes if int(n.get("actors") or 0) > int(n.get("cpus") or 0) > 0]
    for node in crowded:
        causes.append(f"{node['actors']} actors on {node.get('hostname') or node.get('ip')} "
                      f"with {node['cpus']} CPUs")
    if not causes:
        causes.append("the loop's turns were long while it had a CPU: more work per second "
                      "than one sender does (fewer requests per actor, more actors)")
    return causes


def _nodes(total: Aggregate, actors: Mapping[str, Mapping[str, Any]],
           nodes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per node that held a stalled actor: its name (hostname and address from meta's nodes,
    else its id), actors, stalled actors, stalled seconds and stall time."""
    names = {str(n.get("node_id")): " ".join(str(n[k]) for k in ("hostname", "ip") if n.get(k))
             for n in nodes}
    out: dict[str, dict[str, Any]] = {}
    for actor, part in actors.items():
        node = total.actor_nodes.get(int(actor), "")
        entry = out.setdefault(node, {"name": names.get(node) or node[:12] or "unknown",
                                      "actors": 0, "stalled_actors": 0, "seconds": set(),
                                      "stall_s": 0.0})
        entry["actors"] += 1
        if part["stalled_seconds"]:
            entry["stalled_actors"] += 1
            entry["seconds"] |= set(part["seconds"])
            entry["stall_s"] += part["stall_s"]
    return {node: {**e, "stalled_seconds": len(e["seconds"]), "seconds": sorted(e["seconds"])}
            for node, e in out.items() if e["stalled_actors"]}


def sender_summary(total: Aggregate, nodes: Sequence[Mapping[str, Any]] = ()
                   ) -> dict[str, Any]:
    """The ``sender`` part of the summary (``nodes``: meta's nodes, for the CPU count)."""
    actors = {str(actor): _actor(health, total.stalls.get(actor, {}))
              for actor, health in sorted(total.health.items())}
    seconds = sorted({s for stalls in total.stalls.values() for s in stalls})
    windows = sum(int(h.get("windows", 0)) for h in total.health.values())
    return {
        "stalled_seconds": len(seconds),
        "seconds": seconds,
        "stall_s": total.counters["stall_us"] / 1e6,
        "runq_wait_share": total.counters["runq_wait_us"] / (windows * 1e6) if windows else 0.0,
        "loop_gap_max_ms": total.counters["loop_gap_max_us"] / 1e3,
        "late_stall": int(total.counters["late_stall"]),
        "actors": actors,
        "nodes": _nodes(total, actors, nodes),
        "causes": likely_causes(actors, nodes),
    }


def sender_line(sender: Mapping[str, Any] | None) -> list[str]:
    """The lines that open a printed summary when the sender was the bottleneck (else [])."""
    if not sender or not sender.get("stalled_seconds"):
        return []
    lines = [f"sender-bound for {sender['stalled_seconds']} s (seconds "
             f"{seconds_text(sender['seconds'])}): results in those seconds measure rafale, "
             "not the target"]
    for part in (sender.get("nodes") or {}).values():
        lines.append(f"  node {part['name']}: {part['stalled_actors']} of {part['actors']} "
                     f"actors stalled, {part['stall_s']:.1f} s in all, seconds "
                     f"{seconds_text(part['seconds'])}")
    for actor, part in (sender.get("actors") or {}).items():
        if part["stalled_seconds"]:
            lines.append(f"  actor {actor}: stalled {part['stall_s']:.1f} s in "
                         f"{part['stalled_seconds']} s, run-queue wait "
                         f"{part['runq_wait_share_stalled']:.0%} of them, longest loop gap "
                         f"{part['loop_gap_max_ms']:,.0f} ms, niceness {part['niceness']}")
    lines += [f"  likely cause: {cause}" for cause in sender.get("causes") or ()]
    return lines
