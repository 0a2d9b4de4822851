"""Several Ray nodes on one machine (ray.cluster_utils.Cluster): placement and losses.

Three nodes x 1 CPU on loopback. Runs SenderActors striped over one global schedule
against the embedded target, loses one actor mid-run (ray.kill, then a removed node),
hands its stripe to the survivors and checks that the global rate holds afterwards.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import ray
from ray.actor import ActorHandle
from ray.cluster_utils import Cluster

from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.pacing import Schedule
from rafale.cluster import placement
from rafale.cluster.target import Target

pytestmark = [pytest.mark.multinode, pytest.mark.slow]

RATE_PER_S = 300.0
DURATION_S = 6.0
LOSS_AT_S = 2.2  # schedule time of the loss
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


def config(target: Target, index: int, count: int) -> EngineConfig:
    return EngineConfig(
        urls=(target.https_url,), http="2", cacert=str(target.ca_file),
        resolve=tuple(ResolveEntry.parse(r) for r in target.resolve),
        schedule=Schedule.constant(RATE_PER_S, DURATION_S), duration_s=DURATION_S,
        max_in_flight=50, timeout_s=5.0, drain_s=1.0, actor_index=index, actor_count=count,
    )


@dataclass
class Outcome:
    windows: dict[int, list[dict[str, Any]]]  # actor -> drained windows, in order
    lost: int
    lost_at_s: float  # schedule time the loss was detected
    drained_before_loss: list[dict[str, Any]]


def run_and_lose_one(target: Target, lose: Callable[[list[ActorHandle], list[str]], int]
                     ) -> Outcome:
    """3 striped actors at RATE_PER_S; at LOSS_AT_S `lose` ends one (returns its index)."""
    plan = placement.plan_actors("auto")
    handles, _ = placement.place([config(target, i, len(plan)) for i in range(len(plan))], plan)
    windows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    alive = dict(enumerate(handles))
    lost = -1
    lost_at_s = 0.0
    drained_before: list[dict[str, Any]] = []
    start_at = time.time() + 1.0
    try:
        ray.get([h.start.remote(start_at) for h in handles])
        while alive:
            time.sleep(0.2)
            now_s = time.time() - start_at
            drained = all(len(windows[i]) >= int(LOSS_AT_S) for i in alive)
            if lost < 0 and now_s >= LOSS_AT_S and drained:
                lost = lose(handles, plan)
                drained_before = list(windows[lost])
            for index, handle in list(alive.items()):
                try:
                    windows[index] += ray.get(handle.drain.remote(), timeout=5.0)
                    done = ray.get(handle.join.remote(0.0), timeout=5.0)
                except ray.exceptions.RayActorError:
                    assert index == lost, f"actor {index} died but {lost} was the one lost"
                    del alive[index]
                    lost_at_s = now_s
                    survivors = sorted(alive)
                    for stripe, survivor in enumerate(survivors):
                        alive[survivor].set_stripe.remote(stripe, len(survivors))
                    continue
                if done:
                    windows[index] += ray.get(handle.drain.remote(), timeout=5.0)
                    del alive[index]
            assert now_s < DURATION_S + 15, f"run did not end; still alive: {sorted(alive)}"
    finally:
        placement.kill_all(handles)
    return Outcome(dict(windows), lost, lost_at_s, drained_before)


def sent_per_second(outcome: Outcome) -> dict[int, int]:
    totals: dict[int, int] = defaultdict(int)
    for actor_windows in outcome.windows.values():
        for window in actor_windows:
            totals[window["second"]] += window["sent"]
    return dict(totals)


def check_rate_held(outcome: Outcome) -> None:
    assert outcome.lost >= 0
    assert outcome.lost_at_s < DURATION_S - 2, "loss detected too late to check the rate"
    per_second = sent_per_second(outcome)
    print(f"lost actor {outcome.lost} at {outcome.lost_at_s:.2f} s; sent {per_second}")
    # Before the loss every second is at the rate; from the second after the stripes
    # were handed over, too (the second of the loss misses the dead actor's share). The
    # loss waits until every actor's windows before LOSS_AT_S were drained (a window still
    # inside an actor when it dies goes with it).
    before = [per_second[s] for s in range(int(LOSS_AT_S))]
    after = [per_second.get(s, 0) for s in range(int(outcome.lost_at_s) + 1, int(DURATION_S))]
    assert after, per_second
    for second_totals in (before, after):
        for sent in second_totals:
            assert abs(sent - RATE_PER_S) <= 0.05 * RATE_PER_S, (outcome.lost_at_s, per_second)
    # Windows drained before the loss are kept, and cover the seconds before it.
    kept = outcome.windows[outcome.lost]
    assert kept[: len(outcome.drained_before_loss)] == outcome.drained_before_loss
    assert [w["second"] for w in kept] == list(range(len(kept)))
    assert len(kept) >= int(LOSS_AT_S) - 1
    share = RATE_PER_S / 3
    assert all(abs(w["sent"] - share) <= 0.05 * share + 1 for w in kept[: int(LOSS_AT_S)])


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


def test_killed_actor_is_detected_and_survivors_hold_the_rate(nodes: Nodes,
                                                              target: Target) -> None:
    def kill_last(handles: list[ActorHandle], plan: list[str]) -> int:
        ray.kill(handles[-1], no_restart=True)
        return len(handles) - 1

    check_rate_held(run_and_lose_one(target, kill_last))


def test_removed_node_is_detected_and_survivors_hold_the_rate(nodes: Nodes,
                                                              target: Target) -> None:
    assert nodes.cluster.head_node is not None
    head_id = nodes.cluster.head_node.node_id

    def remove_a_worker(handles: list[ActorHandle], plan: list[str]) -> int:
        index = next(i for i, node_id in enumerate(plan) if node_id != head_id)
        nodes.cluster.remove_node(nodes.by_id[plan[index]])
        return index

    outcome = run_and_lose_one(target, remove_a_worker)
    check_rate_held(outcome)
    assert len(placement.nodes()) == 2
