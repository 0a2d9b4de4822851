"""The peers: wrk and Locust on the same target and shape as rafale, measured the same way.

Both are aimed at ``https://rafale.test:PORT/`` (``http://`` for cleartext shapes), the
target's host name, so that SNI and ``Host`` are the certificate's name: Caddy refuses a TLS
handshake whose SNI is an IP address or missing, and neither tool has ``--connect-to`` or
``--resolve``. The name is resolved to the first target address through nss_wrapper
(Debian's ``libnss-wrapper``, installed with apt-get when missing): ``LD_PRELOAD`` it with
``NSS_WRAPPER_HOSTS`` pointing at a one-line hosts file, for the peer's process only. The
target answers any ``Host`` (its routes match on the path only), so the name is for TLS.

Client CPU is the peer's process-tree CPU over the main phase's wall-clock window, sampled
from outside (``benchmarks.cpu``), the same method as h2load's and the C reference's:

- **wrk** (``-t 1 -c N``: one thread, like rafale's one engine, h2load's and the C client's
  one thread; the target shares the 2 cores): wrk has no warm-up option and reports totals
  only, so it runs ``warmup_s + duration_s`` and its requests are counted over the **whole
  run** (connection set-up included), then prorated to the main phase:
  ``succeeded = whole-run succeeded × duration_s / wrk's run time``. Its CPU window is
  ``[launch + warmup_s, launch + warmup_s + duration_s]``. So req/s is the whole run's mean
  and CPU µs/req is the main window's CPU over the prorated count; ``extra["counted"]``
  says so. TLS is not verified (wrk never verifies). HTTP/1.1 shapes only.
- **Locust** (``FastHttpUser``, one process, ``-u N`` users with one connection each, all
  spawned at once, ``benchmarks/locust_user.py``): the locustfile makes the phases itself
  from Locust's running totals (warm-up from the test start, then the main phase, then it
  stops the runner); the CPU window starts when it prints its warm-up line (as for h2load)
  and lasts ``duration_s``. The whole run's totals (``--json-file``) are kept in ``extra``.
  TLS is verified against the target's CA. The ``h1-100`` shape only.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.cpu import run_tool
from benchmarks.h2load import apt_install, ensure_tool
from benchmarks.shapes import Measurement, Shape
from rafale.cluster.target import Target

__all__ = ["LOCUSTFILE", "LOCUST_REPORT", "LOCUST_SHAPES", "LOCUST_WARMED_UP", "WrkReport",
           "ensure_nss_wrapper", "locust_applies", "locust_command", "parse_wrk", "prorated",
           "run_locust", "run_wrk", "wrk_applies", "wrk_command"]

LOCUST_SHAPES = ("h1-100",)
WRK_THREADS = 1
# Never import the locustfile here: importing locust monkey-patches this whole process with
# gevent. Its two marker lines are repeated in it (a smoke test checks they agree).
LOCUSTFILE = Path(__file__).with_name("locust_user.py")
LOCUST_WARMED_UP = "rafale-locust: warm-up over"
LOCUST_REPORT = "rafale-locust-report: "
_NSS_WRAPPER_GLOB = "/usr/lib/*/libnss_wrapper.so"
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_WRK_REQUESTS = re.compile(r"^(\d+) requests in ([\d.]+)(us|ms|s|m|h), ")
_WRK_SOCKET = re.compile(r"^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_NON_2XX = re.compile(r"^Non-2xx or 3xx responses: (\d+)")


def wrk_applies(shape: Shape) -> bool:
    return shape.http == "1.1"


def locust_applies(shape: Shape) -> bool:
    return shape.name in LOCUST_SHAPES


def ensure_nss_wrapper() -> Path:
    """libnss_wrapper.so; installs Debian's libnss-wrapper with apt-get when missing."""
    found = sorted(Path("/").glob(_NSS_WRAPPER_GLOB.lstrip("/")))
    if not found:
        print("libnss_wrapper.so not found: installing libnss-wrapper with apt-get", flush=True)
        apt_install("libnss-wrapper")
        found = sorted(Path("/").glob(_NSS_WRAPPER_GLOB.lstrip("/")))
    if not found:
        raise RuntimeError("libnss_wrapper.so is missing and `apt-get install libnss-wrapper` "
                           "failed")
    return found[0]


def _resolving_env(target: Target, workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a peer: the target's name resolves to its first address."""
    hosts = workdir / "hosts"
    hosts.write_text(f"{target.addresses[0]} {target.host}\n")
    return {**os.environ, "LD_PRELOAD": str(ensure_nss_wrapper()),
            "NSS_WRAPPER_HOSTS": str(hosts), **extra}


# ----- wrk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkReport:
    requests: int  # responses completed over the whole run, any status
    run_s: float  # wrk's own run time
    non_2xx: int
    socket_errors: Mapping[str, int]

    @property
    def succeeded(self) -> int:
        return self.requests - self.non_2xx

    @property
    def failed(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(text: str) -> WrkReport:
    requests = socket = non_2xx = None
    for raw in text.splitlines():
        line = raw.strip()
        requests = requests or _WRK_REQUESTS.match(line)
        socket = socket or _WRK_SOCKET.match(line)
        non_2xx = non_2xx or _WRK_NON_2XX.match(line)
    if requests is None:
        raise ValueError(f"wrk output has no 'N requests in' line:\n{text}")
    names = ("connect", "read", "write", "timeout")
    errors = dict(zip(names, (int(g) for g in socket.groups()), strict=True)) if socket else {}
    return WrkReport(
        requests=int(requests.group(1)),
        run_s=float(requests.group(2)) * _TIME_UNITS[requests.group(3)],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={name: errors.get(name, 0) for name in names},
    )


def prorated(whole_run: int, duration_s: float, run_s: float) -> int:
    """The share of a whole run's count that falls in ``duration_s`` of its ``run_s``
    seconds, at the run's mean rate (rounded); 0 for an empty run."""
    if run_s <= 0:
        return 0
    return round(whole_run * min(duration_s, run_s) / run_s)


def wrk_command(binary: str, shape: Shape, target: Target, *, total_s: int) -> list[str]:
    return [binary, "-t", str(WRK_THREADS), "-c", str(shape.connections), "-d", f"{total_s}s",
            "--timeout", "5s", target.url("/", tls=shape.tls)]


def run_wrk(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: float = 1,
    duration_s: float = 5, binary: str | None = None,
) -> Measurement:
    """Run wrk on an HTTP/1.1 ``shape`` for warm-up + main phase; requests counted over the
    whole run and prorated to the main phase (wrk has no warm-up), CPU over the main
    phase's window (see the module docstring)."""
    if not wrk_applies(shape):
        raise ValueError(f"wrk speaks HTTP/1.1 only, not {shape.name}")
    total_s = math.ceil(warmup_s + duration_s)  # wrk takes whole seconds
    command = wrk_command(binary or ensure_tool("wrk", "wrk"), shape, target, total_s=total_s)
    with tempfile.TemporaryDirectory(prefix="rafale-wrk-") as workdir:
        env = _resolving_env(target, Path(workdir))
        run = run_tool(command, warmup_s=warmup_s, duration_s=duration_s, env=env,
                       timeout_s=total_s + 30.0)
    report = parse_wrk(run.output)
    return Measurement(
        client="wrk",
        shape=shape.name,
        round=round_,
        duration_s=float(duration_s),
        succeeded=prorated(report.succeeded, duration_s, report.run_s),
        failed=prorated(report.failed, duration_s, report.run_s),
        cpu_s=run.window.cpu_s,
        extra={
            "counted": "whole run (warm-up included), prorated to the main phase",
            "requests_whole_run": report.requests,
            "succeeded_whole_run": report.succeeded,
            "run_s": report.run_s,
            "non_2xx": report.non_2xx,
            "socket_errors": dict(report.socket_errors),
            "threads": WRK_THREADS,
            **run.cpu_data(),
            "command": " ".join(command),
        },
    )


# ----- Locust ----------------------------------------------------------------------------


def locust_command(shape: Shape, target: Target, *, total_s: float, json_file: Path) -> list[str]:
    host = target.url("/", tls=shape.tls).rstrip("/")
    users = shape.connections
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "-u", str(users), "-r", str(users * 10),  # all users within 0.1 s: in the warm-up
        "-t", f"{math.ceil(total_s) + 30}s",  # a backstop: the locustfile stops the run
        "--host", host, "--only-summary", "--loglevel", "ERROR",
        "--exit-code-on-error", "0", "--json-file", str(json_file.with_suffix("")),
    ]


def _whole_run(json_file: Path) -> dict[str, int]:
    try:
        entries: list[dict[str, Any]] = json.loads(json_file.read_text())
    except (OSError, ValueError):
        return {}
    return {"requests_whole_run": sum(int(e.get("num_requests", 0)) for e in entries),
            "failures_whole_run": sum(int(e.get("num_failures", 0)) for e in entries)}


def run_locust(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: float = 1,
    duration_s: float = 5,
) -> Measurement:
    """Run Locust (FastHttpUser, one process) on ``shape``; measure its main phase."""
    if not locust_applies(shape):
        raise ValueError(f"the Locust peer runs {', '.join(LOCUST_SHAPES)}, not {shape.name}")
    with tempfile.TemporaryDirectory(prefix="rafale-locust-") as workdir:
        json_file = Path(workdir) / "stats.json"
        command = locust_command(shape, target, total_s=warmup_s + duration_s,
                                 json_file=json_file)
        env = _resolving_env(target, Path(workdir), RAFALE_WARMUP_S=str(warmup_s),
                             RAFALE_DURATION_S=str(duration_s),
                             RAFALE_CA_FILE=str(target.ca_file))
        run = run_tool(command, warmup_s=warmup_s, duration_s=duration_s, env=env,
                       marker=LOCUST_WARMED_UP, timeout_s=warmup_s + duration_s + 60.0)
        whole = _whole_run(json_file)
    reports = [line.split(LOCUST_REPORT, 1)[1] for line in run.output.splitlines()
               if LOCUST_REPORT in line]
    if not reports:
        raise RuntimeError(f"{' '.join(command)} printed no report:\n{run.output}")
    report: dict[str, Any] = json.loads(reports[-1])
    return Measurement(
        client="locust",
        shape=shape.name,
        round=round_,
        duration_s=float(report["duration_s"]),
        succeeded=int(report["succeeded"]),
        failed=int(report["failed"]),
        cpu_s=run.window.cpu_s,
        extra={
            "counted": "main phase (Locust's running totals at the phase instants)",
            "users": shape.connections,
            "cpu_s_self": report["cpu_s_self"],  # the locustfile's own RUSAGE_SELF delta
            **whole,
            **run.cpu_data(),
            "command": " ".join(command),
        },
    )
