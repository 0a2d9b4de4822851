"""Per-node aggregation (tree mode): one aggregator per node polls that node's senders for
the driver and answers with one :class:`~rafale.analysis.node_batch.NodeBatch` (the node's
windows as Arrow rows, each second already merged) and each sender's status.

The driver's work per second then grows with nodes, not senders
(``benchmarks/driver_tree.py``). The aggregator polls its senders only when the driver
polls it, so a sender's lease is renewed only while the driver reaches its node: cut off
from the driver, the node's senders fence themselves as before, and a lost aggregator loses
its node's senders with it (shared fate: nobody renews their leases; today's leases,
takeover and gap rules apply).
Control calls (stop, set_stripe, catch_up...) still go to the senders directly.

:class:`TreeChannel` is the driver's :class:`~rafale.cluster.channel.ActorChannel` in tree
mode, over a :class:`NodeLinks` (the aggregators as Ray actors in ``cluster/ray_tree.py``,
in memory in the tests). :class:`NodeAggregator` is what an aggregator does, over the
node's senders as an ActorChannel. No Ray here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rafale.analysis.node_batch import NodeBatch, node_batch
from rafale.cluster.channel import ActorChannel, Answered, Dead, Failed, Reply, tag_windows

__all__ = ["TREE_MIN_ACTORS_PER_NODE", "NodeAggregator", "NodeAnswer", "NodeLinks",
           "TreeChannel", "aggregation_mode"]

# auto: the tree pays once a node has this many senders and there are several nodes; below
# it the driver polls the senders itself (one hop less, no aggregator process per node).
TREE_MIN_ACTORS_PER_NODE = 8


def aggregation_mode(asked: str, node_ids: Sequence[str]) -> tuple[str, str]:
    """``flat`` or ``tree`` for a run whose actors are on these nodes, and why (meta.json)."""
    per_node: dict[str, int] = {}
    for node in node_ids:
        per_node[node] = per_node.get(node, 0) + 1
    shape = f"{len(node_ids)} actors on {len(per_node)} node(s)"
    if asked in ("flat", "tree"):
        return asked, f"asked for ({shape})"
    if len(per_node) > 1 and max(per_node.values()) >= TREE_MIN_ACTORS_PER_NODE:
        return "tree", f"{shape}: an aggregator per node (auto)"
    return "flat", (f"{shape}: the driver polls the senders (auto: tree from 2 nodes with "
                    f"{TREE_MIN_ACTORS_PER_NODE} actors on one)")


@dataclass(frozen=True)
class NodeAnswer:
    """An aggregator's answer to one driver poll: each sender's reply (an Answered one
    without its windows, which are in ``batch``) and the node's windows, if any."""

    replies: dict[int, Reply]
    batch: NodeBatch | None


class NodeAggregator:
    """One node's senders (run-wide indices ``actors``), polled for the driver."""

    def __init__(self, senders: ActorChannel, actors: Sequence[int], run_id: str,
                 node_id: str, wait_s: float) -> None:
        self.senders = senders
        self.actors = list(actors)
        self.run_id = run_id
        self.node_id = node_id
        self.wait_s = wait_s

    def poll(self) -> NodeAnswer:
        """Ask every sender (one poll outstanding each) and take what answered within
        ``wait_s``; a sender's late answer comes with a later poll."""
        for actor in self.actors:
            self.senders.ask(actor)
        windows: list[dict[str, Any]] = []
        replies: dict[int, Reply] = {}
        for actor, reply in self.senders.replies(self.actors, self.wait_s).items():
            if isinstance(reply, Answered):
                answer = reply.answer
                last = tag_windows(answer["windows"], self.run_id, self.node_id)
                windows += answer["windows"]
                reply = Answered({**answer, "windows": []}, last_second=last)
            replies[actor] = reply
        return NodeAnswer(replies, node_batch(windows) if windows else None)


class NodeLinks(Protocol):
    """The driver's side of the run's aggregators, one per node id."""

    def ask(self, node: str) -> None:
        """A poll to this node's aggregator, unless one is outstanding."""

    def answers(self, nodes: Sequence[str], wait_s: float
                ) -> dict[str, NodeAnswer | Dead | Failed]:
        """The outstanding polls of these nodes that ended within ``wait_s`` (an
        unreachable aggregator is left out, as an unreachable sender is)."""

    def kill_all(self) -> None:
        """End every aggregator."""


class TreeChannel:
    """The senders polled through their nodes' aggregators; everything else goes to the
    senders directly (``direct``)."""

    def __init__(self, direct: ActorChannel, links: NodeLinks,
                 node_of: Mapping[int, str]) -> None:
        self.direct = direct
        self.links = links
        self.node_of = dict(node_of)
        self._actors_of: dict[str, list[int]] = {}
        for actor, node in self.node_of.items():
            self._actors_of.setdefault(node, []).append(actor)
        self._asked: set[int] = set()
        self._batches: list[NodeBatch] = []

    def ask(self, actor: int) -> None:
        self._asked.add(actor)
        self.links.ask(self.node_of[actor])

    def replies(self, actors: Sequence[int], wait_s: float) -> dict[int, Reply]:
        nodes = sorted({self.node_of[a] for a in actors if a in self._asked})
        found: dict[int, Reply] = {}
        for node, answer in self.links.answers(nodes, wait_s).items():
            mine = [a for a in self._actors_of[node] if a in self._asked]
            self._asked.difference_update(mine)
            if isinstance(answer, NodeAnswer):
                found.update(answer.replies)
                if answer.batch is not None:
                    self._batches.append(answer.batch)
            else:
                # The aggregator is gone or failed; its senders may still send until their
                # leases, which nobody renews now, stop them: they are lost by the lease as
                # silent senders are (at once if their node is gone), never taken over early.
                why = (f"the aggregator of node {node}: {answer.why}; its senders are lost "
                       "by their lease unless it answers again")
                found.update({a: Failed(why) for a in mine})
        return found

    def node_batches(self) -> list[NodeBatch]:
        batches, self._batches = self._batches, []
        return batches

    def call(self, actor: int, method: str, *args: Any) -> None:
        self.direct.call(actor, method, *args)

    def call_all(self, actors: Sequence[int], method: str, *args: Any,
                 wait_for: Sequence[int] = (), timeout_s: float = 0.0) -> None:
        self.direct.call_all(actors, method, *args, wait_for=wait_for, timeout_s=timeout_s)

    def first_answers(self, actor: int, timeout_s: float) -> dict[str, str] | None:
        return self.direct.first_answers(actor, timeout_s)

    def alive_nodes(self) -> set[str] | None:
        return self.direct.alive_nodes()

    def kill_all(self) -> None:
        self.links.kill_all()
        self.direct.kill_all()

    def release(self, finished: Sequence[int]) -> None:
        self.links.kill_all()
        self.direct.release(finished)
