"""The summary's ``sender`` part (analysis/sender.py) from contract-shaped windows: which
seconds were stalled, how long, the run-queue wait, the likely cause, per actor and per
node, the printed lines; the failures that ended in stalled seconds; the same from a saved
result; the longest loop gap merged by max everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rafale.actors.contract import LATENCY_CORRECTED, encode, new_histogram
from rafale.analysis import frames, store
from rafale.analysis.latency import latency_summary, merge_histograms
from rafale.analysis.log import WindowLog
from rafale.analysis.report import _ms, summary_text
from rafale.analysis.result import Result
from rafale.analysis.sender import seconds_text, sender_line, sender_summary
from rafale.analysis.summary import LATENCY_HEALTHY, summarize, summarize_frames
from tests.analysis.conftest import make_meta
from tests.analysis.windows_factory import RunShape, make_run

# (actor, second) -> (loop_gap_max_us, runq_wait_us, stall_us, niceness)
STALLS: dict[tuple[int, int], tuple[int, int, int, int]] = {
    (0, 2): (700_000, 650_000, 700_000, 19),
    (0, 3): (1_400_000, 900_000, 900_000, 19),
    (0, 4): (1_400_000, 600_000, 600_000, 19),
    (1, 6): (120_000, 30_000, 120_000, 0),
}


SHAPE = RunShape(actors=2, seconds=8, seed=7)


def stalled_run() -> list[dict[str, Any]]:
    windows, _ = make_run(SHAPE)
    for window in windows:
        found = STALLS.get((window["actor"], window["second"]))
        if found is not None:
            gap, wait, stall, nice = found
            window.update(loop_gap_max_us=gap, runq_wait_us=wait, stall_us=stall, stalled=1,
                          niceness=nice, late_stall=40)
    return windows


@pytest.mark.parametrize(("seconds", "text"), [
    ([2, 3, 4], "2–4"), ([4, 2, 3, 7], "2–4, 7"), ([5], "5"), ([], ""), ([1, 3], "1, 3")])
def test_seconds_text(seconds: list[int], text: str) -> None:
    assert seconds_text(seconds) == text


def test_the_sender_part_says_which_seconds_how_long_and_why() -> None:
    windows = stalled_run()
    sender = summarize(WindowLog.of(windows).total())["sender"]
    assert sender["stalled_seconds"] == 4 and sender["seconds"] == [2, 3, 4, 6]
    assert sender["stall_s"] == pytest.approx(2.32)
    assert sender["late_stall"] == 160 and sender["loop_gap_max_ms"] == 1400.0
    healthy_wait = sum(w["runq_wait_us"] for w in windows) - 2_180_000
    assert healthy_wait == 5 * 1_000 + 7 * 1_010  # the factory's healthy seconds
    assert sender["runq_wait_share"] == pytest.approx((2_180_000 + healthy_wait) / 16e6)
    first, second = sender["actors"]["0"], sender["actors"]["1"]
    assert (first["stalled_seconds"], first["seconds"], first["niceness"]) == (3, [2, 3, 4], 19)
    assert first["runq_wait_share_stalled"] == pytest.approx(2_150_000 / 3e6)
    assert (second["stalled_seconds"], second["loop_gap_max_ms"]) == (1, 120.0)
    causes = sender["causes"]
    assert "niceness 19" in causes[0] and "RAY_worker_niceness=0" in causes[0]
    assert "its core was busy" in causes[1] and "72%" in causes[1]


def test_more_actors_than_cpus_is_named_and_a_slow_loop_when_nothing_else() -> None:
    windows = stalled_run()
    for window in windows:
        window.update(niceness=0, runq_wait_us=min(window["runq_wait_us"], 50_000))
    total = WindowLog.of(windows).total()
    nodes = [{"hostname": "client-a", "cpus": 1, "actors": 2}]
    assert sender_summary(total, nodes)["causes"] == ["2 actors on client-a with 1 CPUs"]
    [slow] = sender_summary(total)["causes"]
    assert "the loop's turns were long" in slow


def test_a_healthy_run_has_an_empty_sender_part_and_no_line() -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=4, seed=3))
    sender = summarize(WindowLog.of(windows).total())["sender"]
    assert (sender["stalled_seconds"], sender["seconds"], sender["stall_s"]) == (0, [], 0.0)
    assert sender["causes"] == [] and sender_line(sender) == []
    assert not any(part["stalled_seconds"] for part in sender["actors"].values())


def test_the_printed_summary_opens_with_sender_bound(tmp_path: Path) -> None:
    windows = stalled_run()
    result = store.load(store.save(tmp_path / "r", windows, make_meta("r")))
    text = summary_text(result)
    title, headline, *rest = text.splitlines()
    assert title.startswith("rafale run")
    assert headline == ("sender-bound for 4 s (seconds 2–4, 6): results in those seconds "
                        "measure rafale, not the target")
    assert rest[0] == "  node node-0: 2 of 2 actors stalled, 2.3 s in all, seconds 2–4, 6"
    assert rest[1].startswith("  actor 0: stalled 2.2 s in 3 s, run-queue wait 72% of them")
    assert "likely cause: the sending thread ran at niceness 19" in text
    assert "(sender stalled 160, in-flight cap" in text
    healthy = store.load(store.save(tmp_path / "h", make_run(RunShape(seed=2))[0],
                                    make_meta("h")))
    assert "sender-bound" not in summary_text(healthy)


def test_a_saved_result_gives_the_same_sender_part_and_max_merged_gaps(tmp_path: Path
                                                                      ) -> None:
    windows = stalled_run()
    live = summarize(WindowLog.of(windows).total())["sender"]
    result = store.load(store.save(tmp_path / "r", windows, make_meta("r")))
    assert summarize_frames(result.windows, result.counts)["sender"] == live
    assert result.summary["sender"] == live
    per_second = frames.per_second(Result(result.windows, result.counts))
    by_second = per_second.set_index("second")
    assert by_second.loc[3, "loop_gap_max_us"] == 1_400_000  # the largest, not a sum
    assert by_second.loc[1, "loop_gap_max_us"] == 2_101  # of 2_001 and 2_101
    assert list(by_second["stalled"]) == [0, 0, 1, 1, 1, 0, 1, 0]
    assert by_second.loc[3, "runq_wait_us"] == 900_000 + 1_010  # summed over actors


def test_the_healthy_seconds_latency_leaves_the_stalled_windows_out(tmp_path: Path) -> None:
    windows = stalled_run()
    for window in windows:  # what a stalled sender shows: every answer read 5 s late
        if window["stalled"]:
            slow = new_histogram()
            slow.record_value(5_000_000, window["completed"])
            window[LATENCY_CORRECTED] = encode(slow)
    live = summarize(WindowLog.of(windows).total())
    healthy = latency_summary(merge_histograms(
        w[LATENCY_CORRECTED] for w in windows if not w["stalled"]))
    assert live[LATENCY_HEALTHY] == healthy
    assert live[LATENCY_CORRECTED]["max"] >= 5_000_000 > 100 * healthy["max"]
    assert healthy["count"] == live[LATENCY_CORRECTED]["count"] - sum(
        w["completed"] for w in windows if w["stalled"])
    result = store.load(store.save(tmp_path / "r", windows, make_meta("r")))
    assert summarize_frames(result.windows, result.counts)[LATENCY_HEALTHY] == healthy
    [row] = [line for line in summary_text(result).splitlines() if "healthy seconds" in line]
    assert row.split()[3:5] == [_ms(healthy["p50"]), _ms(healthy["p90"])], row
    quiet = summarize(WindowLog.of(make_run(RunShape(seed=3))[0]).total())
    assert LATENCY_HEALTHY not in quiet  # no stall: the run's latency is the healthy one


def test_stalls_are_told_per_node_with_the_nodes_names() -> None:
    windows, _ = make_run(RunShape(actors=4, seconds=6, seed=5, nodes=2))
    for window in windows:  # node-1's two actors (1 and 3) stall in seconds 2 and 3
        if window["actor"] % 2 and window["second"] in (2, 3):
            window.update(loop_gap_max_us=300_000, stall_us=300_000, stalled=1)
    total = WindowLog.of(windows).total()
    nodes = [{"node_id": "node-1", "hostname": "client-b", "ip": "10.9.0.3", "cpus": 2}]
    parts = sender_summary(total, nodes)["nodes"]
    assert list(parts) == ["node-1"]  # a node with no stalled actor is not listed
    assert parts["node-1"] == {"name": "client-b 10.9.0.3", "actors": 2, "stalled_actors": 2,
                               "stalled_seconds": 2, "seconds": [2, 3], "stall_s": 1.2}
    assert sender_line(sender_summary(total, nodes))[1] == (
        "  node client-b 10.9.0.3: 2 of 2 actors stalled, 1.2 s in all, seconds 2–3")


def test_failures_that_ended_in_stalled_seconds_are_told_apart(tmp_path: Path) -> None:
    windows = stalled_run()
    expected: dict[str, int] = {}
    for window in windows:
        if window["stalled"]:
            for key, count in window["error"].items():
                expected[key] = expected.get(key, 0) + count
    assert expected  # the factory fails one request in ten, stalled seconds included
    live = summarize(WindowLog.of(windows).total())
    assert live["errors_stalled"] == expected
    assert all(live["errors"][key] > count for key, count in expected.items())
    result = store.load(store.save(tmp_path / "r", windows, make_meta("r")))
    assert summarize_frames(result.windows, result.counts)["errors_stalled"] == \
        live["errors_stalled"]
    [row] = [line for line in summary_text(result).splitlines()
             if line.lstrip().startswith("error codes")]
    key, count = max(expected.items(), key=lambda kv: kv[1])
    assert f"({count:,} sender stalled)" in row.split(key, 1)[1].split(",")[0], row
    quiet = summarize(WindowLog.of(make_run(RunShape(seed=3))[0]).total())
    assert quiet["errors_stalled"] == {}
