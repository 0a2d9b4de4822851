"""Helpers shared by the engine tests: configs for the embedded target and run totals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.actors.pacing import Schedule
from rafale.analysis.aggregate import Aggregate
from rafale.cluster.target import Target
from tests.rayhead import RayHead

Windows = list[dict[str, Any]]
RAFALE = [sys.executable, "-m", "rafale.cluster.cli"]
ROOT = Path(__file__).resolve().parents[1]


def rafale(*args: str, head: RayHead | None = None, timeout_s: float = 120
           ) -> subprocess.CompletedProcess[str]:
    """``rafale ARGS`` in a fresh process, from the repo root, its output captured.

    With ``head`` (the session's ``ray_head``), ``--address`` joins that ``ray start`` head
    (~1 s) instead of starting a Ray of its own (~4 s): for the tests that check what the
    CLI wires and prints, not how it starts Ray."""
    command, env = [*RAFALE, *args], None
    if head is not None:
        command += ["--address", head.address]
        env = head.env
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout_s, check=False)


def target_args(target: Target) -> list[str]:
    """The CLI options that reach the embedded target: its CA and its --resolve lines."""
    args = ["--cacert", str(target.ca_file)]
    for entry in target.resolve:
        args += ["--resolve", entry]
    return args


def target_config(target: Target, http: str, **overrides: Any) -> EngineConfig:
    """A config for the embedded target (TLS unless http is 2c), 200 req/s for 1 s."""
    tls = http != "2c"
    options: dict[str, Any] = {
        "urls": (target.url("/", tls=tls),),
        "http": http,
        "resolve": tuple(ResolveEntry.parse(r) for r in target.resolve),
        "cacert": str(target.ca_file),
        "schedule": Schedule.constant(200, 1.0),
        "duration_s": 1.0,
        "max_in_flight": 20,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
    }
    options.update(overrides)
    return EngineConfig(**options)


def plain_config(url: str, rate_per_s: float, duration_s: float, **overrides: Any) -> EngineConfig:
    """A cleartext HTTP/1.1 config for one URL at a constant rate."""
    options: dict[str, Any] = {
        "urls": (url,),
        "http": "1.1",
        "schedule": Schedule.constant(rate_per_s, duration_s),
        "duration_s": duration_s,
        "max_in_flight": 20,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
    }
    options.update(overrides)
    return EngineConfig(**options)


def total(windows: Windows) -> dict[str, Any]:
    """All seconds of one run added up (as the driver merges them), in the window's shape;
    in_flight is the last window's."""
    merged = Aggregate()
    for data in windows:
        merged.add_window(data)
    result: dict[str, Any] = {**merged.counters, **merged.maps, **merged.encoded()}
    result["in_flight"] = windows[-1]["in_flight"] if windows else 0
    return result


def by_second(windows: Windows) -> dict[int, dict[str, Any]]:
    return {w["second"]: w for w in windows}


def follow_stderr(
    process: subprocess.Popen[str],
) -> tuple[list[str], threading.Event, threading.Thread]:
    """Collect a ``rafale run`` process's stderr lines in a (returned) thread; the event is
    set once its progress line reports requests sent."""
    lines: list[str] = []
    sending = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        try:
            for line in process.stderr:
                lines.append(line)
                if re.search(r"sent [1-9]", line):
                    sending.set()
        except ValueError:  # communicate() closed the pipe: the rest went to its caller
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, sending, reader


def default_sigint() -> None:
    """``preexec_fn`` for a child that must take Ctrl-C as a terminal's foreground job does.

    A test run started in the background by a non-interactive shell inherits SIGINT as
    ignored, and Python then installs no KeyboardInterrupt handler in its children."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
