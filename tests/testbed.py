"""A several-hosts testbed out of Linux network namespaces, for multi-host runs and
network partitions (root only).

Five namespaces named ``rtb<6 hex>-<host>`` (one prefix per testbed):

- ``head``   Ray head (0 CPUs), where the driver runs; control network only.
- ``c1``, ``c2``  client hosts: Ray worker nodes with 1 CPU each; control and data networks.
- ``target`` the embedded Caddy target on two data addresses; data network only.
- ``sw``     the switch: one bridge per network, every host's veth peer attached to it.

Control (Ray) is 10.213.0.0/24, data (clients to target) is 10.214.0.0/24. These exist only
inside the namespaces, which have no route anywhere else, so no traffic can leave them.
Nothing is created in the root namespace: each veth pair is created inside ``sw`` with its
peer directly in the host namespace.

Ray daemons get the testbed's token (``env()``), Ray's default worker niceness, and one
temp dir per node under the testbed's dir (all nodes share this machine's filesystem, and a
worker node would otherwise use the head's temp dir, sharing its session and socket
directory). Teardown goes by namespace and process id only: every process in a testbed
namespace is sent SIGTERM, then SIGKILL, then the namespaces are deleted. Ray logs
"Failed to determine local IP via external connectivity to: 8.8.8.8:53" at start: a UDP
connect() (no packet) that finds no route here; harmless, as every node gets its address.

The target's access log carries ``request.remote_ip`` (the client address) and, added by
this testbed, ``local_ip`` (the target address the request came in on).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import pytest

Net = Literal["control", "data"]
NetChoice = Literal["both", "control", "data"]

BIN = Path(sys.executable).parent  # the venv's bin: python, ray, caddy
HEAD, CLIENTS, TARGET, SWITCH = "head", ("c1", "c2"), "target", "sw"
HOSTS = (HEAD, *CLIENTS, TARGET)
RAY_PORT = 6379
NETS: dict[Net, str] = {"control": "10.213.0", "data": "10.214.0"}  # /24 each
DEVICE: dict[Net, str] = {"control": "ctl0", "data": "data0"}  # host side of the veth
BRIDGE: dict[Net, str] = {"control": "br-ctl", "data": "br-data"}  # in the sw namespace
ADDRESSES: dict[str, dict[Net, tuple[str, ...]]] = {
    HEAD: {"control": ("10.213.0.1",)},
    "c1": {"control": ("10.213.0.11",), "data": ("10.214.0.11",)},
    "c2": {"control": ("10.213.0.12",), "data": ("10.214.0.12",)},
    TARGET: {"data": ("10.214.0.100", "10.214.0.101")},
}


# Runs in the target namespace: the embedded target on the data addresses (private ones:
# private_ok) until stdin closes or SIGTERM. Each access-log entry has `local_ip`, the
# address the request came in on.
_TARGET_MAIN = r"""
import json, signal, sys
from rafale.cluster import target as t

addresses = tuple(sys.argv[1].split(","))
target = t.Target(addresses=addresses, private_ok=True, access_log=True, keep_dir=True,
                  delay=sys.argv[2] == "delay")

def end(signum, frame):
    raise SystemExit(0)

signal.signal(signal.SIGTERM, end)
try:
    target.start()
    print(json.dumps({
        "host": target.host, "addresses": list(target.addresses),
        "https_port": target.https_port, "http_port": target.http_port,
        "ca_file": str(target.ca_file), "access_log_path": str(target.access_log_path),
        "resolve": list(target.resolve), "pid": target.pid, "dir": str(target.dir),
    }), flush=True)
    sys.stdin.read()
finally:
    target.stop()
"""

# Runs in the head namespace: every node GCS knows of as JSON, once or (with a count) as
# soon as that many are alive. Asks GCS directly: no driver, no job.
_NODES_MAIN = r"""
import json, sys, time
from ray._raylet import GcsClient

client = GcsClient(address=sys.argv[1])
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    nodes = [{"ip": n.node_manager_address, "alive": n.state == 0,
              "cpus": n.resources_total.get("CPU", 0.0), "node_id": n.node_id.hex()}
             for n in client.get_all_node_info(timeout=5).values()]
    if sum(n["alive"] for n in nodes) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.1)
print(json.dumps(nodes))
"""


def ip(host: str, net: Net = "control") -> str:
    """The host's (first) address on that network."""
    return ADDRESSES[host][net][0]


@functools.cache
def testbed_available() -> str | None:
    """Why a testbed cannot be built here (not root, no `ip`, no namespaces), or None."""
    if os.geteuid() != 0:
        return "the namespace testbed needs root"
    if shutil.which("ip") is None:
        return "the namespace testbed needs `ip` (iproute2)"
    probe = f"rtbprobe{secrets.token_hex(3)}"
    commands = [["ip", "netns", "add", probe],
                ["ip", "-n", probe, "link", "add", "br0", "type", "bridge"],
                ["ip", "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                ["ip", "-n", probe, "link", "set", "v0", "master", "br0"]]
    try:
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            if done.returncode != 0:
                failed = " ".join(command)
                return f"cannot build a namespace testbed: `{failed}`: {done.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def require_testbed() -> None:
    """Skip the calling test (fail it under CI=true) when no testbed can be built here."""
    reason = testbed_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class TargetInfo:
    """What clients need to reach the target (paths are on the shared filesystem)."""

    host: str
    addresses: tuple[str, ...]
    https_port: int
    http_port: int
    ca_file: str
    access_log_path: str
    resolve: tuple[str, ...]  # `host:port:addr1,addr2` for each port
    pid: int  # Caddy's
    dir: str


class Testbed:
    """Namespaces, networks, a Ray cluster (head + c1 + c2) and the target.

    Use as a context manager, or call start() and close(). close() is idempotent and
    cleans up whatever a failed start() left."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, ray: bool = True, target: bool = True,
                 system_config: Mapping[str, Any] | None = None,
                 target_sysctls: Mapping[str, int] | None = None, target_delay: bool = False,
                 start_timeout_s: float = 60.0, stop_grace_s: float = 1.0) -> None:
        self.prefix = f"rtb{secrets.token_hex(3)}-"
        self.token = secrets.token_hex(16)
        self.with_ray, self.with_target = ray, target
        self.system_config = dict(system_config) if system_config else None
        # Set in the target's namespace before the target listens (e.g. a small accept
        # backlog: net.core.somaxconn is read at listen(); both are per namespace).
        self.target_sysctls = dict(target_sysctls or {})
        self.target_delay = target_delay  # serve /delay/<ms> (cluster/target/delay_upstream.py)
        self.start_timeout_s, self.stop_grace_s = start_timeout_s, stop_grace_s
        self.dir = Path(tempfile.gettempdir()) / self.prefix.rstrip("-")
        self.head_address = f"{ip(HEAD)}:{RAY_PORT}"
        self.pids_seen: set[int] = set()  # every process found in a testbed namespace
        self.setup_s = self.teardown_s = 0.0
        self._target_info: TargetInfo | None = None
        self._target: subprocess.Popen[str] | None = None
        self._children: list[subprocess.Popen[Any]] = []
        self._started = self._closed = False

    def __repr__(self) -> str:
        return f"Testbed({self.prefix!r}, ray={self.with_ray}, target={self.with_target})"

    # -- names and environment -----------------------------------------------------------

    def ns(self, host: str) -> str:
        """The namespace name of a host ("head", "c1", "c2", "target", "sw")."""
        if host not in (*HOSTS, SWITCH):
            raise ValueError(f"unknown host {host!r}; one of {(*HOSTS, SWITCH)}")
        return self.prefix + host

    def namespaces(self) -> list[str]:
        """The testbed's namespaces that exist now (by prefix)."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=True).stdout
        names = (line.split()[0] for line in listed.splitlines() if line.strip())
        return [name for name in names if name.startswith(self.prefix)]

    def env(self) -> dict[str, str]:
        """What a driver (or any Ray client) needs on top of its environment."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                "RAY_USAGE_STATS_ENABLED": "0"}

    def _ray_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env()}
        for name in ("RAY_ADDRESS", "RAY_worker_niceness"):  # Ray's defaults, on purpose
            env.pop(name, None)
        return env

    def run_in(self, host: str, argv: Iterable[str], **popen: Any) -> subprocess.Popen[Any]:
        """Popen(argv) inside the host's namespace; env defaults to ours plus env()."""
        popen.setdefault("env", {**os.environ, **self.env()})
        process = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], **popen)
        self._children.append(process)
        return process

    def check_in(self, host: str, argv: Iterable[str], timeout_s: float = 30.0,
                 **popen: Any) -> subprocess.CompletedProcess[str]:
        """Run argv in the host's namespace to the end; its output as text (not checked)."""
        process = self.run_in(host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, **popen)
        try:
            out, err = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    # -- links ----------------------------------------------------------------------------

    def cut(self, host: str, net: NetChoice = "both", *,
            at: Literal["host", "switch"] = "host") -> None:
        """Take the host's link(s) down. At the host (default) its own kernel drops the
        subnet route, so it fails fast (ENETUNREACH) while the peers see silence; at the
        switch both sides see silence (packets vanish) until restore()."""
        self._set_links(host, net, "down", at)

    def restore(self, host: str, net: NetChoice = "both", *,
                at: Literal["host", "switch"] = "host") -> None:
        """Bring the link(s) cut() took down up again."""
        self._set_links(host, net, "up", at)

    def _set_links(self, host: str, net: NetChoice, state: str, at: str) -> None:
        nets: tuple[Net, ...] = ("control", "data") if net == "both" else (net,)
        for one in nets:
            if one not in ADDRESSES.get(host, {}):
                raise ValueError(f"{host!r} is not on the {one} network")
            where, device = ((host, DEVICE[one]) if at == "host"
                             else (SWITCH, self._switch_port(host, one)))
            _ip("-n", self.ns(where), "link", "set", device, state)

    @staticmethod
    def _switch_port(host: str, net: Net) -> str:
        return f"{host}-{'ctl' if net == 'control' else 'data'}"

    # -- target ---------------------------------------------------------------------------

    @property
    def target_info(self) -> TargetInfo:
        if self._target_info is None:
            raise RuntimeError("the testbed has no running target (start() it with target)")
        return self._target_info

    def target_url(self, path: str = "/", tls: bool = True) -> str:
        info = self.target_info
        scheme, port = ("https", info.https_port) if tls else ("http", info.http_port)
        return f"{scheme}://{info.host}:{port}/{path.lstrip('/')}"

    def resolve_args(self) -> list[str]:
        """`--resolve host:port:a1,a2` for both ports, as CLI arguments."""
        return [arg for entry in self.target_info.resolve for arg in ("--resolve", entry)]

    def curl_argv(self, path: str = "/", *options: str) -> list[str]:
        """curl to the target over HTTPS (CA and both addresses pinned), body on stdout."""
        return ["curl", "-sS", "--cacert", self.target_info.ca_file, *self.resolve_args(),
                *options, self.target_url(path)]

    def netstat(self, host: str) -> dict[str, int]:
        """The host namespace's own kernel counters (/proc/net/netstat, what nstat shows):
        "TcpExt.ListenOverflows" and the like."""
        text = self.check_in(host, ["cat", "/proc/net/netstat"]).stdout.splitlines()
        counters: dict[str, int] = {}
        for names, values in zip(text[::2], text[1::2], strict=False):
            group, _, keys = names.partition(":")
            counters.update({f"{group}.{k}": int(v) for k, v in
                             zip(keys.split(), values.partition(":")[2].split(), strict=True)})
        return counters

    def access_log_entries(self) -> list[dict[str, Any]]:
        """Every request logged so far: `request.remote_ip` is the client, `local_ip` the
        target address it reached. Empty without a target, or after close()."""
        if self._target_info is None:
            return []
        path = Path(self._target_info.access_log_path)
        if not path.exists():
            return []
        with path.open() as lines:
            return [json.loads(line) for line in lines if line.endswith("\n")]

    def requests_by_address(self) -> Counter[tuple[str, str]]:
        """Logged requests per (client address, target address)."""
        return Counter((entry["request"]["remote_ip"], entry.get("local_ip", ""))
                       for entry in self.access_log_entries())

    # -- Ray ------------------------------------------------------------------------------

    def ray_nodes(self, alive_at_least: int = 0, timeout_s: float = 0.0) -> list[dict[str, Any]]:
        """The nodes GCS knows (ip, alive, cpus, node_id), optionally once enough are
        alive (or timeout_s passed)."""
        done = self.check_in(HEAD, [str(BIN / "python"), "-c", _NODES_MAIN, self.head_address,
                                    str(alive_at_least), str(timeout_s)],
                             timeout_s=timeout_s + 30.0, env=self._ray_env())
        if done.returncode != 0:
            raise RuntimeError(f"cannot list Ray nodes: {done.stderr[-2000:]}")
        nodes: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
        return nodes

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Testbed:
        """Build everything; on any failure, tear down what was built and raise."""
        if self._closed:
            raise RuntimeError("this testbed is closed; build a new one")
        if self._started:
            return self
        self._started, began = True, time.monotonic()
        try:
            self.dir.mkdir(mode=0o700)
            self._build_networks()
            if self.target_sysctls:
                _ip("netns", "exec", self.ns(TARGET), "sysctl", "-q", "-w",
                    *(f"{name}={value}" for name, value in self.target_sysctls.items()))
            if self.with_target:
                self._start_target()
            if self.with_ray:
                self._start_ray()
            if self.with_target:
                self._target_info = self._read_target_info()
        except BaseException:
            self.close()
            raise
        self.setup_s = time.monotonic() - began
        return self

    def _build_networks(self) -> None:
        for host in (SWITCH, *HOSTS):
            _ip("netns", "add", self.ns(host))
        switch = [f"link add {BRIDGE[net]} type bridge" for net in NETS] + \
                 [f"link set {BRIDGE[net]} up" for net in NETS] + ["link set lo up"]
        for host, nets in ADDRESSES.items():
            for net in nets:
                port = self._switch_port(host, net)
                switch += [f"link add {port} type veth peer name {DEVICE[net]} "
                           f"netns {self.ns(host)}",
                           f"link set {port} master {BRIDGE[net]}", f"link set {port} up"]
        _ip_batch(self.ns(SWITCH), switch)
        for host, nets in ADDRESSES.items():
            commands = ["link set lo up"]
            for net, addresses in nets.items():
                commands += [f"address add {a}/24 dev {DEVICE[net]}" for a in addresses]
                commands.append(f"link set {DEVICE[net]} up")
            _ip_batch(self.ns(host), commands)

    def _start_target(self) -> None:
        home = self.dir / "target"
        home.mkdir()
        argv = [str(BIN / "python"), "-c", _TARGET_MAIN, ",".join(ADDRESSES[TARGET]["data"]),
                "delay" if self.target_delay else "-"]
        with (home / "stderr").open("w") as stderr:
            self._target = self.run_in(TARGET, argv, env={**os.environ, "TMPDIR": str(home)},
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=stderr, text=True)

    def _read_target_info(self) -> TargetInfo:
        process = self._target
        assert process is not None and process.stdout is not None
        line = _readline(process.stdout, self.start_timeout_s)
        if not line:
            tail = (self.dir / "target" / "stderr").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the target did not start (code {process.poll()}):\n{tail}")
        info = json.loads(line)
        info["addresses"], info["resolve"] = tuple(info["addresses"]), tuple(info["resolve"])
        return TargetInfo(**info)

    def _ray_start(self, host: str, *args: str) -> subprocess.Popen[Any]:
        temp = self.dir / host
        temp.mkdir()
        argv = [str(BIN / "ray"), "start", f"--node-ip-address={ip(host)}",
                f"--temp-dir={temp}", "--disable-usage-stats", *args]
        with (self.dir / f"ray-start-{host}.log").open("w") as log:
            return self.run_in(host, argv, env=self._ray_env(), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT)

    def _wait_ray_start(self, host: str, process: subprocess.Popen[Any]) -> None:
        try:
            code = process.wait(self.start_timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            log = (self.dir / f"ray-start-{host}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"`ray start` on {host} failed (code {code}):\n{log}")

    def _start_ray(self) -> None:
        head = ["--head", f"--port={RAY_PORT}", "--num-cpus=0", "--include-dashboard=false"]
        if self.system_config:
            head.append(f"--system-config={json.dumps(self.system_config)}")
        self._wait_ray_start(HEAD, self._ray_start(HEAD, *head))
        workers = {host: self._ray_start(host, f"--address={self.head_address}",
                                         "--num-cpus=1") for host in CLIENTS}
        for host, process in workers.items():
            self._wait_ray_start(host, process)
        nodes = self.ray_nodes(alive_at_least=len(HOSTS) - 1, timeout_s=self.start_timeout_s)
        alive = sorted(n["ip"] for n in nodes if n["alive"])
        if alive != sorted(ip(h) for h in (HEAD, *CLIENTS)):
            raise RuntimeError(f"Ray nodes alive: {alive} (all: {nodes})")

    def close(self) -> None:
        """Stop the target, end every process of the testbed's namespaces (SIGTERM, then
        SIGKILL), delete the namespaces and the temp dir. Idempotent."""
        if self._closed:
            return
        began = time.monotonic()
        if self._target is not None and self._target.poll() is None:
            with contextlib.suppress(OSError, ValueError):  # closing stdin stops the target
                assert self._target.stdin is not None
                self._target.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._target.wait(5.0)
        namespaces = self.namespaces()
        self._end_processes(namespaces)
        for child in self._children:  # reap ours
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(1.0)
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
        for name in namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
        self._target_info = None
        self._closed = True
        self.teardown_s = time.monotonic() - began

    def _end_processes(self, namespaces: list[str]) -> None:
        for sig, wait_s in ((signal.SIGTERM, self.stop_grace_s), (signal.SIGKILL, 5.0),
                            (signal.SIGKILL, 5.0)):
            pids = self.pids(namespaces)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while pids and time.monotonic() < deadline:
                time.sleep(0.05)
                self._reap()
                pids = self.pids(namespaces)
            if not pids:
                return

    def pids(self, namespaces: Iterable[str] | None = None) -> set[int]:
        """Every process in the testbed's namespaces now (recorded in pids_seen too)."""
        found: set[int] = set()
        for name in self.namespaces() if namespaces is None else namespaces:
            listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                    text=True, timeout=10).stdout
            found.update(int(pid) for pid in listed.split())
        self.pids_seen |= found
        return found

    def _reap(self) -> None:
        for child in self._children:
            child.poll()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _ip_batch(namespace: str, commands: list[str]) -> None:
    done = subprocess.run(["ip", "-n", namespace, "-batch", "-"], input="\n".join(commands),
                          capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip -n {namespace} -batch: {done.stderr.strip()}")


def _readline(stream: IO[str], timeout_s: float) -> str:
    """One line from a pipe, or "" at EOF or after timeout_s."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return stream.readline()


def pids_alive(pids: Iterable[int]) -> list[int]:
    """Those of pids still running (not gone, not a zombie)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive
