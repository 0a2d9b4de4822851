"""Ray placement: connect, list nodes, plan one sender per CPU, place and kill actors.

Local Ray (``address=None``) listens on loopback only. Ray turns a node address of
127.0.0.1 into the host's outward address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
(the setting Ray uses on laptops); with it, GCS, raylet, agents and workers all bind
the node address, 127.0.0.1 (see :func:`loopback_ray`). Usage stats reporting is off.
Its workers run at niceness 0 (``RAY_worker_niceness=0``; Ray's default is 15, which
starves a sender on a busy core); the user's environment is left as it was.

Actors are pinned with ``NodeAffinitySchedulingStrategy(node_id, soft=False)`` and
``num_cpus=1``, not a placement group: the driver already chooses the node of every
actor (one per CPU, striped), so a group's bundle reservation would add a step and a
lifetime to manage and nothing else; a hard pin also means a lost node ends its actors
instead of moving them, and the driver hands their stripes to the survivors.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import rafale
from rafale.actors.config import EngineConfig
from rafale.actors.sender import SenderActor
from rafale.cluster.warm import WarmSenders

PACKAGE_DIR = Path(rafale.__file__).resolve().parent
CONTROL_CONCURRENCY = 8  # start() returns at once; control calls never queue behind it
PROBE_TIMEOUT_S = 3.0
READY_TIMEOUT_S = 60.0
_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
LOCAL_RAY_ENV = {  # what rafale sets for the local Ray it starts
    "RAY_worker_niceness": "0",  # senders must not be starved (Ray's: 15)
    # Ray starts a worker per CPU for tasks when the first driver connects; rafale runs
    # actors, which get workers of their own: the idle ones cost ~1.3 CPU-s each to start
    # and ~1 % of a core each while idle, beside the senders (measured, 2 CPUs).
    "RAY_prestart_worker_first_driver": "0",
    # Ray's own metrics, task events and event-loop stats, which rafale does not read (it
    # measures every request itself): an idle local Ray with two actors 6.0 -> 4.8 % of a
    # core (30 s, measured).
    "RAY_enable_metrics_collection": "0",
    "RAY_task_events_report_interval_ms": "0",
    "RAY_event_stats": "0",
}
_QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
_HEAD_RESOURCE = "node:__internal_head__"


@dataclass(frozen=True)
class NodeInfo:
    """One alive Ray node."""

    node_id: str
    ip: str
    hostname: str
    cpus: int
    is_head: bool = False


# ----- connecting -------------------------------------------------------------------------


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (inherited by processes started inside), then restored."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def loopback_ray() -> Iterator[None]:
    """Ray processes started inside bind 127.0.0.1 (GCS, raylet, agents, workers).

    Sets the environment the started processes inherit, and Ray's own switch in this
    process, then restores both: a later connection to a remote cluster is unaffected.
    """
    from ray._private import ray_constants

    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        with environ(_LOOPBACK_ENV):
            yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag


def parse_address(address: str) -> tuple[str, int]:
    """Host and port to probe for ``host:port``, ``ray://host:port`` or ``[v6]:port``."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").rstrip("/")
    default_port = 10001 if client else 6379
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail.removeprefix(":")
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""
    if not host or (port_text and not port_text.isdigit()):
        raise ValueError(f"Ray address {address!r} is malformed; expected HOST:PORT "
                         "(e.g. head:6379) or ray://HOST:PORT (e.g. ray://head:10001)")
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise ValueError(f"Ray address {address!r} has port {port} out of range 1..65535")
    return host, port


# The client connection preface of HTTP/2 and an empty SETTINGS frame. The GCS and the Ray
# client server are gRPC servers: they answer with a SETTINGS frame (type 4) at once.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4


def _speaks_grpc(conn: socket.socket) -> bool:
    """True if the peer answers the HTTP/2 preface with a SETTINGS frame header."""
    conn.sendall(_H2_PREFACE)
    header = b""
    while len(header) < 9:
        chunk = conn.recv(9 - len(header))
        if not chunk:
            return False
        header += chunk
    return header[3] == _H2_SETTINGS


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ValueError naming ``address`` unless a gRPC server (Ray's GCS or client
    server) answers there within ``timeout_s``: ``ray.init`` itself waits ~60 s."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            if _speaks_grpc(conn):
                return
            reason = "it answered, but not as a Ray (gRPC) server"
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
    raise ValueError(
        f"Ray cluster at {address!r} does not answer ({host}:{port}: {reason} within "
        f"{timeout_s:g} s); start it with `ray start --head --port={port}` on that host, "
        "or leave the address out to start a local Ray"
    )


def connect(address: str | None = None, *, probe_timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Connect to Ray once; re-running (e.g. a notebook cell) keeps the connection.

    ``None`` (or "local") starts a local Ray on loopback, dashboard off. Otherwise
    ``host:port`` (GCS) or ``ray://host:port`` (Ray client): the port is probed first so
    that an address that does not answer fails within ``probe_timeout_s``, and the
    ``rafale`` package is shipped to the cluster's nodes (``runtime_env`` py_modules), so
    nodes need only rafale's dependencies.
    """
    if ray.is_initialized():
        return
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                             "configure_logging": True}
    if address in (None, "local"):
        # Ray warns on every start that token authentication is on by default; rafale's
        # own Ray listens on loopback only and keeps it on: the warning says nothing here.
        token_notice = logging.getLogger("ray._private.authentication."
                                         "authentication_token_setup")
        level = token_notice.level
        token_notice.setLevel(logging.ERROR)
        try:
            with loopback_ray(), environ(LOCAL_RAY_ENV):
                ray.init(address="local", _node_ip_address="127.0.0.1",
                         include_dashboard=False, dashboard_host="127.0.0.1", **quiet)
        finally:
            token_notice.setLevel(level)
        return
    assert address is not None
    on_loopback = False
    if address != "auto":
        probe(address, probe_timeout_s)
        on_loopback = _is_loopback(parse_address(address)[0])
    # Ray rewrites a loopback address to the host's outward one unless told not to; a
    # cluster on this machine bound to loopback (tests, one-host demos) needs the switch.
    with loopback_ray() if on_loopback else contextlib.nullcontext():
        ray.init(address=address, runtime_env={"py_modules": [str(package_for_nodes())]},
                 **quiet)


def package_for_nodes(staging: Path | None = None) -> Path:
    """A copy of the ``rafale`` package, links resolved, for ``runtime_env`` py_modules.

    In a source tree rafale/actors, rafale/cluster and rafale/analysis are links to the
    top-level folders; Ray zips a py_modules folder as it finds it, so the links are
    copied as files here (``__pycache__`` left out). The copy is made once per process.
    """
    global _STAGED
    if _STAGED is not None and staging is None:
        return _STAGED
    root = Path(staging) if staging is not None else Path(tempfile.mkdtemp(prefix="rafale-py-"))
    target = root / "rafale"
    shutil.copytree(PACKAGE_DIR, target, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if staging is None:
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _STAGED = target
    return target


_STAGED: Path | None = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ----- nodes and the plan -----------------------------------------------------------------


def nodes() -> list[NodeInfo]:
    """Alive nodes with their CPUs (head first, then by node id)."""
    found = [
        NodeInfo(
            node_id=str(node["NodeID"]),
            ip=str(node.get("NodeManagerAddress", "")),
            hostname=str(node.get("NodeManagerHostname", "")),
            cpus=int(node.get("Resources", {}).get("CPU", 0)),
            is_head=_HEAD_RESOURCE in node.get("Resources", {}),
        )
        for node in ray.nodes()
        if node.get("Alive")
    ]
    return sorted(found, key=lambda n: (not n.is_head, n.node_id))


def _capacity(infos: Sequence[NodeInfo], reserve_driver_cpu: bool) -> list[tuple[str, int]]:
    """(node_id, actors it can hold) per node: its CPUs, one fewer on the head if asked."""
    return [(n.node_id, max(n.cpus - (1 if reserve_driver_cpu and n.is_head else 0), 0))
            for n in infos]


def plan_for(infos: Sequence[NodeInfo], actors: int | Literal["auto"],
             reserve_driver_cpu: bool = False) -> list[str]:
    """The node id of every actor, from a node list (pure; see :func:`plan_actors`)."""
    capacity = _capacity(infos, reserve_driver_cpu)
    total = sum(cpus for _, cpus in capacity)
    described = ", ".join(f"{n.hostname or n.ip} {c}" for n, (_, c) in zip(infos, capacity,
                                                                              strict=True))
    if actors == "auto":
        if total == 0:
            raise ValueError(f"no CPU left for senders (CPUs per node: {described or 'none'}"
                             f"{', one kept for the driver' if reserve_driver_cpu else ''})")
        return [node_id for node_id, cpus in capacity for _ in range(cpus)]
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ValueError(f"actors must be 'auto' or a positive integer, got {actors!r}")
    if actors > total:
        raise ValueError(f"actors={actors} is more than the {total} CPUs available "
                         f"({described or 'no node'}); use actors='auto' or at most {total}")
    # Round-robin over the nodes with the most CPUs first, each up to its CPUs.
    order = sorted(capacity, key=lambda item: -item[1])
    left = dict(order)
    plan: list[str] = []
    while len(plan) < actors:
        for node_id, _ in order:
            if left[node_id] > 0 and len(plan) < actors:
                plan.append(node_id)
                left[node_id] -= 1
    return plan


def plan_actors(actors: int | Literal["auto"], reserve_driver_cpu: bool = False) -> list[str]:
    """Node id per actor: ``auto`` = one per CPU on every node; N = spread over nodes."""
    return plan_for(nodes(), actors, reserve_driver_cpu)


# ----- actors -----------------------------------------------------------------------------

_RemoteSender: Any = ray.remote(SenderActor)  # typed loosely: Ray stubs do not fit threaded actors


def place(configs: Sequence[EngineConfig], node_ids: Sequence[str], *,
          ready_timeout_s: float = READY_TIMEOUT_S, warm: WarmSenders | None = None
          ) -> tuple[list[ActorHandle], list[dict[str, Any]]]:
    """One SenderActor per config on its node; returns the handles and every actor's
    where() answer (node id, hostname, ip, pid, libcurl) once all have answered.

    With ``warm``, an idle sender of the series on the same node is reset for its config
    instead of starting a new one (a new one replaces it if the reset fails). Raises
    RuntimeError (after killing what was placed) if an actor does not answer within
    ``ready_timeout_s`` or reports another node than planned.
    """
    if len(configs) != len(node_ids):
        raise ValueError(f"{len(configs)} configs but {len(node_ids)} node ids; "
                         "give one node id per config")
    handles: list[ActorHandle] = []
    refs: list[Any] = []
    reset: list[int] = []  # the warm senders, by position
    for config, node_id in zip(configs, node_ids, strict=True):
        handle = warm.take(node_id) if warm is not None else None
        if handle is not None:
            reset.append(len(handles))
            handles.append(handle)
            refs.append(handle.reset.remote(config))
        else:
            handles.append(_new_sender(config, node_id))
            refs.append(handles[-1].where.remote())
    _replace_failed_resets(reset, configs, node_ids, handles, refs, ready_timeout_s)
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=ready_timeout_s)
    try:
        if len(ready) < len(refs):
            waiting = [f"actor {i} on node {node_ids[i][:12]}"
                       for i, ref in enumerate(refs) if ref not in ready]
            raise RuntimeError(
                f"{len(waiting)} of {len(refs)} actors not ready after {ready_timeout_s:g} s: "
                f"{', '.join(waiting)}; are that node's CPUs held by another run's actors?")
        wheres: list[dict[str, Any]] = []
        for i, ref in enumerate(refs):
            try:
                where = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise RuntimeError(f"actor {i} could not start on node {node_ids[i]}: "
                                   f"{exc}") from exc
            if where["node_id"] != node_ids[i]:
                raise RuntimeError(f"actor {i} runs on node {where['node_id']}, "
                                   f"not on the planned node {node_ids[i]}")
            wheres.append(where)
    except BaseException:
        kill_all(handles)
        raise
    return handles, wheres


def _new_sender(config: EngineConfig, node_id: str) -> ActorHandle:
    handle: ActorHandle = _RemoteSender.options(
        num_cpus=1,
        max_concurrency=CONTROL_CONCURRENCY,
        max_restarts=0,
        max_task_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(config)
    return handle


def _replace_failed_resets(reset: Sequence[int], configs: Sequence[EngineConfig],
                           node_ids: Sequence[str], handles: list[ActorHandle],
                           refs: list[Any], timeout_s: float) -> None:
    """A warm sender whose reset failed (gone, or still sending) is killed and replaced
    by a new sender, in place in ``handles`` and ``refs``."""
    for i in reset:
        try:
            ray.get(refs[i], timeout=timeout_s)
        except ray.exceptions.RayError:
            kill_all([handles[i]], wait_s=0.0)
            handles[i] = _new_sender(configs[i], node_ids[i])
            refs[i] = handles[i].where.remote()


def alive_node_ids() -> set[str] | None:
    """Ids of the alive Ray nodes, or None when Ray cannot tell right now."""
    try:
        return {n.node_id for n in nodes()}
    except Exception:  # noqa: BLE001 - Ray busy: assume nothing changed
        return None


def node_infos(node_ids: list[str]) -> list[dict[str, Any]]:
    """Every alive node (id, ip, hostname, CPUs) with how many of the run's actors it holds."""
    return [{"node_id": n.node_id, "ip": n.ip, "hostname": n.hostname, "cpus": n.cpus,
             "actors": node_ids.count(n.node_id)} for n in nodes()]


def kill_all(handles: Sequence[ActorHandle], wait_s: float = 5.0) -> None:
    """Kill every actor (no restart), then wait up to ``wait_s`` until their CPUs are free."""
    for handle in handles:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + wait_s
    for handle in handles:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        with contextlib.suppress(Exception):
            ray.get(handle.where.remote(), timeout=left)
