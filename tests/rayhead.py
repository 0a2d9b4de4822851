"""A Ray head started by `ray start` on loopback, as a user's cluster is, torn down by process id.

Every process of the head carries a tag in its environment (RAFALE_TEST_RAY_HEAD); stop()
kills exactly the processes with this head's tag, never by name, so several heads (one per
test worker) and any other Ray on the machine are left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

from rafale.cluster.placement import LOCAL_RAY_ENV

RAY = Path(sys.executable).with_name("ray")
TAG = "RAFALE_TEST_RAY_HEAD"
# Ray gives a starting node 30 s to register with its GCS; several starts at once on two
# busy cores (one per test worker at the session's start) can exceed it. The test processes
# start their Rays one at a time: the lock is held only while a node starts (~4-7 s).
START_LOCK = Path(tempfile.gettempdir()) / "rafale-tests-ray-start.lock"


@contextlib.contextmanager
def one_ray_start_at_a_time() -> Iterator[None]:
    """Hold the machine-wide lock of the test processes' Ray starts (flock, released when
    the block ends or the process dies)."""
    with open(START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RayHead:
    """`ray start --head` on 127.0.0.1 with token authentication; ``env`` is what a driver
    (a `rafale` process) needs to join it, ``address`` its GCS address."""

    def __init__(self, *, num_cpus: int = 2, prefix: Sequence[str] = (),
                 worker_niceness: int | None = 0) -> None:
        self.tag = secrets.token_hex(8)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {**os.environ, TAG: self.tag, "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0",
               **LOCAL_RAY_ENV}  # as rafale's own local Ray; niceness below
        env.pop("RAY_ADDRESS", None)
        if worker_niceness is None:  # Ray's default (15), as `ray start` gives a user
            env.pop("RAY_worker_niceness", None)
        else:
            env["RAY_worker_niceness"] = str(worker_niceness)
        self.env = env
        self._command = [*prefix, str(RAY), "start", "--head", "--node-ip-address=127.0.0.1",
                         f"--port={self.port}", f"--num-cpus={num_cpus}",
                         "--include-dashboard=false", "--disable-usage-stats"]

    def start(self) -> RayHead:
        with one_ray_start_at_a_time():
            started = subprocess.run(self._command, env=self.env, capture_output=True,
                                     text=True, timeout=120)
        if started.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed: {started.stderr[-2000:]}")
        return self

    def processes(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get(TAG) == self.tag:
                    found.append(process)
        return found

    def stop(self) -> None:
        for _ in range(2):  # a worker the raylet forked during the first pass
            killed = self.processes()
            for process in killed:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs(killed, timeout=10)

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
