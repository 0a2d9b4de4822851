"""Several Ray nodes on one machine (ray.cluster_utils.Cluster): placement.

Three nodes x 1 CPU on loopback: `auto` places one actor per node CPU. Losses are tested
with the real driver (tests/faults/test_run_faults.py: a killed actor, a removed node; the
testbed: a cut host) and, as logic, on the in-memory channel (tests/cluster/test_drain.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from rafale.actors.config import EngineConfig
from rafale.cluster import placement

pytestmark = [pytest.mark.multinode, pytest.mark.slow]

FAST_NODE_DEATH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                   "health_check_timeout_ms": 500}


@dataclass
class Nodes:
    cluster: Cluster
    by_id: dict[str, Any] = field(default_factory=dict)  # node id -> ray._private.node.Node


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    """Head + 2 workers, 1 CPU each, bound to loopback; shut down even on failure."""
    ray.shutdown()  # this module owns its Ray
    cluster = Cluster(shutdown_at_exit=True)
    try:
        with placement.loopback_ray():
            head = cluster.add_node(num_cpus=1, include_dashboard=False,
                                    _system_config=FAST_NODE_DEATH)
            workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        placement.connect(cluster.address)
        found = Nodes(cluster)
        for node in (head, *workers):
            found.by_id[node.node_id] = node
        yield found
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_auto_places_one_actor_per_node_cpu(nodes: Nodes) -> None:
    infos = placement.nodes()
    assert len(infos) == 3 and all(n.cpus == 1 for n in infos)
    assert {n.ip for n in infos} == {"127.0.0.1"}
    plan = placement.plan_actors("auto")
    assert sorted(plan) == sorted(nodes.by_id)
    handles, where = placement.place([EngineConfig(urls=("https://rafale.test/",),
                                                   actor_index=i, actor_count=3)
                                      for i in range(3)], plan)
    try:
        assert [w["node_id"] for w in where] == plan
    finally:
        placement.kill_all(handles)
