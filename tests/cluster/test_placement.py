"""Placement on a real local Ray: plan, place, connect, loopback only."""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import time

import psutil
import pytest
import ray

from rafale.actors.config import EngineConfig
from rafale.cluster import doctor, placement
from rafale.cluster.placement import NodeInfo

HEAD = NodeInfo("head", "127.0.0.1", "h0", 2, is_head=True)
W1 = NodeInfo("w1", "127.0.0.2", "h1", 1)
W2 = NodeInfo("w2", "127.0.0.3", "h2", 4)


def configs(count: int) -> list[EngineConfig]:
    return [EngineConfig(urls=("https://rafale.test:8443/",), actor_index=i, actor_count=count)
            for i in range(count)]


# ----- the plan (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("infos", "actors", "reserve", "expected"),
    [
        ([HEAD], "auto", False, ["head", "head"]),
        ([HEAD], "auto", True, ["head"]),
        ([HEAD, W1, W2], "auto", False, ["head"] * 2 + ["w1"] + ["w2"] * 4),
        ([HEAD, W1, W2], 3, False, ["w2", "head", "w1"]),
        ([HEAD, W1, W2], 5, False, ["w2", "head", "w1", "w2", "head"]),
        ([HEAD, W1, W2], 6, True, ["w2", "head", "w1", "w2", "w2", "w2"]),
        ([HEAD], 1, False, ["head"]),
    ],
)
def test_plan_spreads_one_actor_per_cpu(
    infos: list[NodeInfo], actors: int | str, reserve: bool, expected: list[str]
) -> None:
    assert placement.plan_for(infos, actors, reserve) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("infos", "actors", "reserve", "message"),
    [
        ([HEAD], 3, False, r"actors=3 is more than the 2 CPUs available \(h0 2\)"),
        ([HEAD, W1], 4, True, r"actors=4 is more than the 2 CPUs available \(h0 1, h1 1\)"),
        ([HEAD], 0, False, "positive integer, got 0"),
        ([HEAD], "many", False, "'auto' or a positive integer, got 'many'"),
        ([NodeInfo("h", "127.0.0.1", "h0", 1, True)], "auto", True, "no CPU left"),
    ],
)
def test_plan_refuses_what_does_not_fit(
    infos: list[NodeInfo], actors: int | str, reserve: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        placement.plan_for(infos, actors, reserve)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [("head:6379", "head", 6379), ("ray://head:10001", "head", 10001), ("head", "head", 6379),
     ("ray://head", "head", 10001), ("[::1]:7000", "::1", 7000), ("192.0.2.10:6380",
                                                                  "192.0.2.10", 6380)],
)
def test_parse_address(address: str, host: str, port: int) -> None:
    assert placement.parse_address(address) == (host, port)


@pytest.mark.parametrize("address", ["head:port", ":6379", "head:70000"])
def test_bad_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match=address.replace("[", r"\[")):
        placement.parse_address(address)


# ----- a real local Ray -------------------------------------------------------------------


def unused_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", ["refused", "unused", "client"])
def test_unreachable_address_fails_fast_and_names_it(kind: str) -> None:
    ray.shutdown()
    address = {"refused": "127.0.0.1:1", "unused": f"127.0.0.1:{unused_loopback_port()}",
               "client": f"ray://127.0.0.1:{unused_loopback_port()}"}[kind]
    began = time.monotonic()
    with pytest.raises(ValueError, match=f"Ray cluster at '{address}' does not answer"):
        placement.connect(address)
    assert time.monotonic() - began < 10
    assert not ray.is_initialized()


def test_auto_places_one_actor_per_cpu_on_the_planned_node(local_ray: None) -> None:
    infos = placement.nodes()
    assert len(infos) == 1 and infos[0].cpus == os.cpu_count() and infos[0].is_head
    plan = placement.plan_actors("auto")
    assert plan == [infos[0].node_id] * infos[0].cpus
    handles, where = placement.place(configs(len(plan)), plan)
    try:
        assert [w["node_id"] for w in where] == plan
        assert len({w["pid"] for w in where}) == len(plan)
        assert {w["ip"] for w in where} == {"127.0.0.1"}
        # The local Ray starts its workers at niceness 0 (Ray's default is 15) and leaves
        # the driver's environment as it was.
        assert {(w["niceness_started"], w["niceness"]) for w in where} == {(0, 0)}
        assert "RAY_worker_niceness" not in os.environ
    finally:
        placement.kill_all(handles)


def test_connect_is_idempotent(local_ray: None) -> None:
    node = ray.get_runtime_context().get_node_id()
    placement.connect(None)
    placement.connect(None)
    assert ray.is_initialized()
    assert ray.get_runtime_context().get_node_id() == node


def test_place_refuses_mismatched_lists(local_ray: None) -> None:
    with pytest.raises(ValueError, match="2 configs but 1 node ids"):
        placement.place(configs(2), ["x"])


def test_place_on_a_missing_node_fails_before_the_run(local_ray: None) -> None:
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="actor 0 could not start on node abab"):
        placement.place(configs(1), ["ab" * 28], ready_timeout_s=5.0)
    assert time.monotonic() - began < 5.0


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def test_ray_listens_only_on_loopback(local_ray: None) -> None:
    handles, _ = placement.place(configs(1), placement.plan_actors(1))  # a worker listens too
    try:
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
        names = {p.name() for p in processes}
        assert {"gcs_server", "raylet"} <= names, names
        bound = []
        for process in processes:
            try:
                conns = process.net_connections(kind="inet")
            except psutil.Error:
                continue
            for conn in conns:
                if conn.laddr and (conn.status == psutil.CONN_LISTEN
                                   or conn.type == socket.SOCK_DGRAM):
                    bound.append((process.name(), conn.laddr.ip, conn.laddr.port))
        assert len(bound) >= 5, bound
        outside = [b for b in bound if not _is_loopback(b[1])]
        assert not outside, f"listening beyond loopback: {outside}"
    finally:
        placement.kill_all(handles)


def test_doctor_checks_every_node(local_ray: None) -> None:
    out = io.StringIO()
    code = doctor.main(planned_connections=100, out=out)
    assert code == 0, out.getvalue()
    report = out.getvalue()
    for check in ("open files", "ephemeral ports", "somaxconn", "tcp_tw_reuse"):
        assert check in report
    assert doctor.main(planned_connections=10**9, out=io.StringIO()) == 1
