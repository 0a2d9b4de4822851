"""Faults of a whole run through the driver and the CLI: a lost actor, a removed node, a
signalled driver. Real Ray, the embedded target; what the driver records in meta.json.

Engine-level faults (target down, slow, resets...) are in test_engine_faults.py; the
driver's loss and takeover logic, on an in-memory channel, in tests/cluster/test_drain.py.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from rafale.analysis import store
from rafale.cluster import cli, placement
from rafale.cluster.run import RESTRIPE_AHEAD_S, Run, start
from rafale.cluster.target import Target
from tests.helpers import default_sigint, follow_stderr
from tests.rayhead import RayHead

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Ray notices a node whose raylet died within ~1.5 s instead of the default ~30 s.
FAST_NODE_DEATH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                   "health_check_timeout_ms": 500}
SIGNAL_MARGIN_S = 0.3
TAG = "RAFALE_TEST_TAG"  # an environment variable every process of one CLI run inherits


def options(target: Target, **changes: Any) -> dict[str, Any]:
    return {"urls": target.https_url, "resolve": target.resolve, "cacert": str(target.ca_file),
            "http": "2", "max_in_flight": 50, "timeout_s": 5, **changes}


def wait_until_elapsed(run: Run, elapsed_s: float) -> None:
    time.sleep(max(0.0, run.start_at_s + elapsed_s - time.time()))


def wait_until_drained(run: Run, actor: int, second: int, timeout_s: float = 5.0
                       ) -> set[tuple[int, int]]:
    """(actor, second) of every window drained once ``actor``'s ``second`` is among them.

    A window still inside an actor when it is lost goes with it (it was never drained);
    waiting for the drain makes "every second before the loss is kept" exact.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        windows = run.windows()
        drained = set(zip(windows["actor"].tolist(), windows["second"].tolist(), strict=True))
        if (actor, second) in drained or time.monotonic() > deadline:
            return drained
        time.sleep(0.05)


def actor_seconds(windows: pd.DataFrame) -> set[tuple[int, int]]:
    return {(int(a), int(s)) for a, s in zip(windows["actor"], windows["second"], strict=True)}


def sent_by(windows: pd.DataFrame, *keys: str) -> pd.Series:
    return windows.groupby(list(keys))["sent"].sum()


def assert_seconds_contiguous(windows: pd.DataFrame) -> None:
    """Every actor's windows are seconds 0..n-1, each once: nothing drained was dropped."""
    for actor, seconds in windows.groupby("actor")["second"]:
        assert sorted(seconds) == list(range(len(seconds))), (actor, sorted(seconds))


# ----- ray.kill of one actor (local Ray) ------------------------------------------------------


def test_killed_actor_is_saved_in_meta_and_no_drained_second_is_lost(
        target: Target, local_ray: None, tmp_path: Path) -> None:
    rate, duration_s, actors = 400, 6, 2
    out = tmp_path / "killed"
    # gap="skip": this test is about the survivor's rate; catch-up (tests/cluster/
    # test_leases.py) would add the lost stripe's late requests to the first seconds.
    run = start(**options(target, rate_per_s=rate, duration_s=duration_s, actors=actors,
                          out=str(out), gap="skip"))
    wait_until_elapsed(run, 1.2)
    drained_before = wait_until_drained(run, 1, 0)
    assert (1, 0) in drained_before
    os.kill(run.actors[1]["pid"], signal.SIGKILL)  # a crash of its process
    killed_at_s = time.time() - run.start_at_s
    result = run.wait(timeout=60)

    saved = store.load(out)
    meta = saved.meta
    assert meta["ended"] == "completed", meta["notes"]
    [lost] = meta["lost"]
    detect_s = lost["at_s"] - killed_at_s
    print(f"actor 1 killed at {killed_at_s:.2f} s, recorded at {lost['at_s']:.2f} s "
          f"(+{detect_s:.2f} s), in flight lost {lost['in_flight_lost']}, {lost['reason']}")
    assert lost["actor"] == 1 and meta["lost_actors"] == [1]
    assert lost["node"] == run.actors[1]["node"] and lost["pid"] == run.actors[1]["pid"]
    assert isinstance(lost["in_flight_lost"], int) and 0 <= lost["in_flight_lost"] <= 50
    assert "died" in lost["reason"]
    assert 0 <= detect_s <= 2.5
    assert meta["lost_nodes"] == []  # the node is still there
    assert saved.summary["requests"] == result.summary["requests"]

    # Nothing drained before the kill is lost, and the saved windows have no holes.
    kept = actor_seconds(saved.windows)
    assert drained_before and drained_before <= kept
    assert_seconds_contiguous(saved.windows)
    # Every second before the kill (all the survivor's, all the drained ones of the killed
    # actor): each actor was asked its half of the schedule (±1; intended is counted in the
    # schedule's second) and had sent it by the second's end, give or take the few requests
    # due in its last milliseconds that a loaded loop sends just after the boundary (sent
    # is counted in the second it happens in: 198 then 202 was seen under CI load).
    per_actor = sent_by(saved.windows, "actor", "second")
    intended = saved.windows.groupby(["actor", "second"])["intended"].sum()
    before = drained_before | {(0, s) for s in range(math.floor(killed_at_s))}
    for key in sorted(before):
        assert abs(intended[key] - rate / actors) <= 1, (key, intended)
        actor, second = key
        owed = sum(intended[(actor, s)] for s in range(second + 1))
        done = sum(per_actor[(actor, s)] for s in range(second + 1))
        assert 0 <= owed - done <= 0.02 * rate / actors, (key, per_actor)
    # From the first whole second after the survivors switched stripes (RESTRIPE_AHEAD_S
    # after the takeover), actor 0 sends the full rate.
    per_second = sent_by(saved.windows, "second")
    after = range(math.ceil(lost["takeover_at_s"] + RESTRIPE_AHEAD_S), duration_s)
    print("sent per second:", dict(per_second))
    assert list(after), lost
    for second in after:
        assert abs(per_second[second] - rate) <= 0.05 * rate, dict(per_second)


# ----- a removed node (3 nodes x 1 CPU on loopback) --------------------------------------------


@pytest.fixture
def three_nodes() -> Iterator[Cluster]:
    """Head + 2 workers, 1 CPU each, bound to loopback; the driver connects by address."""
    ray.shutdown()
    cluster = Cluster(shutdown_at_exit=True)
    try:
        with placement.loopback_ray():
            cluster.add_node(num_cpus=1, include_dashboard=False, _system_config=FAST_NODE_DEATH)
            for _ in range(2):
                cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.multinode
def test_removed_node_is_saved_in_meta_and_survivors_hold_the_rate(
        target: Target, three_nodes: Cluster, tmp_path: Path) -> None:
    rate, duration_s = 300, 7
    out = tmp_path / "removed"
    run = start(**options(target, rate_per_s=rate, duration_s=duration_s, actors="auto",
                          address=three_nodes.address, out=str(out), gap="skip"))
    shape = run.meta()["cluster"]
    node_ids = {n.node_id for n in [three_nodes.head_node, *three_nodes.worker_nodes]
                if n is not None}
    # actors="auto" places one actor per node CPU, every node bound to loopback.
    assert shape["node_count"] == 3 and shape["actors"] == 3
    assert shape["actors_per_node"] == dict.fromkeys(node_ids, 1)
    assert {n["ip"] for n in shape["nodes"]} == {"127.0.0.1"}
    assert {a["node"] for a in run.actors} == node_ids

    assert three_nodes.head_node is not None
    victim = next(a for a in run.actors if a["node"] != three_nodes.head_node.node_id)
    node = next(n for n in three_nodes.worker_nodes if n.node_id == victim["node"])
    wait_until_elapsed(run, 2.1)
    drained_before = wait_until_drained(run, victim["actor"], 1)
    assert (victim["actor"], 1) in drained_before
    removed_at_s = time.time() - run.start_at_s
    three_nodes.remove_node(node, allow_graceful=False)  # as if the host died
    result = run.wait(timeout=60)

    saved = store.load(out)
    meta = saved.meta
    assert meta["ended"] == "completed", meta["notes"]
    [lost] = meta["lost"]
    detect_s = lost["at_s"] - removed_at_s
    print(f"node of actor {victim['actor']} removed at {removed_at_s:.2f} s, recorded at "
          f"{lost['at_s']:.2f} s (+{detect_s:.2f} s), in flight lost "
          f"{lost['in_flight_lost']}, {lost['reason']}")
    assert lost["actor"] == victim["actor"] and lost["node"] == victim["node"]
    assert meta["lost_nodes"] == [victim["node"]]
    assert 0 <= detect_s <= 6
    assert meta["cluster"]["node_count"] == 3  # the shape the run started with
    assert saved.summary["requests"] == result.summary["requests"]

    kept = actor_seconds(saved.windows)
    assert drained_before and drained_before <= kept
    assert_seconds_contiguous(saved.windows)
    per_actor = sent_by(saved.windows, "actor", "second")
    # Every second before the removal (all the survivors', the drained ones of the lost
    # actor): 3 x 100, each within 2 (~20 ms of the schedule: a busy machine's late loop
    # turn at a second's end sends its last request in the next one, CI: 98 then 102),
    # and each actor's seconds together within 2 (one boundary: no drift over seconds).
    before = drained_before | {(a["actor"], s) for a in run.actors if a["actor"] != victim["actor"]
                               for s in range(math.floor(removed_at_s))}
    for key in sorted(before):
        assert abs(per_actor[key] - rate / 3) <= 2, (key, per_actor)
    for actor in {a for a, _ in before}:
        seconds = [key for key in before if key[0] == actor]
        assert abs(sum(per_actor[key] for key in seconds) - rate / 3 * len(seconds)) <= 2, (
            actor, per_actor)
    per_second = sent_by(saved.windows, "second")
    # From the first whole second after the survivors switched stripes (RESTRIPE_AHEAD_S
    # after the takeover: a loss found late in a second switches in the next one).
    after = list(range(math.ceil(lost["takeover_at_s"] + RESTRIPE_AHEAD_S), duration_s))
    print("sent per second:", dict(per_second), "checked after the loss:", after)
    assert after, lost
    for second in after:  # the two survivors carry the whole target rate
        assert abs(per_second[second] - rate) <= 0.10 * rate, dict(per_second)
        assert set(saved.windows[saved.windows["second"] == second]["actor"]) == (
            {0, 1, 2} - {victim["actor"]})


# ----- Ctrl-C / SIGTERM of the CLI driver ------------------------------------------------------


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Processes whose environment carries ``TAG=tag``: the CLI and every Ray process it
    started (GCS, raylet, agents, workers, ray::SenderActor)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(TAG) == tag:
                found.append(process)
        except psutil.Error:
            continue
    return found


def names(processes: list[psutil.Process]) -> list[str]:
    out = []
    for process in processes:
        try:
            out.append(f"{process.pid} {process.name()}")
        except psutil.Error:
            out.append(f"{process.pid} (gone)")
    return out


def start_tagged_run(target: Target, out: Path, tag: str,
                     **popen: Any) -> subprocess.Popen[str]:
    """`rafale run` at 200 req/s for 60 s with 2 actors saving to ``out``, in its own
    session, every process it starts carrying ``TAG=tag`` in its environment."""
    args = [sys.executable, "-m", "rafale.cluster.cli", "run", target.https_url, "--rate", "200",
            "--duration", "60s", "--actors", "2", "--out", str(out), "--no-charts",
            "--cacert", str(target.ca_file)]
    for entry in target.resolve:
        args += ["--resolve", entry]
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, TAG: tag},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


@pytest.mark.xdist_group("own_ray_b")  # starts a Ray of its own: see tests/conftest.py
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM"])
def test_signalled_cli_stops_actors_saves_and_exits_130(target: Target, tmp_path: Path,
                                                         how: str) -> None:
    """Ctrl-C goes to the terminal's whole process group (the CLI and the Ray processes it
    started); SIGTERM to the CLI alone, as a process manager would send it."""
    out = tmp_path / "signalled"
    tag = uuid.uuid4().hex
    process = start_tagged_run(target, out, tag, preexec_fn=default_sigint)
    lines, sending, reader = follow_stderr(process)
    try:
        assert sending.wait(60), "".join(lines)
        time.sleep(2.0)
        senders = [p for p in tagged_processes(tag) if "SenderActor" in p.name()]
        assert len(senders) == 2, names(tagged_processes(tag))
        signalled_at = time.time()
        if how == "Ctrl-C":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=30)
        exited_s = time.time() - signalled_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(5)
    stderr = "".join(lines)
    print(f"{how}: exited {exited_s:.2f} s after the signal")
    assert process.returncode == cli.EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr, stderr
    assert "ended: interrupted" in stdout and f"saved to {out}" in stdout, stdout

    # No actor, raylet or other Ray process of this run outlives the CLI.
    deadline = time.monotonic() + 10
    while (left := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, names(left)

    result = store.load(out)
    meta = result.meta
    assert meta["ended"] == "interrupted" and meta["lost"] == []
    assert meta["ended_at"] is not None
    signal_s = signalled_at - meta["start_at_s"]
    assert signal_s >= 2
    assert_seconds_contiguous(result.windows)
    per_actor = sent_by(result.windows, "actor", "second")
    late = result.windows.groupby(["actor", "second"])["late"].sum()
    # Every whole second that ended before the signal is kept, with a margin: the CLI's own
    # clock and the actors' differ by a few ms, and the stop's work starts at once. Each
    # second has its sends (a lost second would show none); together they are the schedule's
    # 100 per actor-second, less those a busy machine sent past the last of these seconds,
    # which are counted late there (no single second is held exact: a late window roll
    # also moves a few between neighbouring seconds).
    kept = math.floor(signal_s - SIGNAL_MARGIN_S)
    for actor in (0, 1):
        seconds = [per_actor[(actor, second)] for second in range(kept)]
        late_after = sum(n for (a, s), n in late.items() if a == actor and s >= kept)
        assert min(seconds) >= 50, per_actor
        assert -1 <= 100 * kept - sum(seconds) <= late_after + 1, (per_actor, late)
    requests = result.summary["requests"]
    assert requests["sent"] == requests["completed"] + requests["failed"]  # stop let them end
    assert requests["failed"] == 0
    assert requests["sent"] < 200 * (signal_s + 2)
    assert json.loads((out / store.SUMMARY_FILE).read_text())["windows"] == len(result.windows)


@pytest.mark.xdist_group("own_ray_a")  # starts a Ray of its own: see tests/conftest.py
def test_sigkilled_driver_leaves_a_result_loadable_up_to_the_last_checkpoint(
        target: Target, tmp_path: Path) -> None:
    """SIGKILL gives the driver no chance to save: what the append-only checkpoints wrote
    (one part per checkpoint, then meta.json and summary.json) is what remains, and it
    loads, with counts that agree."""
    out = tmp_path / "killed"
    tag = uuid.uuid4().hex
    process = start_tagged_run(target, out, tag)
    second_part = out / store.WINDOWS_PARTS / "part-000002.parquet"
    try:
        deadline = time.monotonic() + 90
        while not second_part.exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no second checkpoint within 90 s"
            time.sleep(0.1)
        time.sleep(0.5)  # meta.json and summary.json follow the part
        process.kill()  # SIGKILL: no handler runs, nothing more is saved
        process.wait(10)
    finally:
        for leftover in [*tagged_processes(tag), *([process] if process.poll() is None else [])]:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                leftover.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (out / store.WINDOWS_FILE).exists()  # never compacted: the run did not end
    parts = sorted((out / store.WINDOWS_PARTS).glob("part-*.parquet"))
    assert len(parts) >= 2
    result = store.load(out)
    assert result.meta["ended"] == "running" and result.meta["run_id"]
    # Everything the checkpoints wrote loads, and nothing else: how many seconds two
    # checkpoints hold depends on how far the drain had got (less on a loaded machine).
    on_disk = [pq.read_metadata(part).num_rows for part in parts]
    assert min(on_disk) > 0 and len(result.windows) == sum(on_disk), on_disk
    assert set(result.windows["actor"]) == {0, 1}
    assert_seconds_contiguous(result.windows)
    requests = result.summary["requests"]
    assert requests["sent"] == int(result.windows["sent"].sum()) > 0
    assert requests["failed"] == 0


# ----- results that cannot be saved ------------------------------------------------------------


def test_out_replaced_by_a_file_mid_run_fails_loudly_but_the_run_goes_on(
        target: Target, tmp_path: Path, ray_head: RayHead) -> None:
    """The first checkpoint fails: the run goes on to the end. The final save fails too: the
    CLI says so and exits 1 instead of printing "saved to". (On the session's Ray head: the
    saving is the driver's, whichever Ray it joined.)"""
    out = tmp_path / "vanishing"
    args = [sys.executable, "-m", "rafale.cluster.cli", "run", target.https_url, "--rate", "100",
            "--duration", "6s", "--actors", "1", "--out", str(out), "--no-charts",
            "--cacert", str(target.ca_file), "--address", ray_head.address]
    for entry in target.resolve:
        args += ["--resolve", entry]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=ray_head.env)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if re.search(r"sent [1-9]", line):
                break
        assert out.is_dir()
        shutil.rmtree(out)
        out.write_text("not a directory any more\n")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(lines) + stderr
    assert process.returncode == cli.EXIT_FAILED, stderr
    assert "ended: completed" in stdout, stdout  # the failed checkpoint did not end the run
    assert f"rafale: error: saving to {out} failed" in stderr, stderr
    assert "saved to" not in stdout
    assert "Traceback" not in stderr


# ----- bad input through the CLI: exit 2 before Ray starts ------------------------------------


def unused_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def not_a_certificate(directory: Path) -> str:
    path = directory / "not-a-cert.pem"
    path.write_text("just text, no certificate\n")
    return str(path)


# (case, extra arguments, fragment of the message); <dir> is the test's tmp_path
BAD_CLI: list[tuple[str, list[str], str]] = [
    ("cacert not a certificate", ["--cacert", "<dir>/not-a-cert.pem"], "<dir>/not-a-cert.pem"),
    # os.access says yes to root even on a read-only file system; only a write tells
    ("out not writable", ["--out", "/sys/rafale-results"], "/sys/rafale-results"),
    ("address refused", ["--address", "127.0.0.1:<port>"], "127.0.0.1:<port>"),
]


@pytest.mark.parametrize(("extra", "fragment"), [(e, f) for _, e, f in BAD_CLI],
                         ids=[case for case, _, _ in BAD_CLI])
def test_bad_input_exits_2_naming_the_value_without_starting_ray(
        extra: list[str], fragment: str, tmp_path: Path) -> None:
    not_a_certificate(tmp_path)
    port = str(unused_loopback_port())
    extra = [a.replace("<dir>", str(tmp_path)).replace("<port>", port) for a in extra]
    fragment = fragment.replace("<dir>", str(tmp_path)).replace("<port>", port)
    ray_dir = tmp_path / "ray-tmp"  # a Ray started by the CLI would put its session here
    ray_dir.mkdir()
    tag = uuid.uuid4().hex
    env = {**os.environ, TAG: tag, "RAY_TMPDIR": str(ray_dir)}
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "rafale.cluster.cli", "run", "https://rafale.test:8443/",
         "--rate", "5",
         "--resolve", "rafale.test:8443:127.0.0.1", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: set[str] = set()
    while process.poll() is None and time.monotonic() - began < 60:
        started |= {p.name() for p in tagged_processes(tag) if p.pid != process.pid}
        time.sleep(0.1)
    stdout, stderr = process.communicate(timeout=10)
    took_s = time.monotonic() - began
    assert process.returncode == cli.EXIT_BAD_INPUT, stderr
    assert stderr.startswith("rafale: error: ") and fragment in stderr, stderr
    assert "Traceback" not in stderr and stdout == ""
    # No Ray started (its processes and its session dir would show it), and no wait on
    # one: the bound is loose (a busy machine stretches the process's start-up), far below
    # the ~60 s ray.init spends on an address that does not answer.
    assert not {"raylet", "gcs_server"} & started, started
    assert took_s < 30, took_s
    assert list(ray_dir.iterdir()) == []


def test_address_that_accepts_but_is_not_ray_is_refused_within_seconds(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # accepts connections (kernel backlog) but never speaks gRPC
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        env = {**os.environ, "RAY_TMPDIR": str(tmp_path)}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "rafale.cluster.cli", "run", "https://rafale.test:8443/",
                 "--rate", "5", "--resolve", "rafale.test:8443:127.0.0.1", "--address", address],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            # ray.init waits ~60 s on such an address; the probe answers within 3 s (the
            # bound is loose: a busy machine stretches the process's start-up).
            pytest.fail(f"rafale run --address {address} still waiting after 30 s")
    assert done.returncode == cli.EXIT_BAD_INPUT and address in done.stderr, done.stderr
    assert "does not answer" in done.stderr and "within 3 s" in done.stderr, done.stderr
