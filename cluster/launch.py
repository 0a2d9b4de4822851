"""``rafale cluster up|down FILE``: Ray's cluster launcher (``ray up``, local provider) on
your own hosts over SSH, with what it lacks in front of it.

``ray up`` with ``provider: type: local`` logs in to the head over SSH, runs the file's
setup and start commands there, and the head's autoscaler then does the same on every
worker. A host that SSH cannot reach makes it retry for minutes and end in a traceback; a
cluster file left with its documentation addresses does the same. rafale reads the file
first (the hosts, the SSH user and key), tries one SSH login to every host at once
(BatchMode: a key, never a password prompt), and stops before starting anything, naming
each host it could not reach (exit 2). It also writes the cluster's Ray token where the
file ships it from (``file_mounts`` to ``~/.ray/auth_token``) when it is missing: every
node and the driver then share it (Ray 2.60 turns token authentication on).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TOKEN_MOUNT", "ClusterFile", "ray_command", "ray_up_env", "read_cluster_file",
           "ssh_argv", "stop_workers", "unreachable", "write_token"]

TOKEN_MOUNT = "~/.ray/auth_token"  # where Ray reads its token by default, on every node
SSH_TIMEOUT_S = 5.0
RAY_PORT = 6379
_DOC_NETS = tuple(ipaddress.ip_network(n) for n in
                  ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))  # RFC 5737


@dataclass(frozen=True)
class ClusterFile:
    """What rafale needs of a ``ray up`` file (local provider)."""

    path: Path
    name: str
    head_ip: str
    worker_ips: tuple[str, ...]
    ssh_user: str
    ssh_key: Path | None
    token_source: Path | None  # the local file mounted at TOKEN_MOUNT, if any
    ray_port: int

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.head_ip, *self.worker_ips)

    @property
    def address(self) -> str:
        """The head's GCS address, as ``rafale run --address`` takes it."""
        return f"{self.head_ip}:{self.ray_port}"


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {where} must be a mapping, got {value!r}")
    return value


def _address(value: Any, where: str, path: Path) -> str:
    try:
        parsed = ipaddress.ip_address(str(value))
    except ValueError:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9.-]+", value):
            return value  # a host name
        raise ValueError(f"{path}: {where} {value!r} is not an IP address or host "
                         "name") from None
    if any(parsed in net for net in _DOC_NETS):
        raise ValueError(f"{path}: {where} {value} is a documentation placeholder "
                         "(RFC 5737): put your hosts' addresses in the file")
    return str(parsed)


def read_cluster_file(path: str | Path) -> ClusterFile:
    """The hosts, SSH login and token mount of a ``ray up`` file; ValueError naming what
    is wrong (not YAML, not the local provider, no head, placeholder addresses...)."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the cluster file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not YAML: {exc}") from None
    config = _mapping(loaded, "the file", path)
    provider = _mapping(config.get("provider"), "provider", path)
    if provider.get("type") != "local":
        raise ValueError(f"{path}: provider.type is {provider.get('type')!r}; rafale cluster "
                         "up runs the local provider (your own hosts over SSH): 'local'. "
                         "For a cloud provider, run `ray up` itself")
    head = _address(provider.get("head_ip"), "provider.head_ip", path)
    workers_raw = provider.get("worker_ips") or []
    if not isinstance(workers_raw, list):
        raise ValueError(f"{path}: provider.worker_ips must be a list of addresses")
    workers = tuple(_address(w, "provider.worker_ips entry", path) for w in workers_raw)
    auth = _mapping(config.get("auth"), "auth", path)
    user = auth.get("ssh_user")
    if not isinstance(user, str) or not user:
        raise ValueError(f"{path}: auth.ssh_user must name the SSH user, got {user!r}")
    key = auth.get("ssh_private_key")
    mounts = _mapping(config.get("file_mounts") or {}, "file_mounts", path)
    token = mounts.get(TOKEN_MOUNT)
    port = RAY_PORT
    for command in config.get("head_start_ray_commands") or []:
        if found := re.search(r"--port[= ](\d+)", str(command)):
            port = int(found[1])
    return ClusterFile(path, str(config.get("cluster_name") or "default"), head, workers,
                       user, Path(key).expanduser() if key else None,
                       Path(str(token)).expanduser() if token else None, port)


def ssh_argv(cluster: ClusterFile, host: str, *command: str,
             timeout_s: float = SSH_TIMEOUT_S) -> list[str]:
    """One SSH login to ``host`` as the file's user with its key, never prompting."""
    key = ["-i", str(cluster.ssh_key)] if cluster.ssh_key else []
    return ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(timeout_s))}",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", *key, f"{cluster.ssh_user}@{host}", *command]


def _on_hosts(cluster: ClusterFile, hosts: Sequence[str], command: str, *,
              timeout_s: float, late: str, connect_timeout_s: float = SSH_TIMEOUT_S
              ) -> dict[str, str]:
    """``command`` over SSH on every host at once; the hosts it failed on, with why (the
    last line it printed; ``late`` when it did not end within ``timeout_s``)."""
    def one(host: str) -> str | None:
        try:
            done = subprocess.run(ssh_argv(cluster, host, command, timeout_s=connect_timeout_s),
                                  capture_output=True, text=True, timeout=timeout_s,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return late
        except FileNotFoundError:
            return "no ssh client on this machine (Debian: apt-get install openssh-client)"
        if done.returncode == 0:
            return None
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        return lines[-1] if lines else f"exit {done.returncode}"

    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        whys = list(pool.map(one, hosts))
    return {host: why for host, why in zip(hosts, whys, strict=True) if why}


def unreachable(cluster: ClusterFile, timeout_s: float = SSH_TIMEOUT_S) -> dict[str, str]:
    """The hosts an SSH login to (running ``true``) failed on, with why; all at once."""
    return _on_hosts(cluster, cluster.hosts, "true", timeout_s=timeout_s + 5,
                     late=f"no answer within {timeout_s + 5:g} s", connect_timeout_s=timeout_s)


# How `ray down` runs `ray stop` on a host (a login shell that reads ~/.bashrc, where the
# cluster file puts the venv's bin on PATH), for the workers it leaves running.
RAY_STOP = "bash --login -c -i 'source ~/.bashrc; ray stop' </dev/null"


def stop_workers(cluster: ClusterFile, timeout_s: float = 60.0) -> dict[str, str]:
    """`ray stop` on every worker host at once; the hosts it failed on, with why.

    `ray down` with the local provider stops Ray on the head only and marks the workers
    terminated: their Ray processes stay until their raylets give up on the lost head
    (a minute), or for good if one is restarted by hand."""
    return _on_hosts(cluster, cluster.worker_ips, RAY_STOP, timeout_s=timeout_s,
                     late=f"`ray stop` did not end within {timeout_s:g} s")


def write_token(cluster: ClusterFile) -> Path | None:
    """Create the token file the cluster file ships to every node, if it is missing (a
    random 32-byte hex token, readable by its owner only); its path, or None if the file
    ships no token."""
    source = cluster.token_source
    if source is None or source.exists():
        return source
    source.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return source


def ray_up_env() -> dict[str, str]:
    """The environment of `ray up`: Ray's first autoscaler (v1), unless the caller chose.
    With the local provider, v2 (the default since Ray 2.50) starts the first worker and
    then never the next one: it takes the head for a worker that vanished and keeps
    "adding 1 node" without launching it (Ray 2.60, measured on the testbed: one worker of
    two after 240 s); v1 starts every listed worker."""
    return {"RAY_UP_enable_autoscaler_v2": "0", **os.environ}


def ray_command(verb: str, cluster: ClusterFile, extra: Sequence[str] = ()) -> list[str]:
    """``ray up|down -y FILE``, with the ``ray`` of this Python's environment."""
    ray = Path(sys.executable).with_name("ray")
    return [str(ray) if ray.exists() else "ray", verb, "-y", *extra, str(cluster.path)]
