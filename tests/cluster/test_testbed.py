"""Several client hosts for real, on the namespace testbed (tests/testbed.py): three Ray
nodes on their own addresses (the head, where the driver runs, and two client hosts), the
target on two addresses of the data network, links cut and restored; a run through the CLI
on two hosts; and nothing left after teardown (root only: skipped elsewhere, failed under
CI=true). One testbed for the module: the tests run in order. The faults (the connection
wall, split brain, a cut host) are in test_testbed_faults.py, on a testbed of their own."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from rafale.analysis import store
from tests.cluster.testbed_cli import RATE, CliRun, logged_count, module_testbed
from tests.testbed import BIN, CLIENTS, HEAD, Testbed, ip, pids_alive

pytestmark = [pytest.mark.multinode, pytest.mark.slow]

DRIVER = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([[n["NodeManagerAddress"], n["Alive"], n["Resources"].get("CPU", 0.0)]
                  for n in ray.nodes()]))
"""


@pytest.fixture(scope="module")
def testbed() -> Iterator[Testbed]:
    yield from module_testbed()


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


def test_two_client_hosts_split_the_rate_over_hosts_and_target_addresses(
        testbed: Testbed, tmp_path: Path) -> None:
    before = logged_count(testbed)
    # Through an aggregator per client host (tree mode): every request counted once.
    run = CliRun(testbed, tmp_path / "two", "--rate", str(RATE), "--duration", "6s",
                 "--aggregation", "tree")
    code, stdout = run.finish()
    assert code == 0, run.stderr() + stdout
    result = store.load(run.out)
    requests = result.summary["requests"]
    assert result.meta["cluster"]["aggregation"]["mode"] == "tree"
    assert requests["completed"] == requests["sent"] == RATE * 6, (
        requests, result.meta["lost"], result.meta["notes"], run.timed_stderr()[-3000:])
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
