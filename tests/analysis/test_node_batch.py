"""A node's aggregator hands the driver its windows ready (analysis/node_batch.py): the
log they make, through pickling as Ray ships them, equals the log of the same windows
appended one by one, to the byte: summary, per-second frame, saved tables, in flight."""

from __future__ import annotations

import json
import pickle
import random
from itertools import groupby
from typing import Any

import pyarrow as pa

from rafale.actors.contract import TAG_LATENCY, encode, new_histogram
from rafale.analysis.log import WindowLog
from rafale.analysis.node_batch import NodeBatch, node_batch
from rafale.analysis.summary import summarize
from tests.analysis.windows_factory import RunShape, make_run


def node_run() -> list[dict[str, Any]]:
    """3 nodes x 2 actors x 8 s; stalled windows, feed tags with latency, in-flight gauges,
    CPU seconds."""
    windows, _ = make_run(RunShape(actors=6, seconds=8, nodes=3, seed=11))
    rng = random.Random(5)
    for window in windows:
        if window["second"] in (2, 3) and window["actor"] in (1, 2):
            window.update(stalled=1, stall_us=300_000, loop_gap_max_us=300_000)
        window["in_flight"] = rng.randint(0, 40)
        window["cpu_s"] = rng.random() / 7  # a float counter: its sum must not depend on order
        tags = {}
        for tag in ("push.a", "push.b"):
            hist = new_histogram()
            for _ in range(rng.randint(0, 5)):
                hist.record_value(rng.randint(100, 90_000))
            tags[tag] = encode(hist)
        window[TAG_LATENCY] = tags
    return windows


def drains(windows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The driver's drains, one a second; actor 5 reports seconds 0..2 only at the end
    (a slow actor's windows reaching sealed seconds)."""
    slow = [w for w in windows if w["actor"] == 5 and w["second"] <= 2]
    rest = [w for w in windows if not (w["actor"] == 5 and w["second"] <= 2)]
    by_second = [list(group) for _, group in groupby(sorted(rest, key=lambda w: w["second"]),
                                                   key=lambda w: w["second"])]
    return [*by_second, slow]


def shipped(batch: NodeBatch) -> NodeBatch:
    """As Ray carries a reply: pickled on the node, unpickled on the driver."""
    return pickle.loads(pickle.dumps(batch))


def logs(open_s: int) -> tuple[WindowLog, WindowLog, list[dict[str, Any]]]:
    windows = node_run()
    flat, tree = WindowLog(open_s), WindowLog(open_s)
    for drain in drains(windows):
        flat.append(drain)
        for _, node in groupby(sorted(drain, key=lambda w: w["node"]), key=lambda w: w["node"]):
            tree.append_node(shipped(node_batch(list(node))))
    flat.seal_all()
    tree.seal_all()
    return flat, tree, windows


def sorted_table(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.sort_by([(key, "ascending") for key in keys])


def test_node_batches_make_the_log_the_windows_make() -> None:
    flat, tree, windows = logs(open_s=2)  # actor 5's seconds 0..2 arrive sealed
    assert len(tree) == len(flat) == len(windows) == 48
    summary_flat, summary_tree = summarize(flat.total()), summarize(tree.total())
    assert json.dumps(summary_tree, sort_keys=True) == json.dumps(summary_flat, sort_keys=True)
    # What the equality covers: stalled seconds with their errors, tags' latency, 3 nodes.
    assert summary_flat["sender"]["stalled_seconds"] == 2
    assert summary_flat["errors_stalled"] and summary_flat["tags"]
    assert tree.per_second().equals(flat.per_second())
    assert tree.in_flight() == flat.in_flight() > 0
    for got, want, keys in zip(tree.tables(), flat.tables(),
                               (["actor", "second"], ["actor", "second", "dimension", "key"]),
                               strict=True):
        assert sorted_table(got, keys).equals(sorted_table(want, keys))


def test_a_node_batch_keeps_every_sender_row_and_merges_each_second() -> None:
    windows = [w for w in node_run() if w["node"] == "node-1"]
    batch = shipped(node_batch(windows))
    assert batch.rows == len(windows) == 16
    assert sorted(batch.seconds) == list(range(8))
    for second, agg in batch.seconds.items():
        mine = [w for w in windows if w["second"] == second]
        assert agg.actors == {w["actor"] for w in mine} and agg.windows == len(mine)
        assert agg.counters["completed"] == sum(w["completed"] for w in mine)
        assert agg.hists["latency_corrected_us"].get_total_count() == agg.counters["completed"]
    assert shipped(node_batch([])).rows == 0
