"""What the namespace testbed's test modules share: the runs' rate and lease, the target
namespace's small accept backlog, the module's testbed (one per module: a module per
worker in the multinode pass, so two testbeds may run side by side, each in namespaces of
its own prefix), and `rafale run` through the CLI in the head namespace."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tests.testbed import HEAD, Testbed, require_testbed

RATE = 1000
LEASE_S = 3.0
# The target's namespace: a small accept backlog, for the connection wall (the other runs
# open a few HTTP/2 connections each).
BACKLOG = {"net.core.somaxconn": 32, "net.ipv4.tcp_max_syn_backlog": 32}



def module_testbed() -> Iterator[Testbed]:
    """A test module's testbed (its module-scoped ``testbed`` fixture yields from this)."""
    require_testbed()
    # Ray's default node-death detection (tens of seconds): in the runs, the lease is what
    # notices a cut host.
    with Testbed(system_config=None, target_sysctls=BACKLOG, target_delay=True) as built:
        assert built.setup_s < 45.0
        yield built


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
