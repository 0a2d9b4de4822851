"""``rafale doctor``: check every node's limits against the planned connections.

One Ray task per node (pinned with NodeAffinity, ``num_cpus=0`` so that it runs even
while senders hold every CPU) reads the limits as a sender there would see them: the
open-files limit of a process started by that node's raylet, the niceness Ray gives its
workers (and whether a worker may lower it), the ephemeral port range,
``net.core.somaxconn`` and ``net.ipv4.tcp_tw_reuse``. :func:`check_node` turns them into
findings with advice; it is pure and testable without Ray.
"""

from __future__ import annotations

import os
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from rafale.actors.priority import ADVICE, niceness
from rafale.cluster.options import FD_OVERHEAD

Severity = Literal["ok", "info", "warn", "error"]
LOW_NOFILE = 4096
LOW_SOMAXCONN = 4096
_PROC = Path("/proc/sys/net")


@dataclass(frozen=True)
class NodeLimits:
    """What one node allows a sender process (None: not readable there)."""

    node: str
    nofile_soft: int
    nofile_hard: int
    port_range: tuple[int, int] | None
    somaxconn: int | None
    tcp_tw_reuse: int | None
    niceness: int | None = None  # of a worker process there, as Ray started it
    can_lower_niceness: bool | None = None


@dataclass(frozen=True)
class Finding:
    node: str
    check: str
    value: str
    severity: Severity
    advice: str


def _read_ints(path: Path) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return None


def read_limits(node: str | None = None) -> NodeLimits:
    """The limits of this process and host."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ports = _read_ints(_PROC / "ipv4/ip_local_port_range")
    somaxconn = _read_ints(_PROC / "core/somaxconn")
    tw_reuse = _read_ints(_PROC / "ipv4/tcp_tw_reuse")
    nice, can_lower = _niceness()
    unlimited = 1 << 40
    return NodeLimits(
        node=node or socket.gethostname(),
        nofile_soft=unlimited if soft == resource.RLIM_INFINITY else soft,
        nofile_hard=unlimited if hard == resource.RLIM_INFINITY else hard,
        port_range=(ports[0], ports[1]) if ports and len(ports) == 2 else None,
        somaxconn=somaxconn[0] if somaxconn else None,
        tcp_tw_reuse=tw_reuse[0] if tw_reuse else None,
        niceness=nice,
        can_lower_niceness=can_lower,
    )


def _niceness() -> tuple[int, bool]:
    """This thread's niceness, and whether it may lower it to 0 (tried, then restored)."""
    nice = niceness()
    if nice <= 0:
        return nice, True
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        return nice, False
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    return nice, True


def _nice(limits: NodeLimits) -> Finding:
    if limits.niceness is None:
        return Finding(limits.node, "worker niceness", "unknown", "info", "")
    value = str(limits.niceness)
    if limits.niceness <= 0:
        return Finding(limits.node, "worker niceness", value, "ok", "")
    if limits.can_lower_niceness:
        return Finding(limits.node, "worker niceness", value, "info",
                       "senders lower theirs to 0 (allowed here); still, " + ADVICE)
    return Finding(limits.node, "worker niceness", value, "warn",
                   "senders stay at this niceness and lose their timing on a busy core; "
                   + ADVICE)


def _nofile(limits: NodeLimits, per_process: int | None) -> Finding:
    value = f"soft {limits.nofile_soft}, hard {limits.nofile_hard}"
    raise_it = ("raise it before starting Ray on this node: `ulimit -n $(ulimit -Hn)` (up "
                "to the hard limit; above it, `nofile` in /etc/security/limits.conf or "
                "LimitNOFILE= for a service)")
    if per_process is None:
        if limits.nofile_soft < LOW_NOFILE:
            return Finding(limits.node, "open files", value, "warn",
                           f"low for load tests (< {LOW_NOFILE}); {raise_it}")
        return Finding(limits.node, "open files", value, "ok", "")
    need = per_process + FD_OVERHEAD
    if limits.nofile_hard < need:
        return Finding(limits.node, "open files", value, "error",
                       f"a sender needs about {need} ({per_process} connections + "
                       f"{FD_OVERHEAD}); the hard limit is lower: {raise_it}")
    if limits.nofile_soft < need:
        return Finding(limits.node, "open files", value, "warn",
                       f"a sender needs about {need}, above the soft limit; raise it "
                       f"(`ulimit -n {limits.nofile_hard}`) before `ray start`")
    return Finding(limits.node, "open files", value, "ok", f"enough for {need}")


def _ports(limits: NodeLimits, per_node: int | None) -> Finding:
    if limits.port_range is None:
        return Finding(limits.node, "ephemeral ports", "unreadable", "info",
                       "could not read /proc/sys/net/ipv4/ip_local_port_range")
    low, high = limits.port_range
    size = high - low + 1
    value = f"{low}-{high} ({size})"
    widen = "widen it: `sysctl -w net.ipv4.ip_local_port_range='1024 65535'`"
    if per_node is not None and per_node > size:
        return Finding(limits.node, "ephemeral ports", value, "error",
                       f"{per_node} connections from this node to one address need more "
                       f"local ports than the range has; {widen}, or pin over more addresses")
    if per_node is not None and per_node > size // 2:
        return Finding(limits.node, "ephemeral ports", value, "warn",
                       f"{per_node} connections to one address use over half the range "
                       f"(TIME_WAIT holds ports after close); {widen}")
    return Finding(limits.node, "ephemeral ports", value, "ok", "")


def _somaxconn(limits: NodeLimits) -> Finding:
    if limits.somaxconn is None:
        return Finding(limits.node, "somaxconn", "unreadable", "info", "")
    if limits.somaxconn < LOW_SOMAXCONN:
        return Finding(limits.node, "somaxconn", str(limits.somaxconn), "warn",
                       "caps the accept backlog of a target on this host; for a local "
                       "target: `sysctl -w net.core.somaxconn=65535`")
    return Finding(limits.node, "somaxconn", str(limits.somaxconn), "ok",
                   "matters on the target host (accept backlog), not for senders")


def _tw_reuse(limits: NodeLimits) -> Finding:
    meaning = {0: "off", 1: "on", 2: "loopback only"}
    value = limits.tcp_tw_reuse
    if value is None:
        return Finding(limits.node, "tcp_tw_reuse", "unreadable", "info", "")
    shown = f"{value} ({meaning.get(value, '?')})"
    if value == 1:
        return Finding(limits.node, "tcp_tw_reuse", shown, "ok", "")
    return Finding(limits.node, "tcp_tw_reuse", shown, "info",
                   "senders reuse connections, so TIME_WAIT only builds up with connection "
                   "churn (errors, restarts); then `sysctl -w net.ipv4.tcp_tw_reuse=1`")


def check_node(limits: NodeLimits, planned_connections: int | None = None,
               senders_on_node: int = 1) -> list[Finding]:
    """Findings for one node. ``planned_connections``: per sender (process)."""
    per_node = None if planned_connections is None else planned_connections * senders_on_node
    return [_nofile(limits, planned_connections), _nice(limits), _ports(limits, per_node),
            _somaxconn(limits), _tw_reuse(limits)]


def worst(findings: Sequence[Finding]) -> Severity:
    order: list[Severity] = ["ok", "info", "warn", "error"]
    return max((f.severity for f in findings), key=order.index, default="ok")


def print_findings(findings: Sequence[Finding], out: TextIO | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    colour = {"ok": "green", "info": "blue", "warn": "yellow", "error": "bold red"}
    table = Table(title="rafale doctor")
    for column in ("node", "check", "value", "", "advice"):
        table.add_column(column, overflow="fold")
    for f in findings:
        table.add_row(f.node, f.check, f.value, f"[{colour[f.severity]}]{f.severity}[/]",
                      f.advice)
    Console(file=out, width=140).print(table)


def _limits_on(node_id: str, ip: str) -> NodeLimits:
    return read_limits(f"{socket.gethostname()} {ip} ({node_id[:8]})")


def gather(address: str | None = None) -> list[tuple[NodeLimits, int]]:
    """(limits, CPUs = senders with actors='auto') of every alive node, via Ray tasks."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from rafale.cluster import placement

    placement.connect(address)
    infos = placement.nodes()
    task = ray.remote(num_cpus=0, max_retries=0)(_limits_on)
    refs = [
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False))
        .remote(n.node_id, n.ip)
        for n in infos
    ]
    return list(zip(ray.get(refs, timeout=60), (n.cpus for n in infos), strict=True))


def main(planned_connections: int | None = None, address: str | None = None,
         out: TextIO | None = None) -> int:
    """Check every node; print findings; 1 if any is a hard problem, else 0.

    ``planned_connections`` is per sender: ``max_connections`` or ``max_in_flight``
    (HTTP/1.1 opens one connection per request in flight).
    """
    findings = [f for limits, cpus in gather(address)
                for f in check_node(limits, planned_connections, max(cpus, 1))]
    print_findings(findings, out)
    return 1 if worst(findings) == "error" else 0
