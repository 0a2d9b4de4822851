"""h2load's side of a measurement: install it when missing, run it, parse its report.

h2load is aimed at ``https://rafale.test:PORT/`` with ``--connect-to=ADDR:PORT`` so that SNI
and ``:authority`` are the target's host name (h2load does not verify certificates).

Client CPU (user+sys) of the main phase only, the same phase rafale is measured over:
the total CPU of the h2load child (``RUSAGE_CHILDREN`` delta around its wait) minus its
CPU when it prints "Warm-up phase is over" (read from /proc with psutil, 10 ms ticks).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from benchmarks.shapes import Measurement, Shape
from rafale.cluster.target import Target

__all__ = ["H2loadReport", "ensure_h2load", "ensure_tool", "h2load_command", "parse_report",
           "run_h2load"]

_FINISHED = re.compile(r"^finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_WARMED_UP = "Warm-up phase is over"


def _apt(*args: str) -> bool:
    prefix = [] if os.geteuid() == 0 or shutil.which("sudo") is None else ["sudo", "-n"]
    command = [*prefix, "apt-get", *args]
    print(f"+ {' '.join(command)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=env, check=False).returncode == 0


def ensure_tool(binary: str, package: str) -> str:
    """``binary`` on PATH; installs Debian's ``package`` with apt-get when missing."""
    found = shutil.which(binary)
    if found:
        return found
    print(f"{binary} not found: installing {package} with apt-get", flush=True)
    if not _apt("install", "-y", "--no-install-recommends", package):
        _apt("update")
        _apt("install", "-y", "--no-install-recommends", package)
    found = shutil.which(binary)
    if found is None:
        raise RuntimeError(f"{binary} is missing and `apt-get install {package}` failed")
    return found


def ensure_h2load() -> str:
    """The h2load binary; installs Debian's nghttp2-client with apt-get when missing."""
    return ensure_tool("h2load", "nghttp2-client")


def h2load_command(
    binary: str, shape: Shape, target: Target, *, warmup_s: int, duration_s: int
) -> list[str]:
    port = target.https_port if shape.tls else target.http_port
    command = [binary]
    if shape.http == "1.1":
        command.append("--h1")
    command += [
        "-c", str(shape.connections),
        "-m", str(shape.streams),
        "-D", str(duration_s),
        f"--warm-up-time={warmup_s}",
        f"--connect-to={target.addresses[0]}:{port}",
        target.url("/", tls=shape.tls),
    ]
    return command


@dataclass(frozen=True)
class H2loadReport:
    finished_s: float  # h2load's "finished in": warm-up included
    req_per_s: float  # h2load's own figure: succeeded requests / main duration
    total: int
    succeeded: int
    failed: int
    errored: int
    timeout: int


def parse_report(text: str) -> H2loadReport:
    finished = requests = None
    for line in text.splitlines():
        finished = finished or _FINISHED.match(line.strip())
        requests = requests or _REQUESTS.match(line.strip())
    if finished is None or requests is None:
        raise ValueError(f"h2load output has no 'finished in' or 'requests:' line:\n{text}")
    scale = 1e-3 if finished.group(2) == "ms" else 1.0
    counts = [int(g) for g in requests.groups()]
    return H2loadReport(
        finished_s=float(finished.group(1)) * scale,
        req_per_s=float(finished.group(3)),
        total=counts[0],
        succeeded=counts[3],
        failed=counts[4],
        errored=counts[5],
        timeout=counts[6],
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_s(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def _run_watching_warmup(command: Sequence[str], timeout_s: float) -> tuple[str, float, float]:
    """Run h2load; return (stdout, CPU at warm-up end, total CPU)."""
    cpu0 = _children_cpu_s()
    lines: list[str] = []
    warm_cpu = 0.0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        assert proc.stdout is not None
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        try:
            for line in proc.stdout:
                if _WARMED_UP in line and not warm_cpu:
                    warm_cpu = _process_cpu_s(proc.pid)
                lines.append(line)
            code = proc.wait()
        finally:
            watchdog.cancel()
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {code}:\n{''.join(lines)}")
    return "".join(lines), warm_cpu, _children_cpu_s() - cpu0


def run_h2load(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: int = 1, duration_s: int = 5,
    binary: str | None = None,
) -> Measurement:
    """Run h2load on ``shape`` and measure its main phase."""
    command = h2load_command(binary or ensure_h2load(), shape, target,
                             warmup_s=warmup_s, duration_s=duration_s)
    text, warm_cpu, total_cpu = _run_watching_warmup(command, warmup_s + duration_s + 30.0)
    report = parse_report(text)
    return Measurement(
        client="h2load",
        shape=shape.name,
        round=round_,
        duration_s=float(duration_s),
        succeeded=report.succeeded,
        failed=report.failed,
        cpu_s=max(total_cpu - warm_cpu, 0.0),
        extra={
            "h2load_req_per_s": report.req_per_s,
            "finished_s": report.finished_s,
            "errored": report.errored,
            "timeout": report.timeout,
            "cpu_s_whole_run": total_cpu,
            "cpu_s_warmup": warm_cpu,
            "command": " ".join(command),
        },
    )
