"""Several client hosts for real, on the namespace testbed (tests/testbed.py): three Ray
nodes on their own addresses (the head, where the driver runs, and two client hosts), the
target on two addresses of the data network, links cut and restored; runs through the CLI
on two hosts, split brain, a cut host; and nothing left after teardown (root only: skipped
elsewhere, failed under CI=true). One testbed for the module: the tests run in order."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import connection_wall
from rafale.analysis import store
from tests.testbed import BIN, CLIENTS, HEAD, Testbed, ip, pids_alive, require_testbed

pytestmark = [pytest.mark.multinode, pytest.mark.slow]

RATE = 1000
LEASE_S = 3.0
# The target's namespace: a small accept backlog, for the connection wall (the other runs
# open a few HTTP/2 connections each).
BACKLOG = {"net.core.somaxconn": 16, "net.ipv4.tcp_max_syn_backlog": 16}

DRIVER = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([[n["NodeManagerAddress"], n["Alive"], n["Resources"].get("CPU", 0.0)]
                  for n in ray.nodes()]))
"""


@pytest.fixture(scope="module")
def testbed() -> Iterator[Testbed]:
    require_testbed()
    # Ray's default node-death detection (tens of seconds): in the runs below, the lease is
    # what notices a cut host.
    with Testbed(system_config=None, target_sysctls=BACKLOG, target_delay=True) as built:
        assert built.setup_s < 45.0
        yield built


def test_a_driver_in_the_head_namespace_sees_three_nodes_on_their_addresses(
        testbed: Testbed) -> None:
    done = testbed.check_in("head", [str(BIN / "python"), "-c", DRIVER, testbed.head_address],
                            timeout_s=60.0)
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(map(tuple, nodes)) == [("10.213.0.1", True, 0.0), ("10.213.0.11", True, 1.0),
                                         ("10.213.0.12", True, 1.0)]


def test_a_client_reaches_the_target_until_its_data_link_is_cut(testbed: Testbed) -> None:
    curl = testbed.curl_argv("/", "--connect-timeout", "2", "--max-time", "5")
    assert testbed.check_in("c1", curl).stdout == "ok\n"
    testbed.cut("c1", "data")
    try:
        cut = testbed.check_in("c1", curl)
        assert cut.returncode == 7 and cut.stdout == ""  # at the host: unreachable at once
        assert testbed.check_in("c2", curl).stdout == "ok\n"  # the other client is fine
    finally:
        testbed.restore("c1", "data")
    assert testbed.check_in("c1", curl).stdout == "ok\n"


def test_a_cut_at_the_switch_drops_packets_silently(testbed: Testbed) -> None:
    curl = testbed.curl_argv("/", "--connect-timeout", "1", "--max-time", "3")
    testbed.cut("c2", "data", at="switch")
    try:
        assert testbed.check_in("c2", curl).returncode == 28  # timed out, no error seen
    finally:
        testbed.restore("c2", "data", at="switch")
    # Back once the port forwards and c2 has resolved the target's address again.
    deadline = time.monotonic() + 15
    while (answer := testbed.check_in("c2", curl).stdout) != "ok\n":
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)


def test_the_access_log_tells_clients_and_target_addresses_apart(testbed: Testbed) -> None:
    info = testbed.target_info
    second = ["curl", "-sS", "--cacert", info.ca_file, "--resolve",
              f"{info.host}:{info.https_port}:{info.addresses[1]}", testbed.target_url("/big")]
    assert testbed.check_in("c2", second).returncode == 0
    counts = testbed.requests_by_address()
    assert counts[(ip("c1", "data"), info.addresses[0])] >= 2
    assert counts[(ip("c2", "data"), info.addresses[1])] >= 1
    assert {entry["request"]["remote_ip"] for entry in testbed.access_log_entries()} == {
        ip("c1", "data"), ip("c2", "data")}


def test_doctor_reports_every_node_of_the_cluster(testbed: Testbed) -> None:
    done = testbed.check_in(HEAD, [sys.executable, "-m", "rafale.cluster.cli", "doctor",
                                   "--address", testbed.head_address], timeout_s=120)
    text = done.stdout + done.stderr
    print(text)
    for host in (HEAD, *CLIENTS):
        assert ip(host) in text, text
    assert "niceness" in text and "15" in text  # Ray's default for its workers


# ----- runs through the CLI, as a user would run them -------------------------------------


class CliRun:
    """`rafale run` in the head namespace, its stderr lines timed as they arrive."""

    def __init__(self, bed: Testbed, out: Path, *args: str) -> None:
        info = bed.target_info
        argv = [sys.executable, "-m", "rafale.cluster.cli", "run", bed.target_url(),
                "--address", bed.head_address, "--http", "2", "--dns", "pinned",
                *bed.resolve_args(), "--cacert", info.ca_file, "--out", str(out),
                "--no-charts", "--lease", f"{LEASE_S:g}s", *args]
        self.out = out
        self.began, self.began_monotonic = time.time(), time.monotonic()
        self.process = bed.run_in(HEAD, argv, stdout=-1, stderr=-1, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append((time.monotonic(), line))

    def wait_sending(self, timeout_s: float = 90) -> float:
        """Wait for a progress line past the start; the run's start instant (epoch s) from
        it (meta.json, exact, comes with the first checkpoint: 5 s in)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for at, line in self.lines:
                found = re.match(r"\s*(\d+\.\d)/\d+s running", line)
                if found and float(found[1]) >= 0.5:
                    return self.began + (at - self.began_monotonic) - float(found[1])
            assert self.process.poll() is None, self.stderr()
            assert time.monotonic() < deadline, self.stderr()
            time.sleep(0.05)

    def finish(self, timeout_s: float = 120) -> tuple[int, str]:
        # Not communicate(): it would read stderr too, taking lines from the reader.
        out: list[str] = []
        assert self.process.stdout is not None
        stdout_reader = threading.Thread(target=lambda: out.append(self.process.stdout.read()),
                                         daemon=True)
        stdout_reader.start()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        stdout_reader.join(5)
        self._reader.join(5)
        stdout = "".join(out)
        return self.process.returncode, stdout

    def timed_stderr(self) -> str:
        return "".join(f"{at - self.began_monotonic:7.2f} {line}" for at, line in self.lines)

    def stderr(self) -> str:
        return "".join(line for _, line in self.lines)


def target_per_second(bed: Testbed, start_at_s: float) -> Counter[int]:
    return Counter(math.floor(float(e["ts"]) - start_at_s) for e in bed.access_log_entries())


def logged_count(bed: Testbed) -> int:
    return len(bed.access_log_entries())


def test_two_client_hosts_split_the_rate_over_hosts_and_target_addresses(
        testbed: Testbed, tmp_path: Path) -> None:
    before = logged_count(testbed)
    run = CliRun(testbed, tmp_path / "two", "--rate", str(RATE), "--duration", "6s")
    code, stdout = run.finish()
    assert code == 0, run.stderr() + stdout
    result = store.load(run.out)
    requests = result.summary["requests"]
    assert requests["completed"] == requests["sent"] == RATE * 6, requests
    entries = testbed.access_log_entries()[before:]
    assert len(entries) == requests["completed"]
    by_client = Counter(e["request"]["remote_ip"] for e in entries)
    by_target = Counter(e["local_ip"] for e in entries)
    print("by client:", dict(by_client), "by target address:", dict(by_target))
    for host in CLIENTS:
        assert abs(by_client[ip(host, "data")] - RATE * 3) <= 0.1 * RATE * 3, by_client
    for address in testbed.target_info.addresses:
        assert abs(by_target[address] - RATE * 3) <= 0.1 * RATE * 3, by_target
    # One actor per client host (the head has no CPU for one), each on its own address.
    assert sorted(a["ip"] for a in result.meta["actors"]) == sorted(ip(h) for h in CLIENTS)


def test_the_connection_wall_is_dropped_by_the_kernel_and_held_off_by_a_connect_rate(
        testbed: Testbed, tmp_path: Path) -> None:
    """benchmarks/connection_wall.py, small: two client hosts open 150 HTTP/1.1 TLS
    connections each (closed model, each request held 1 s by the target), all at once and
    then at 150 a second. What the target's kernel counted and what rafale measured agree:
    at once, listen overflows and connects that waited for a SYN retransmit (>= 1 s); with
    the rate, no overflow and no connect that waited one."""
    connections = 150
    at_once, paced = (connection_wall.run_once(testbed, tmp_path / name, rate,
                                               connections=connections, duration_s=3)
                      for name, rate in (("at-once", None), ("paced", 150.0)))
    print(at_once, paced, sep="\n")
    assert at_once["ListenOverflows"] > 0 and at_once["ListenDrops"] > 0, at_once
    assert at_once["connect_p99_us"] >= 1_000_000, at_once
    assert paced["ListenOverflows"] == paced["ListenDrops"] == 0, paced
    assert paced["connect_max_us"] < 1_000_000, paced
    assert paced["failed"] == 0 and paced["completed"] >= 2 * connections, paced
    # One connection a request in flight, opened once (none re-opened).
    for run in (at_once, paced):
        assert 2 * connections <= run["new_connections"] <= 2 * connections * 1.1, run


def test_split_brain_the_cut_off_host_fences_itself(testbed: Testbed, tmp_path: Path) -> None:
    """c1 loses the driver (control link) but still reaches the target: its lease stops it,
    so the target never gets more than the rate once c2 has taken its stripe over."""
    duration_s, cut_at_s = 12, 3.5
    run = CliRun(testbed, tmp_path / "split", "--rate", str(RATE), "--duration",
                 f"{duration_s}s", "--gap", "skip")
    start_at_s = run.wait_sending()
    time.sleep(max(0.0, start_at_s + cut_at_s - time.time()))
    testbed.cut("c1", "control")
    cut_s = time.time() - start_at_s
    try:
        code, stdout = run.finish()
    finally:
        testbed.restore("c1", "control")
    assert code == 0, run.stderr() + stdout
    result = store.load(run.out)
    cut_s += start_at_s - result.meta["start_at_s"]  # from the exact start instant
    start_at_s = result.meta["start_at_s"]
    [lost] = result.meta["lost"]
    print(f"cut at {cut_s:.2f} s; lost: {lost}")
    assert lost["ip"] == ip("c1") and lost["detected"] == "lease"
    assert lost["at_s"] - cut_s <= LEASE_S + 1.0
    per_second = target_per_second(testbed, start_at_s)
    checked = range(math.ceil(cut_s + LEASE_S + 1.0), duration_s)
    print("target per second:", {s: per_second[s] for s in range(duration_s)})
    assert list(checked)
    for second in checked:
        assert abs(per_second[second] - RATE) <= 0.10 * RATE, (second, per_second)
    assert "lost" in stdout and "lease expired" in stdout


def test_a_cut_client_host_is_lost_by_its_lease_and_the_survivor_catches_up(
        testbed: Testbed, tmp_path: Path) -> None:
    duration_s, cut_at_s = 12, 4.2
    run = CliRun(testbed, tmp_path / "cut", "--rate", str(RATE), "--duration", f"{duration_s}s")
    start_at_s = run.wait_sending()
    time.sleep(max(0.0, start_at_s + cut_at_s - time.time()))
    testbed.cut("c1", "both")
    cut_at = time.monotonic()
    cut_s = time.time() - start_at_s
    code, stdout = run.finish()
    ended_s = time.time() - start_at_s
    assert code == 0, run.stderr() + stdout
    result = store.load(run.out)
    meta = result.meta
    cut_s += start_at_s - meta["start_at_s"]  # from the exact start instant
    start_at_s = meta["start_at_s"]
    [lost] = meta["lost"]
    print(f"cut at {cut_s:.2f} s, CLI ended at {ended_s:.1f} s; lost: {lost}")
    assert lost["ip"] == ip("c1") and lost["detected"] == "lease"
    assert lost["at_s"] - cut_s <= LEASE_S + 1.0
    assert lost["gap"]["mode"] == "catch-up" and lost["gap"]["requests"] > 0
    completed = result.summary["requests"]["completed"]
    print("completed", completed, "of", RATE * duration_s, result.summary["requests"])
    assert completed >= 0.95 * RATE * duration_s
    # Ends on time: the schedule, the drain of in-flight requests, saving.
    assert meta["ended"] == "completed"
    ended_at = dt.datetime.fromisoformat(meta["ended_at"]).timestamp()
    assert ended_at - start_at_s <= duration_s + 8
    # The progress line kept coming every second while c1 was silent.
    times = [t for t, line in run.lines if " running " in line and t >= cut_at - 1]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert times and max(gaps) < 1.8, (gaps, run.timed_stderr())
    assert any("no answer" in line for _, line in run.lines), run.stderr()


# ----- last: teardown ----------------------------------------------------------------------


def test_teardown_leaves_no_namespace_and_no_process(testbed: Testbed) -> None:
    running = testbed.pids()
    assert testbed.target_info.pid in running  # Caddy, in the target namespace
    assert len(running) >= 10  # Ray's daemons on three nodes, the target, Caddy
    testbed.close()
    testbed.close()  # idempotent
    assert testbed.teardown_s < 15.0
    assert testbed.namespaces() == []
    assert running <= testbed.pids_seen and pids_alive(testbed.pids_seen) == []
    assert not Path(testbed.dir).exists()
    with pytest.raises(RuntimeError):
        testbed.target_info  # noqa: B018 - gone with the target
