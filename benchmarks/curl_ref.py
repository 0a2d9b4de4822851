"""The C libcurl reference client: build ``curl_ref.c``, run it on a shape, measure it.

``curl_ref`` is a minimal C program driving libcurl's multi socket API on epoll the way
rafale's engine does (socket and timer callbacks, reused easy handles, closed model). It is
linked against **the libcurl bundled in the pycurl wheel** (``pycurl.libs/``, with an rpath
so that its bundled nghttp2/ngtcp2/OpenSSL load too), so both clients run the same libcurl
and the gap between them is rafale's own overhead. Headers come from Debian's
``libcurl4-openssl-dev`` (``/usr/include/<multiarch>/curl``, installed with apt-get when
missing, as is gcc): 7.88 headers against the 8.x library is fine, every option used is older.

The binary is cached under ``benchmarks/results/bin/`` (git-ignored), named by a hash of the
source and the library it links, and checked once built: it must report pycurl's libcurl
version and HTTP/3 support.

It is aimed at the target like rafale and h2load: the target's host name, resolved to the
first target address only (``CURLOPT_RESOLVE``), verifying TLS against ``target.ca_file``.
The program measures its main phase itself: successes (CURLE_OK and 2xx/3xx) completed after
the warm-up, the main phase's wall time, and its own ``RUSAGE_SELF`` CPU (user+sys) sampled at
the warm-up end and the main phase end: that figure is the measurement's ``cpu_s``. The
harness also samples it from outside the way it samples every external client
(``benchmarks.cpu``: process CPU over ``[launch + warmup_s, launch + warmup_s + duration_s]``,
the program's own warm-up clock starts a few ms after launch) and keeps that in ``extra``
(``cpu_window``) for comparison.

:func:`run_curl_ref_rate` runs it in the open model instead (``--rate``): request k is sent
when due at ``k / rate_per_s`` after the program's start, on a free handle of a pool of
``shape.in_flight`` (waiting for one when all are busy), waiting with a timerfd in its epoll,
as rafale's engine does at a fixed rate. Its ``extra`` adds the requests sent in the main
phase, the epoll wake-ups and the send lag (send time minus due time, µs: p50, p99, and how
many sends were over 1 ms late), so the CPU per request of both clients can be compared at low
rates, where wake-ups cost more than transfers.

    from benchmarks.curl_ref import run_curl_ref, run_curl_ref_rate
    m = run_curl_ref(shape_named("h2-1x100"), target, 0, warmup_s=1, duration_s=5)
    m = run_curl_ref_rate(shape_named("h2-1x100"), target, 500, warmup_s=1, duration_s=5)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pycurl

from benchmarks.cpu import run_tool
from benchmarks.h2load import ensure_tool
from benchmarks.shapes import Measurement, Shape
from rafale.actors.config import ResolveEntry
from rafale.cluster.target import Target

__all__ = ["BIN_DIR", "SOURCE", "build", "bundled_libcurl", "curl_ref_command",
           "ensure_compiler_and_headers", "curl_header", "probe", "run_curl_ref",
           "run_curl_ref_rate"]

SOURCE = Path(__file__).with_name("curl_ref.c")
BIN_DIR = Path(__file__).with_name("results") / "bin"
INCLUDE_DIR = Path("/usr/include")
CLIENT = "libcurl-c"


def curl_header() -> Path | None:
    """curl.h where gcc looks: /usr/include/curl or Debian's /usr/include/<multiarch>/curl."""
    candidates = [INCLUDE_DIR / "curl" / "curl.h", *INCLUDE_DIR.glob("*/curl/curl.h")]
    return next((path for path in candidates if path.exists()), None)


def ensure_compiler_and_headers() -> str:
    """The C compiler; installs Debian's gcc and libcurl4-openssl-dev when missing."""
    compiler = ensure_tool("gcc", "gcc")
    if curl_header() is None:
        ensure_tool("curl-config", "libcurl4-openssl-dev")  # the package that has curl.h
    if curl_header() is None:
        raise RuntimeError(f"no curl/curl.h under {INCLUDE_DIR} after installing "
                           "libcurl4-openssl-dev")
    return compiler


def bundled_libcurl() -> Path:
    """The libcurl shared library inside the pycurl wheel (``pycurl.libs/libcurl-*.so.4*``)."""
    here = Path(pycurl.__file__).resolve().parent
    for libs in (here / "pycurl.libs", here.parent / "pycurl.libs"):
        found = sorted(libs.glob("libcurl-*.so.4*"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no pycurl.libs/libcurl-*.so.4* next to {here}")


def pycurl_libcurl_version() -> str:
    return str(pycurl.version_info()[1])


def probe(binary: Path) -> dict[str, Any]:
    """What ``binary --version`` reports: libcurl_version, http3, curl_version."""
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                          timeout=30, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _check(binary: Path) -> None:
    report = probe(binary)
    expected = pycurl_libcurl_version()
    if report["libcurl_version"] != expected:
        raise RuntimeError(f"{binary} runs libcurl {report['libcurl_version']}, "
                           f"pycurl runs {expected}: it did not load pycurl's libcurl")
    if not report["http3"]:
        raise RuntimeError(f"{binary}'s libcurl has no HTTP/3: {report['curl_version']}")


def build(out_dir: Path = BIN_DIR) -> Path:
    """Compile curl_ref.c against pycurl's libcurl (cached in ``out_dir``); the binary."""
    library = bundled_libcurl()
    key = hashlib.sha256(SOURCE.read_bytes() + str(library).encode()).hexdigest()[:16]
    binary = out_dir / f"curl_ref-{key}"
    if binary.exists():
        return binary
    compiler = ensure_compiler_and_headers()
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f".{binary.name}.{os.getpid()}"
    command = [compiler, "-O2", "-Wall", "-Wextra", "-o", str(partial), str(SOURCE),
               str(library), f"-Wl,-rpath,{library.parent}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    try:
        _check(partial)
        partial.replace(binary)  # atomic: concurrent builds leave one whole binary
    finally:
        partial.unlink(missing_ok=True)
    return binary


def curl_ref_command(
    binary: Path, shape: Shape, target: Target, *, warmup_s: float, duration_s: float,
    rate_per_s: float | None = None,
) -> list[str]:
    """The command line running ``binary`` on ``shape``: closed model, or open model at
    ``rate_per_s`` requests per second when given."""
    port = target.https_port if shape.tls else target.http_port
    resolve = ResolveEntry(target.host, port, (target.addresses[0],)).curl_resolve()
    command = [
        str(binary), target.url("/", tls=shape.tls),
        "--http", shape.http,
        "--in-flight", str(shape.in_flight),
        "--connections", str(shape.connections),
        "--warmup", str(warmup_s),
        "--duration", str(duration_s),
        "--resolve", resolve,
    ]
    if shape.tls:
        command += ["--cacert", str(target.ca_file)]
    if rate_per_s is not None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise ValueError(f"rate_per_s must be a finite number > 0, not {rate_per_s}")
        command += ["--rate", repr(float(rate_per_s))]
    return command


def _run(
    shape: Shape, target: Target, round_: int, *, warmup_s: float, duration_s: float,
    binary: Path | None, rate_per_s: float | None,
) -> tuple[Measurement, dict[str, Any]]:
    """Run the C reference client once; its measurement and its JSON report."""
    binary = binary or build()
    command = curl_ref_command(binary, shape, target, warmup_s=warmup_s, duration_s=duration_s,
                               rate_per_s=rate_per_s)
    run = run_tool(command, warmup_s=warmup_s, duration_s=duration_s,
                   timeout_s=warmup_s + duration_s + 30.0)
    reports = [line for line in run.output.splitlines() if line.startswith("{")]
    if not reports:
        raise RuntimeError(f"{' '.join(command)} printed no JSON report:\n{run.output}")
    report: dict[str, Any] = json.loads(reports[-1])
    if report["libcurl_version"] != pycurl_libcurl_version():
        raise RuntimeError(f"{binary} ran libcurl {report['libcurl_version']}, "
                           f"not pycurl's {pycurl_libcurl_version()}")
    versions = {name: n for name, n in report["version"].items() if n}
    measurement = Measurement(
        client=CLIENT,
        shape=shape.name,
        round=round_,
        duration_s=float(report["duration_s"]),  # measured: the nominal one plus < 1 ms
        succeeded=int(report["succeeded"]),
        failed=int(report["failed"]),
        cpu_s=float(report["cpu_s"]),
        extra={
            "version": versions,
            "new_connections": report["new_connections"],
            "first_error": report["first_error"],
            "first_bad_status": report["first_bad_status"],
            "cpu_s_whole_run": report["cpu_s_whole_run"],  # process start .. main phase end
            "cpu_s_child_total": run.cpu_s_whole_run,  # RUSAGE_CHILDREN: teardown included
            "cpu_window": run.window.to_data(),  # sampled from outside, as for every peer
            "warmup_s": report["warmup_s"],
            "libcurl_version": report["libcurl_version"],
            "curl_version": report["curl_version"],
            "command": " ".join(command),
        },
    )
    return measurement, report


def run_curl_ref(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: float = 1,
    duration_s: float = 5, binary: Path | None = None,
) -> Measurement:
    """Run the C reference client on ``shape`` against ``target``; measure its main phase."""
    measurement, _ = _run(shape, target, round_, warmup_s=warmup_s, duration_s=duration_s,
                          binary=binary, rate_per_s=None)
    return measurement


def run_curl_ref_rate(
    shape: Shape, target: Target, rate_per_s: float, round_: int = 0, *, warmup_s: float = 1,
    duration_s: float = 5, binary: Path | None = None,
) -> Measurement:
    """Run the C reference client in the open model at ``rate_per_s`` requests per second on
    ``shape`` (at most ``shape.in_flight`` at once) against ``target``; measure its main
    phase. ``extra`` adds ``sent``, ``wakeups`` (epoll_wait returns), ``send_lag_us_p50``,
    ``send_lag_us_p99``, ``late`` (sends over 1 ms after their due time), ``late_by_cap``
    (sends that waited for a free handle) and ``rate_per_s``, all of the main phase."""
    measurement, report = _run(shape, target, round_, warmup_s=warmup_s,
                               duration_s=duration_s, binary=binary, rate_per_s=rate_per_s)
    measurement.extra.update({
        "sent": int(report["sent"]),
        "wakeups": int(report["wakeups"]),
        "send_lag_us_p50": float(report["send_lag_us_p50"]),
        "send_lag_us_p99": float(report["send_lag_us_p99"]),
        "late": int(report["late"]),
        "late_by_cap": int(report["late_by_cap"]),
        "rate_per_s": float(rate_per_s),  # as asked: the summary matches rates exactly
    })
    return measurement
