"""The driver on a real local Ray against the embedded target: rate, shares, control, loss."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray

from rafale.analysis import frames, store
from rafale.cluster import placement
from rafale.cluster.run import Run, RunResult, start
from rafale.cluster.spec import RunSpec
from rafale.cluster.target import Target
from rafale.cluster.warm import WarmSenders

pytestmark = pytest.mark.slow


def options(target: Target, **changes: Any) -> dict[str, Any]:
    return {"urls": target.https_url, "resolve": target.resolve, "cacert": str(target.ca_file),
            "http": "2", **changes}


def per_second(result: RunResult) -> pd.DataFrame:
    return result.frame().set_index("second")


def wait_until_elapsed(run: Run, elapsed_s: float) -> None:
    time.sleep(max(0.0, run.start_at_s + elapsed_s - time.time()))


def full_seconds(begin_s: float, end_s: float) -> list[int]:
    """Run seconds [s, s+1) lying entirely inside [begin_s, end_s]."""
    return list(range(math.ceil(begin_s), math.floor(end_s)))


def test_two_actors_hold_the_schedule_and_share_it(target: Target, local_ray: None,
                                                    tmp_path: Path) -> None:
    # Through an aggregator (tree mode, cluster/tree.py): what it merged is what the
    # senders measured; every other real run here is flat (one node, two actors).
    spec = RunSpec.parse(**options(target, rate_per_s=1000, duration_s=4, actors=2, dns="pinned",
                             out=str(tmp_path / "run"), aggregation="tree"))
    result = start(spec=spec).wait(timeout=60)
    expected = spec.schedule().total()  # type: ignore[union-attr]
    requests = result.summary["requests"]
    assert abs(requests["sent"] - expected) <= 0.02 * expected
    assert requests["completed"] == requests["sent"] and requests["failed"] == 0
    sent = frames.per_actor(result).set_index("actor")["sent"]
    assert sorted(sent.index) == [0, 1]
    for actor in (0, 1):
        assert abs(sent[actor] - expected / 2) <= 0.05 * expected / 2
    assert set(result.summary["address_share"]) == {"127.0.0.2", "127.0.0.3"}
    loaded = store.load(tmp_path / "run")
    assert loaded.summary["requests"] == requests
    meta = loaded.meta
    assert meta["ended"] == "completed" and meta["lost"] == []
    assert meta["spec"]["actors"] == 2 and meta["cluster"]["actors"] == 2
    assert meta["cluster"]["aggregation"] == {"mode": "tree",
                                              "why": "asked for (2 actors on 1 node(s))"}
    assert {"rafale", "libcurl", "ray", "python"} <= set(meta["versions"])
    assert set(loaded.windows["run_id"]) == {meta["run_id"]}
    assert set(loaded.windows["node"]) == {n["node_id"] for n in meta["cluster"]["nodes"]}


def test_auto_places_one_actor_per_cpu_and_live_falls_back_to_the_progress_line(
        target: Target, local_ray: None, capsys: pytest.CaptureFixture[str]) -> None:
    run = start(**options(target, rate_per_s=50, duration_s=1, actors="auto"))
    result = run.live(every_s=0.25)  # not in a kernel: the progress line, until the end
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 3 and all("target" in line for line in lines), lines
    assert " completed " in lines[-1] and f"sent {result.summary['requests']['sent']:,} " in (
        lines[-1]), "the last line is drawn after the end, with the final counts"
    assert result.meta["ended"] == "completed"
    cpus = sum(n.cpus for n in placement.nodes())
    assert len(result.meta["actors"]) == cpus
    assert sorted(result.windows["actor"].unique()) == list(range(cpus))


def test_pause_sends_nothing_and_resume_does_not_burst(target: Target, local_ray: None) -> None:
    rate = 400
    run = start(**options(target, rate_per_s=rate, duration_s=4, actors=2))
    wait_until_elapsed(run, 1.3)
    run.pause()
    paused_at = time.time() - run.start_at_s
    time.sleep(2.2)
    resume_at = time.time() - run.start_at_s
    run.resume()
    result = run.wait(timeout=60)
    seconds = per_second(result)
    quiet = full_seconds(paused_at, resume_at)
    assert quiet, (paused_at, resume_at)
    assert (seconds.loc[quiet, "sent"] == 0).all(), seconds.loc[quiet]
    after = math.ceil(resume_at)
    assert seconds.loc[after, "sent"] <= rate * 1.10
    # the schedule froze while paused: every request of it was still sent, none twice
    expected = RunSpec.parse(**options(target, rate_per_s=rate, duration_s=4)).schedule()
    assert expected is not None
    assert abs(result.summary["requests"]["sent"] - expected.total()) <= 0.02 * expected.total()


def test_set_rate_takes_effect_within_a_second(target: Target, local_ray: None) -> None:
    run = start(**options(target, rate_per_s=200, duration_s=4, actors=2))
    wait_until_elapsed(run, 1.5)
    run.set_rate(600)
    set_at = time.time() - run.start_at_s
    seconds = per_second(run.wait(timeout=60))
    assert abs(seconds.loc[0, "sent"] - 200) <= 20
    first_full = math.ceil(set_at)
    assert abs(seconds.loc[first_full, "sent"] - 600) <= 60, seconds


def test_stop_ends_early_and_keeps_what_was_measured(target: Target, local_ray: None) -> None:
    run = start(**options(target, rate_per_s=300, duration_s=30, actors=2))
    wait_until_elapsed(run, 2.5)
    began = time.monotonic()
    run.stop()
    result = run.wait(timeout=30)
    assert time.monotonic() - began < 8
    seconds = per_second(result)
    assert result.meta["ended"] == "stopped"
    assert list(seconds.loc[[0, 1], "sent"]) == [300, 300]
    requests = result.summary["requests"]
    assert requests["sent"] == requests["completed"] + requests["failed"]
    assert requests["sent"] < 300 * 4


def test_lost_actor_is_recorded_and_survivors_hold_the_rate(target: Target,
                                                             local_ray: None) -> None:
    rate = 400
    run = start(**options(target, rate_per_s=rate, duration_s=6, actors=2))
    wait_until_elapsed(run, 1.5)
    windows = run.windows()
    drained_before = set(zip(windows["actor"].tolist(), windows["second"].tolist(), strict=True))
    os.kill(run.actors[1]["pid"], signal.SIGKILL)  # a crash of its process
    killed_at = time.time() - run.start_at_s
    result = run.wait(timeout=60)
    lost = result.meta["lost"]
    assert [x["actor"] for x in lost] == [1] and result.meta["lost_actors"] == [1]
    assert lost[0]["at_s"] >= killed_at - 0.1 and "in_flight_lost" in lost[0]
    assert result.meta["ended"] == "completed"
    kept = {(int(a), int(s)) for a, s in zip(result.windows["actor"], result.windows["second"],
                                             strict=True)}
    assert drained_before <= kept  # no drained second lost
    seconds = per_second(result)
    # detection takes up to a drain period; afterwards actor 0 alone carries the full rate
    later = [s for s in full_seconds(killed_at + 1.5, 6)]
    assert later and all(abs(seconds.loc[s, "sent"] - rate) <= 0.05 * rate for s in later), \
        seconds


def test_python_api_start_wait_save(target: Target, local_ray: None, tmp_path: Path) -> None:
    run = start(**options(target, rate_per_s=100, duration_s=2, actors=1,
                          headers=["Authorization: Bearer s3cret-token"], label="api"))
    assert isinstance(run, Run) and not run.done  # returns at once
    live = run.frame()
    assert isinstance(live, pd.DataFrame)
    result = run.wait(timeout=60)
    assert run.done and run.result() is result
    assert result.frame()["sent"].sum() == result.summary["requests"]["sent"] > 150
    saved = result.save(tmp_path / "api")
    loaded = store.load(saved)
    assert loaded.summary["requests"] == result.summary["requests"]
    assert loaded.meta["label"] == "api"
    for path in saved.iterdir():
        assert b"s3cret-token" not in path.read_bytes(), path
    assert os.path.exists(saved / "meta.json")


def test_a_series_reuses_its_warm_senders_and_frees_their_cpus_at_the_end(
        target: Target, local_ray: None) -> None:
    with WarmSenders() as warm:
        first = start(warm=warm, **options(target, rate_per_s=100, duration_s=1, actors=2)).wait(
            timeout=60)
        assert warm.idle() == 2  # given back, not killed
        second = start(warm=warm, **options(target, rate_per_s=60, duration_s=1, actors=1,
                                            http="1.1")).wait(timeout=60)
        assert warm.reused == 1 and warm.idle() == 2
    pids = {a["pid"] for a in first.meta["actors"]}
    assert len(pids) == 2 and {a["pid"] for a in second.meta["actors"]} < pids
    for result, sent in ((first, 100), (second, 60)):
        requests = result.summary["requests"]
        assert requests["sent"] == sent and requests["completed"] == sent
    assert second.summary["version"] == {"1.1": 60}
    deadline = time.monotonic() + 10  # closed: both CPUs free again
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 2
