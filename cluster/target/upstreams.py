"""The embedded target's Python upstreams behind Caddy (the push emulator, the /delay/<ms>
route): start one on loopback and wait until it listens; which sockets a process bound."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from rafale.cluster.target.config import free_port


def bound_sockets(pid: int) -> set[tuple[str, str, int]]:
    """("tcp"|"udp", ip, port) for every listening TCP / bound UDP socket of the process."""
    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return set()
    bound = set()
    for conn in conns:
        kind = "tcp" if conn.type == socket.SOCK_STREAM else "udp"
        if conn.laddr and (kind == "udp" or conn.status == psutil.CONN_LISTEN):
            bound.add((kind, conn.laddr.ip, conn.laddr.port))
    return bound


def start_upstream(home: Path, address: str, taken: tuple[int, ...], module: str,
                   arguments: list[str], timeout_s: float
                   ) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m rafale.cluster.target.MODULE --listen ADDRESS:PORT ARGUMENTS`` (a
    free port, not one of ``taken``), its output in ``home/MODULE.stderr``; wait until it
    listens. (process, "address:port"); RuntimeError with its output when it does not."""
    port = free_port((address,), exclude=taken)
    command = [sys.executable, "-m", f"rafale.cluster.target.{module}",
               "--listen", f"{address}:{port}", *arguments]
    log = home / f"{module}.stderr"
    with log.open("ab") as stderr:
        process = subprocess.Popen(command, cwd=home, stdin=subprocess.DEVNULL,
                                   stdout=stderr, stderr=stderr)
    deadline = time.monotonic() + timeout_s
    while ("tcp", address, port) not in bound_sockets(process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{module.replace('_', ' ')} did not start:\n{tail}")
        time.sleep(0.02)
    return process, f"{address}:{port}"
