"""Where and with what a benchmark ran: the machine, the tools' versions, the git commit.

Recorded in every results file, so that a table says which machine and which code made it.
A tool that is not installed reports ``"missing"``; nothing here installs anything.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "git_state", "machine", "versions"]

ROOT = Path(__file__).resolve().parents[1]
MISSING = "missing"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first ``model name`` of /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_avg_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=20,
                              cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or done.stderr.strip() or None


def git_state() -> dict[str, Any]:
    """``{"commit": HEAD or None, "dirty": tracked or untracked changes, or None}``."""
    commit = _output(["git", "rev-parse", "HEAD"]) if shutil.which("git") else None
    if commit is None or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return {"commit": None, "dirty": None}
    status = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                            check=False, cwd=ROOT, timeout=20)
    return {"commit": commit, "dirty": bool(status.stdout.strip())}


def _tool(command: list[str], pattern: str) -> str:
    """The first match of ``pattern`` (its group 1) in the tool's output, or "missing"."""
    if shutil.which(command[0]) is None:
        return MISSING
    text = _output(command) or ""
    found = re.search(pattern, text)
    return found.group(1) if found else (text.splitlines()[0] if text else "unknown")


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return MISSING


def _caddy() -> str:
    from rafale.cluster.target import find_caddy

    try:
        binary = find_caddy()
    except FileNotFoundError:
        return MISSING
    return _tool([binary, "version"], r"^(v?\S+)")


def versions() -> dict[str, str]:
    """libcurl (as pycurl runs it), pycurl, Caddy, h2load, wrk, Locust."""
    import pycurl

    return {
        "libcurl": str(pycurl.version_info()[1]),
        "pycurl": _package("pycurl"),
        "caddy": _caddy(),
        "h2load": _tool(["h2load", "--version"], r"nghttp2/(\S+)"),
        "wrk": _tool(["wrk", "-v"], r"^wrk (\S+)"),
        "locust": _package("locust"),
    }
