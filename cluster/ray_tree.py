"""Tree mode on Ray (cluster/tree.py): an aggregator actor per node, placed on that node
(node affinity, no CPU of its own), holding its node's sender handles; the driver's
:class:`RayLinks` polls each aggregator as :class:`~rafale.cluster.ray_channel.RayChannel`
polls a sender, and Ray's errors become the same replies."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rafale.actors.priority import renice_process
from rafale.actors.stats import Recorder
from rafale.analysis.node_batch import node_batch
from rafale.cluster import placement
from rafale.cluster.channel import ActorChannel, Dead, Failed
from rafale.cluster.ray_channel import RayChannel, take_ready
from rafale.cluster.tree import NodeAggregator, NodeAnswer, TreeChannel, aggregation_mode
from rafale.cluster.warm import WarmSenders

__all__ = ["AggregatorActor", "RayLinks", "place_aggregators", "run_channel"]

# An aggregator waits this long for its senders' answers to one driver poll (the driver
# waits POLL_WAIT_S, 0.5 s, for the aggregators): a later answer comes with the next poll.
SENDERS_WAIT_S = 0.3


class AggregatorActor:
    """One node's senders (run-wide index -> handle), polled when the driver polls."""

    def __init__(self, handles: Mapping[int, Any], run_id: str, node_id: str) -> None:
        # Ray starts workers at niceness 15; the senders' leases are renewed only through
        # this actor, which must not wait behind the host's other processes.
        renice_process(0)
        self._senders = RayChannel(handles)
        self._node = NodeAggregator(self._senders, sorted(handles), run_id, node_id,
                                    SENDERS_WAIT_S)

    def poll(self) -> NodeAnswer:
        return self._node.poll()

    def ready(self) -> bool:
        """Once every sender has answered a call from here (a new process's first call
        to an actor looks it up through the cluster first) and a poll's work has run once
        (warm_up): the run starts after, with its leases."""
        ray.get([handle.where.remote() for handle in self._senders.handles.values()])
        renice_process(0)  # the threads Ray started since __init__
        warm_up()
        return True


def warm_up() -> None:
    """One window through what a poll does (a NodeBatch built, pickled and read back), so
    that a new process pays its first-use costs (imports, Arrow, the histogram codec) before
    the run, not while its senders' leases run: 264 ms the first time on a quiet machine,
    3.6 ms the second (CI, busy: the first answers came 2-3.5 s late without it)."""
    recorder = Recorder(0)
    recorder.add_intended(1)
    recorder.on_sent(100, False)
    recorder.on_completed(200, "2", "127.0.0.1", 10, 1000, 900, 300, 800)
    recorder.roll(1, in_flight=0, cpu_s_total=0.0, loops_total=0)
    windows = recorder.drain()
    for window in windows:
        window["run_id"], window["node"] = "warm-up", ""
    pickle.loads(pickle.dumps(NodeAnswer({}, node_batch(windows))))


_RemoteAggregator: Any = ray.remote(AggregatorActor)


def place_aggregators(handles: Sequence[Any], node_ids: Sequence[str], run_id: str
                      ) -> dict[str, Any]:
    """An aggregator on each node of the run, given that node's senders."""
    by_node: dict[str, dict[int, Any]] = {}
    for index, (handle, node) in enumerate(zip(handles, node_ids, strict=True)):
        by_node.setdefault(node, {})[index] = handle
    return {node: _RemoteAggregator.options(
        num_cpus=0, max_restarts=0, max_task_retries=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
    ).remote(senders, run_id, node) for node, senders in by_node.items()}


class RayLinks:
    """The run's aggregators by node id (:class:`~rafale.cluster.tree.NodeLinks`)."""

    def __init__(self, aggregators: Mapping[str, Any]) -> None:
        self.aggregators = dict(aggregators)
        self._pending: dict[str, Any] = {}  # node -> its outstanding poll (an ObjectRef)

    def ask(self, node: str) -> None:
        if node not in self._pending:
            self._pending[node] = self.aggregators[node].poll.remote()

    def answers(self, nodes: Sequence[str], wait_s: float
                ) -> dict[str, NodeAnswer | Dead | Failed]:
        return take_ready(self._pending, nodes, wait_s)

    def kill_all(self) -> None:
        placement.kill_all(list(self.aggregators.values()), wait_s=0.0)


def run_channel(asked: str, handles: Sequence[Any], node_ids: Sequence[str],
                warm: WarmSenders | None, run_id: str
                ) -> tuple[ActorChannel, dict[str, str]]:
    """The drain's channel to the placed senders, directly (flat) or through an aggregator
    per node (tree, placed here), and meta.json's "aggregation": the mode and why."""
    mode, why = aggregation_mode(asked, node_ids)
    direct = RayChannel(handles, node_ids, warm)
    if mode == "flat":
        return direct, {"mode": mode, "why": why}
    aggregators = place_aggregators(handles, node_ids, run_id)
    # Up before the senders start: their leases run from the start, renewed only through
    # their aggregator (a new worker process takes seconds to start on a busy machine).
    try:
        ray.get([a.ready.remote() for a in aggregators.values()],
                timeout=placement.READY_TIMEOUT_S)
    except BaseException as exc:
        placement.kill_all(list(aggregators.values()), wait_s=0.0)
        if isinstance(exc, ray.exceptions.RayError):
            raise RuntimeError(f"the nodes' aggregators did not start within "
                               f"{placement.READY_TIMEOUT_S:g} s: {exc}") from exc
        raise
    links = RayLinks(aggregators)
    return TreeChannel(direct, links, dict(enumerate(node_ids))), {"mode": mode, "why": why}
