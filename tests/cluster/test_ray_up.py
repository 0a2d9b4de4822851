"""`rafale cluster up` on the namespace testbed, as on a user's own hosts: each host (head,
c1, c2) runs sshd; the driver's side (the head namespace, where `rafale run` runs) starts
the cluster with the real cluster file (cluster/configs/onprem.yaml) given the testbed's
addresses, an SSH key made for the test and this machine's venv; `ray up` starts the head
and, from it, both workers over SSH; a run sends from both, its counts equal to the
target's log per client address; `rafale cluster down` leaves no Ray process; a host SSH
cannot reach is named before anything starts (exit 2).

What the test changes in the file, and why: the addresses, the SSH user (root) and key; the
install step (every host shares this machine's filesystem, so `~/rafale-venv` is a link to
its venv instead of a pip install from the network); the head's CPUs (0: it has no route to
the target's network, as in tests/testbed.py) and the workers' (1 each, on a two-core
machine); and a Ray temp dir of its own for each worker (on one filesystem, a joining node
would use the head's session dir). Each host gets its own home and process table (see
_sshd), as separate machines have."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml

from benchmarks.h2load import ensure_tool
from rafale.analysis import store
from tests.cluster.testbed_cli import CliRun
from tests.testbed import BIN, CLIENTS, HEAD, Testbed, ip, pids_alive, require_testbed

pytestmark = [pytest.mark.multinode, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ONPREM = ROOT / "cluster" / "configs" / "onprem.yaml"
NODES = (HEAD, *CLIENTS)
RATE = 400
UP_TIMEOUT_S = 240.0


SILENT = "10.213.0.99"  # on the control network, no host behind it


@dataclass
class Launched:
    bed: Testbed
    file: Path
    driver_env: dict[str, str]
    up_s: float
    up_output: str
    # `cluster up` of a file naming a host that does not answer, run before the module's
    # cluster is up (nothing else starts meanwhile): its result, and the commands of what
    # it left running in the testbed's namespaces.
    unreachable: subprocess.CompletedProcess[str] | None = None
    left_running: list[str] = field(default_factory=list)

    def rafale(self, *args: str, timeout_s: float = UP_TIMEOUT_S
               ) -> subprocess.CompletedProcess[str]:
        """``rafale ARGS`` on the driver's side (the head namespace)."""
        return self.bed.check_in(HEAD, [sys.executable, "-m", "rafale.cluster.cli", *args],
                                 timeout_s=timeout_s, env=self.driver_env, cwd=ROOT)


def _sshd(bed: Testbed, sshd: str, host: str, key: Path, host_key: Path) -> None:
    """sshd in the host's network namespace, and in a PID and a mount namespace of its own,
    as on a separate machine: `ray stop` (in the file's start commands, and what `ray down`
    runs) ends every Ray process it can see by name, which would be every other test's too
    in this machine's process table; and root's home (in /etc/passwd, a copy bound over it
    there only) is the host's own directory, for every login and every tool that reads it
    from passwd (ssh expands `-i ~/...` so). This machine's /root is left alone."""
    home, temp = bed.dir / f"home-{host}", bed.dir / f"ray-{host}"
    home.mkdir()
    temp.mkdir()
    passwd = bed.dir / f"passwd-{host}"
    passwd.write_text("".join(
        f"root:{':'.join(line.split(':')[1:5])}:{home}:{line.rstrip().split(':')[6]}\n"
        if line.startswith("root:") else line
        for line in Path("/etc/passwd").read_text().splitlines(keepends=True)))
    config = bed.dir / f"sshd-{host}.conf"
    config.write_text("\n".join([
        f"ListenAddress {ip(host)}:22", f"HostKey {host_key}",
        f"PidFile {bed.dir / f'sshd-{host}.pid'}",
        f"AuthorizedKeysFile {key.with_suffix('.pub')}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        f"SetEnv RAY_TMPDIR={temp} TMPDIR={temp}", ""]))  # a Ray temp dir per host
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    script = 'mount --bind "$1" /etc/passwd && exec "$2" -D -e -f "$3"'
    bed.run_in(host, ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c",
                      script, "sh", str(passwd), sshd, str(config)],
               stdout=subprocess.DEVNULL, stderr=(bed.dir / f"sshd-{host}.log").open("w"))


def _wait_ssh(bed: Testbed, key: Path) -> None:
    deadline = time.monotonic() + 20
    for host in NODES:
        while True:
            done = bed.check_in(HEAD, ["ssh", "-o", "BatchMode=yes", "-o",
                                       "StrictHostKeyChecking=no", "-o",
                                       "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                                       "-i", str(key), f"root@{ip(host)}", "echo $HOME"])
            if done.returncode == 0:
                assert done.stdout.strip() == str(bed.dir / f"home-{host}")  # its own home
                break
            assert time.monotonic() < deadline, (host, done.stderr)
            time.sleep(0.2)


def cluster_file(bed: Testbed, key: Path, path: Path, workers: list[str] | None = None
                 ) -> Path:
    """cluster/configs/onprem.yaml with the testbed's hosts (see the module's docstring)."""
    config = yaml.safe_load(ONPREM.read_text())
    config["cluster_name"] = f"rafale-{bed.prefix.rstrip('-')}"
    config["provider"].update(head_ip=ip(HEAD),
                              worker_ips=workers or [ip(host) for host in CLIENTS])
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(key)}
    config["min_workers"] = config["max_workers"] = len(config["provider"]["worker_ips"])
    # The install (a venv, pip from the network) becomes a link to this machine's venv;
    # the other setup commands (the venv's bin on PATH) stay.
    installs = [c for c in config["setup_commands"] if "venv" in c and "PATH" not in c]
    assert installs, "the file's setup commands no longer create ~/rafale-venv"
    config["setup_commands"] = [f"ln -sfn {BIN.parent} ~/rafale-venv"] + [
        c for c in config["setup_commands"] if c not in installs]

    def cpus(commands: list[str], count: int, more: str = "") -> list[str]:
        changed = [c.replace("--num-cpus=$(nproc)", f"--num-cpus={count}{more}")
                   for c in commands]
        assert changed != commands, "the file's start commands no longer set --num-cpus"
        return changed

    config["head_start_ray_commands"] = cpus(config["head_start_ray_commands"], 0)
    # A joining node takes the head's temp dir unless told: on one filesystem, both
    # workers would share the head's session dir (its sockets), and one fails to start.
    config["worker_start_ray_commands"] = cpus(config["worker_start_ray_commands"], 1,
                                               " --temp-dir=$RAY_TMPDIR")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def launched() -> Iterator[Launched]:
    require_testbed()
    sshd = ensure_tool("sshd", "openssh-server")
    for binary, package in (("ssh", "openssh-client"), ("rsync", "rsync"), ("sudo", "sudo")):
        ensure_tool(binary, package)
    with Testbed(ray=False, target=True) as bed:
        key, host_key = bed.dir / "id_ed25519", bed.dir / "host_ed25519"
        for made in (key, host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(made)],
                           check=True, capture_output=True)
        for host in NODES:
            _sshd(bed, sshd, host, key, host_key)
        _wait_ssh(bed, key)
        driver_home, driver_temp = bed.dir / "home-driver", bed.dir / "ray-driver"
        (driver_home / ".ray").mkdir(parents=True)
        driver_temp.mkdir()
        # The cluster's token: the one the testbed's helpers (ray_nodes, CliRun) use.
        (driver_home / ".ray" / "auth_token").write_text(bed.token)
        env = {**bed._ray_env(), "HOME": str(driver_home), "RAY_TMPDIR": str(driver_temp),
               "TMPDIR": str(driver_temp)}
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):  # the driver reads ~/.ray/auth_token
            env.pop(name)
        file = cluster_file(bed, key, bed.dir / "cluster.yaml")
        launched = Launched(bed, file, env, 0.0, "")
        before = bed.pids()
        launched.unreachable = launched.rafale(
            "cluster", "up", str(cluster_file(bed, key, bed.dir / "unreachable.yaml",
                                              [ip("c1"), SILENT])),
            "--ssh-timeout", "2", timeout_s=60)
        launched.left_running = settled(bed, before)
        began = time.monotonic()
        up = launched.rafale("cluster", "up", str(file))
        launched.up_s, launched.up_output = time.monotonic() - began, up.stdout + up.stderr
        assert up.returncode == 0, launched.up_output[-6000:]
        try:
            yield launched
        finally:
            # Ray's SSH connection sharing (ControlPath): /tmp/ray_ssh_<user>/<cluster>,
            # hashed (ray/autoscaler/_private/command_runner.py); the cluster's dir only.
            name = yaml.safe_load(file.read_text())["cluster_name"]
            shutil.rmtree(Path("/tmp") / f"ray_ssh_{_hash(getpass.getuser())}" / _hash(name),
                          ignore_errors=True)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _autoscaler_log(bed: Testbed) -> str:
    """The end of the head's autoscaler log (what it did on each worker over SSH) and of
    each worker's raylet log."""
    logs = sorted((bed.dir / f"ray-{HEAD}").glob("ray/session_latest/logs/monitor.*"))
    for host in CLIENTS:
        logs += sorted((bed.dir / f"ray-{host}").glob("session_latest/logs/raylet.*"))
    return "\n".join(f"== {log}\n{log.read_text(errors='replace')[-4000:]}"
                     for log in logs)


def test_an_unreachable_host_is_named_before_anything_starts(launched: Launched) -> None:
    done = launched.unreachable
    assert done is not None
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot reach host {SILENT} over SSH as root" in done.stderr
    assert ip("c1") not in done.stderr.replace("checking SSH", "")  # the others are fine
    assert launched.left_running == []  # nothing started


def settled(bed: Testbed, before: set[int], wait_s: float = 10.0) -> list[str]:
    """The commands of the processes in the testbed's namespaces that were not there
    ``before``, once the SSH sessions of a check have ended (sshd's session processes go a
    moment after their client: CI saw them)."""
    deadline = time.monotonic() + wait_s
    while (new := pids_alive(bed.pids() - before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [command_of(pid) for pid in new]


def command_of(pid: int) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(psutil.Process(pid).cmdline())
    return f"{pid} (gone)"


def test_up_starts_the_head_and_both_workers_over_ssh(launched: Launched) -> None:
    nodes = launched.bed.ray_nodes(alive_at_least=3, timeout_s=UP_TIMEOUT_S)
    print(f"`rafale cluster up` returned in {launched.up_s:.1f} s")
    alive = sorted((n["ip"], n["cpus"]) for n in nodes if n["alive"])
    if len(alive) != len(NODES):
        print(_autoscaler_log(launched.bed))
    assert alive == [(ip(HEAD), 0.0), (ip("c1"), 1.0), (ip("c2"), 1.0)], nodes
    assert f"--address {launched.bed.head_address}" in launched.up_output


def test_a_run_sends_from_both_workers_and_the_log_agrees(launched: Launched,
                                                          tmp_path: Path) -> None:
    bed = launched.bed
    before = len(bed.access_log_entries())
    run = CliRun(bed, tmp_path / "run", "--rate", str(RATE), "--duration", "4s")
    code, stdout = run.finish(timeout_s=UP_TIMEOUT_S)
    assert code == 0, run.stderr() + stdout
    result = store.load(run.out)
    requests = result.summary["requests"]
    assert requests["completed"] == requests["sent"] == RATE * 4, requests
    entries = bed.access_log_entries()[before:]
    by_client = Counter(e["request"]["remote_ip"] for e in entries)
    # One sender per worker host (the head has no CPU for one), each on its host's address.
    assert sorted(a["ip"] for a in result.meta["actors"]) == sorted(ip(h) for h in CLIENTS)
    # Each client host's requests in the target's log: its sender's share, all of them.
    assert sum(by_client.values()) == requests["completed"]
    for host in CLIENTS:
        assert abs(by_client[ip(host, "data")] - RATE * 2) <= 0.1 * RATE * 2, by_client


def test_down_leaves_no_ray_process(launched: Launched) -> None:
    bed = launched.bed
    done = launched.rafale("cluster", "down", str(launched.file))
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 20
    while True:
        left = []
        host_of = {pid: host for host in NODES for pid in bed.pids([bed.ns(host)])}
        for pid in host_of:
            try:
                line = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue
            if "ray" in line and "sshd" not in line and not line.startswith("ssh "):
                left.append(f"{host_of.get(pid, '?')}: {' '.join(line.split())[:100]}")
        if not left:
            break
        assert time.monotonic() < deadline, (left, done.stdout[-3000:], done.stderr[-3000:])
        time.sleep(0.5)

