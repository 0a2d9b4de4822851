"""h2load's side of a measurement: install it when missing, run it, parse its report.

h2load is aimed at ``https://rafale.test:PORT/`` with ``--connect-to=ADDR:PORT`` so that SNI
and ``:authority`` are the target's host name (h2load does not verify certificates).

Client CPU (user+sys) over the main phase's wall-clock window, the one method every external
client is measured with (``benchmarks.cpu``): the window starts when h2load prints "Warm-up
phase is over" (one thread, the default: one line) and lasts ``duration_s``; h2load's CPU is
sampled at both instants (psutil, /proc, 10 ms ticks), so its teardown and report after the
main phase are not counted. Its whole-run CPU (launch to exit) is kept in ``extra`` as a
cross-check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from benchmarks.cpu import run_tool
from benchmarks.shapes import Measurement, Shape
from rafale.cluster.target import Target

__all__ = ["H2loadReport", "apt_install", "ensure_h2load", "ensure_tool", "h2load_command",
           "parse_report", "run_h2load"]

_FINISHED = re.compile(r"^finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_WARMED_UP = "Warm-up phase is over"


# Tests run on several workers and each installs what it needs on demand: an apt-get that
# finds another one holding dpkg's lock waits for it (up to this long) instead of failing.
APT_LOCK_WAIT_S = 300


def _apt(*args: str) -> bool:
    prefix = [] if os.geteuid() == 0 or shutil.which("sudo") is None else ["sudo", "-n"]
    command = [*prefix, "apt-get", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}", *args]
    print(f"+ {' '.join(command)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=env, check=False).returncode == 0


def apt_install(package: str) -> bool:
    """``apt-get install`` Debian's ``package`` (after ``apt-get update`` if the first try
    fails); whether the last attempt succeeded."""
    if _apt("install", "-y", "--no-install-recommends", package):
        return True
    _apt("update")
    return _apt("install", "-y", "--no-install-recommends", package)


def _which(binary: str) -> str | None:
    """``binary`` on PATH, or in the system's sbin dirs (daemons such as sshd live there, and
    PATH may leave them out)."""
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")


def ensure_tool(binary: str, package: str) -> str:
    """``binary`` on PATH (or sbin); installs Debian's ``package`` with apt-get when missing."""
    found = _which(binary)
    if found:
        return found
    print(f"{binary} not found: installing {package} with apt-get", flush=True)
    apt_install(package)
    found = _which(binary)
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


def run_h2load(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: int = 1, duration_s: int = 5,
    binary: str | None = None,
) -> Measurement:
    """Run h2load on ``shape`` and measure its main phase."""
    command = h2load_command(binary or ensure_h2load(), shape, target,
                             warmup_s=warmup_s, duration_s=duration_s)
    run = run_tool(command, warmup_s=warmup_s, duration_s=duration_s, marker=_WARMED_UP,
                   timeout_s=warmup_s + duration_s + 30.0)
    report = parse_report(run.output)
    return Measurement(
        client="h2load",
        shape=shape.name,
        round=round_,
        duration_s=float(duration_s),
        succeeded=report.succeeded,
        failed=report.failed,
        cpu_s=run.window.cpu_s,
        extra={
            "h2load_req_per_s": report.req_per_s,
            "finished_s": report.finished_s,
            "errored": report.errored,
            "timeout": report.timeout,
            **run.cpu_data(),
            "command": " ".join(command),
        },
    )
