"""A node's aggregator merges its senders' histograms into one carrier per second (healthy
or stalled): the run's summary, per-second frame and saved result are those of the flat
windows, to the byte, and the driver decodes a node's histograms, not each actor's."""

from __future__ import annotations

import json
import random
from itertools import groupby
from pathlib import Path
from typing import Any

from rafale.actors.contract import LATENCIES, LATENCY_CORRECTED, TAG_LATENCY, encode, new_histogram
from rafale.actors.node_merge import carry_histograms
from rafale.analysis import store
from rafale.analysis.log import WindowLog
from rafale.analysis.summary import summarize
from tests.analysis.conftest import make_meta
from tests.analysis.windows_factory import RunShape, make_run

EMPTY = encode(None)


def node_run() -> list[dict[str, Any]]:
    """3 nodes x 2 actors x 6 s, some stalled windows, feed tags with latency."""
    windows, _ = make_run(RunShape(actors=6, seconds=6, nodes=3, seed=11))
    rng = random.Random(5)
    for window in windows:
        if window["second"] in (2, 3) and window["actor"] in (1, 2):
            window.update(stalled=1, stall_us=300_000, loop_gap_max_us=300_000)
        tags = {}
        for tag in ("push.a", "push.b"):
            hist = new_histogram()
            for _ in range(rng.randint(0, 5)):
                hist.record_value(rng.randint(100, 90_000))
            tags[tag] = encode(hist)
        window[TAG_LATENCY] = tags
    return windows


def carried(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the node aggregators send: each node's windows of each second, merged."""
    out: list[dict[str, Any]] = []
    by_drain = sorted(windows, key=lambda w: (w["second"], w["node"]))
    for _, group in groupby(by_drain, key=lambda w: (w["second"], w["node"])):
        out += carry_histograms(list(group))
    return out


def test_only_one_window_per_second_and_stall_state_carries_histograms() -> None:
    windows = node_run()
    merged = carried(windows)
    assert len(merged) == len(windows)
    carriers = [w for w in merged if w[LATENCY_CORRECTED] != EMPTY]
    # 3 nodes x 6 s, plus a stalled carrier on node-1 and node-2 (actors 1 and 2, each
    # beside a healthy one) in seconds 2 and 3
    assert len(carriers) == 3 * 6 + 2 * 2
    for window, before in zip(merged, sorted(windows, key=lambda w: (w["second"], w["node"])),
                              strict=True):
        assert {k: v for k, v in window.items() if k not in (*LATENCIES, TAG_LATENCY)} == {
            k: v for k, v in before.items() if k not in (*LATENCIES, TAG_LATENCY)}
    assert all(w[name] == EMPTY for w in merged if w not in carriers for name in LATENCIES)


def test_the_summary_frame_and_saved_result_equal_the_flat_ones(tmp_path: Path) -> None:
    windows = node_run()
    merged = carried(windows)
    flat_log, tree_log = WindowLog.of(windows), WindowLog.of(merged)
    flat, tree = summarize(flat_log.total()), summarize(tree_log.total())
    assert json.dumps(tree, sort_keys=True) == json.dumps(flat, sort_keys=True)
    # What the check covers: stalled seconds, their errors and latency, tags' latency.
    assert flat["sender"]["stalled_seconds"] == 2 and flat["errors_stalled"] and flat["tags"]
    assert tree_log.per_second().equals(flat_log.per_second())
    flat_saved = store.load(store.save(tmp_path / "flat", windows, make_meta("r")))
    tree_saved = store.load(store.save(tmp_path / "tree", merged, make_meta("r")))
    assert json.dumps(tree_saved.summary, sort_keys=True) == json.dumps(flat_saved.summary,
                                                                        sort_keys=True)


def test_empty_and_single_windows_pass_through() -> None:
    assert carry_histograms([]) == []
    [window] = make_run(RunShape(actors=1, seconds=1))[0]
    assert carry_histograms([window]) == [window]
