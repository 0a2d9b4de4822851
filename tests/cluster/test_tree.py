"""Tree mode (cluster/tree.py) on the in-memory channel: when it is chosen, one poll per
node per tick, the same log as the driver polling every sender itself, and a lost
aggregator losing its node's senders (the drain's other scenarios run in both modes in
test_drain.py; a real run through an aggregator is in test_run.py, a cut host in tree
mode on the namespace testbed in test_testbed_faults.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from rafale.cluster.drain import SILENT_NOTICE_S, Drain
from rafale.cluster.spec import RunSpec
from rafale.cluster.tree import TREE_MIN_ACTORS_PER_NODE, aggregation_mode
from tests.cluster.fakechannel import FakeChannel, FakeClock, FakeLinks, tree_of

RATE, DURATION_S, LEASE_S = 100, 10, 2.0
NODES = ("node-a", "node-b")


@pytest.mark.parametrize(("asked", "per_node", "mode"), [
    ("auto", (TREE_MIN_ACTORS_PER_NODE, 1), "tree"),
    ("auto", (TREE_MIN_ACTORS_PER_NODE - 1, TREE_MIN_ACTORS_PER_NODE - 1), "flat"),
    ("auto", (64,), "flat"),  # one node: the aggregator would be one more hop
    ("flat", (64, 64), "flat"),
    ("tree", (1,), "tree"),
])
def test_auto_takes_the_tree_from_two_nodes_with_enough_actors_on_one(
        asked: str, per_node: tuple[int, ...], mode: str) -> None:
    node_ids = [f"node-{i}" for i, count in enumerate(per_node) for _ in range(count)]
    chosen, why = aggregation_mode(asked, node_ids)
    assert chosen == mode
    assert f"{len(node_ids)} actors on {len(per_node)} node(s)" in why


def test_an_unknown_aggregation_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"aggregation 'bush' .* auto, flat, tree"):
        RunSpec.parse(urls=("https://127.0.0.1:9/",), rate_per_s=RATE, aggregation="bush")


def drains(actors: int) -> tuple[tuple[Drain, Drain], FakeChannel, FakeChannel, FakeLinks,
                                 FakeClock]:
    """A flat drain and a tree drain over identical senders, on one clock."""
    spec = RunSpec.parse(urls=("https://127.0.0.1:9/",), rate_per_s=RATE,
                         duration_s=DURATION_S, actors=actors, lease_s=LEASE_S)
    clock = FakeClock()
    flat, leafy = FakeChannel(actors, NODES), FakeChannel(actors, NODES)
    tree, links = tree_of(leafy, "run-1")
    made = tuple(Drain(spec, "run-1", channel.books(clock.monotonic()), polled, clock.time(),
                       clock=clock) for channel, polled in ((flat, flat), (leafy, tree)))
    return (made[0], made[1]), flat, leafy, links, clock


def windows_of(drain: Drain) -> pa.Table:
    table = drain.log.tables()[0]
    return table.sort_by([("actor", "ascending"), ("second", "ascending")])


def test_the_tree_polls_each_node_once_a_tick_and_logs_what_the_flat_drain_logs() -> None:
    (flat_drain, tree_drain), flat, leafy, links, clock = drains(6)
    for second in range(4):
        for channel in (flat, leafy):
            channel.second(second, sent=10 + second)
        clock.advance(1.0)
        for drain in (flat_drain, tree_drain):
            drain.tick()
    assert links.polls == 4 * len(NODES)  # a poll per node and tick, not per sender
    assert windows_of(tree_drain).equals(windows_of(flat_drain))
    assert set(windows_of(tree_drain).column("node").to_pylist()) == set(NODES)
    flat_total, tree_total = flat_drain.log.total(), tree_drain.log.total()
    assert tree_total.counters == flat_total.counters
    assert tree_total.counters["sent"] == 6 * (10 + 11 + 12 + 13)
    assert [a.last_second for a in tree_drain.actors] == [3] * 6
    assert tree_total.encoded() == flat_total.encoded()  # the histograms, byte for byte


@pytest.mark.parametrize("node_gone", [False, True])
def test_a_dead_aggregators_senders_are_lost_by_their_lease_or_with_their_node(
        node_gone: bool) -> None:
    """Its senders may outlive it (its process died, not their node) and send until their
    leases stop them: lost by the lease, not at once, so that the takeover never overlaps
    them; at once when their node is gone."""
    (_, drain), _, leafy, links, clock = drains(4)
    for second in range(2):
        leafy.second(second)
        clock.advance(1.0)
        drain.tick()
    links.dead.add("node-b")  # actors 1 and 3
    if node_gone:
        leafy.nodes.discard("node-b")
    clock.advance(SILENT_NOTICE_S)
    drain.tick()
    assert any("the aggregator of node node-b: died" in note for note in drain.notes)
    if not node_gone:
        assert not drain.lost
        clock.advance(LEASE_S - SILENT_NOTICE_S)
        drain.tick()
    detected = "node" if node_gone else "lease"
    assert sorted((x["actor"], x["detected"]) for x in drain.lost) == [(1, detected),
                                                                       (3, detected)]
    assert sorted((a, args[:2]) for a, args in leafy.calls_of("set_stripe")) == [
        (0, (0, 2)), (2, (1, 2))]
    assert [a.alive for a in drain.actors] == [True, False, True, False]


def test_a_silent_aggregator_loses_its_node_by_the_lease_not_before() -> None:
    (_, drain), _, leafy, links, clock = drains(4)
    leafy.second(0)
    clock.advance(1.0)
    drain.tick()
    links.silent.add("node-b")
    clock.advance(LEASE_S - 0.01)
    drain.tick()
    assert not drain.lost
    clock.advance(0.01)
    drain.tick()
    assert sorted((x["actor"], x["detected"]) for x in drain.lost) == [(1, "lease"),
                                                                       (3, "lease")]
