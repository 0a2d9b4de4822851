"""Option values from the CLI or Python turned into checked values: k6-like stages
("10s:100,20s:500"), headers ("K: V"), resolve entries, planned connections, whether an
output directory can be written, the OTLP/HTTP URL to export metrics to. Every bad value
is a ``ValueError`` naming it and what would be valid. Checks of single values (numbers,
rates, durations, the HTTP version, URLs, addresses) are the helpers of
:mod:`rafale.actors.checks`, shared with the engine."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rafale.actors.checks import check_duration, check_number, parse_duration
from rafale.actors.config import ResolveEntry

# File descriptors a sender process keeps open besides its connections (Ray worker, epoll,
# logs): RunSpec's open-files check and `rafale doctor` both add it to planned_connections.
FD_OVERHEAD = 256

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

def parse_stages(value: Any) -> tuple[tuple[float, float], ...]:
    """Stages from ``"10s:100,20s:500"`` or a sequence of (duration, target rate) pairs."""
    hint = "expected DURATION:RATE[,DURATION:RATE...] e.g. 10s:100,20s:500"
    if isinstance(value, str):
        items: list[Any] = [p.split(":") for p in value.split(",") if p.strip()]
        if not items:
            raise ValueError(f"stages {value!r} is empty; {hint}")
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ValueError(f"stages {value!r} is malformed; {hint}")
    out: list[tuple[float, float]] = []
    for item in items:
        shown = ":".join(map(str, item)) if isinstance(value, str) else repr(item)
        try:
            duration, rate = item
        except (TypeError, ValueError):
            raise ValueError(f"stage {shown!r} of stages {value!r} is malformed; "
                             f"{hint}") from None
        try:
            out.append((check_duration("stage duration", duration),
                        check_number("stage rate", rate, "req/s", zero_ok=True,
                                     parse_text=True)))
        except ValueError as exc:
            raise ValueError(f"stage {shown!r} of stages {value!r}: {exc}; {hint}") from None
    return tuple(out)


def parse_headers(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        items: list[Any] = list(value.items())
    elif isinstance(value, str):
        items = [value]
    else:
        items = list(value)
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            name, sep, text = item.partition(":")
            if not sep:
                raise ValueError(f"header {name.strip()!r} has no value; expected 'Name: value'")
            pair = (name.strip(), text.strip())
        else:
            pair = (str(item[0]).strip(), str(item[1]))
        if not _TOKEN.match(pair[0]):
            raise ValueError(f"header name {pair[0]!r} is not a valid HTTP header name")
        if "\r" in pair[1] or "\n" in pair[1]:
            raise ValueError(f"header {pair[0]!r} value contains a line break")
        out.append(pair)
    return tuple(out)


def parse_resolve(value: Any) -> tuple[ResolveEntry, ...]:
    items = [value] if isinstance(value, str | ResolveEntry) else list(value)
    entries: list[ResolveEntry] = []
    for item in items:
        if isinstance(item, ResolveEntry):
            entries.append(item)
        elif isinstance(item, str):
            entries.extend(ResolveEntry.parse(part) for part in _split_resolve(item))
        else:
            raise ValueError(f"resolve entry {item!r} is malformed; expected HOST:PORT:ADDR[,ADDR]")
    return tuple(entries)


def _split_resolve(text: str) -> list[str]:
    """One entry, or several separated by whitespace or ';'."""
    return [p for p in re.split(r"[\s;]+", text.strip()) if p] or [text]


def planned_connections(http: str, max_in_flight: int, streams_per_connection: int,
                        max_connections: int | None, addresses: int = 1) -> int:
    """Most connections one sender may open: one per request for HTTP/1.1 (and for auto,
    whose server may choose it), else enough streams for the in-flight cap (at least one
    per pinned address)."""
    if http in ("1.1", "auto"):
        planned = max_in_flight
    else:
        planned = max(math.ceil(max_in_flight / streams_per_connection), addresses)
    return planned if max_connections is None else min(planned, max_connections)


def check_writable(out: str) -> None:
    path = Path(out).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"out {out!r} exists and is not a directory; expected a directory "
                             "to write results to")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"out {out!r} is not writable; choose a directory you can write")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"out {out!r} cannot be created: {str(parent)!r} is not a writable "
                         "directory")


def check_out_writable(out: str | None) -> None:
    """Create ``out`` and write a probe file in it, else ValueError naming it.

    RunSpec checks permissions with os.access, which says yes to root everywhere (also on
    read-only file systems such as /sys); only a real write tells before any traffic.
    """
    if out is None:
        return
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".rafale-write-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"out {out!r} cannot be written ({exc.strerror or exc}); choose a "
                         "directory you can write") from None


GAP_MODES = ("catch-up", "skip")
AGGREGATIONS = ("auto", "flat", "tree")  # cluster/tree.py
MIN_LEASE_S = 2.0  # two drain periods: one late drain never fences an actor


def check_lease(value: Any) -> float:
    """``lease_s``: seconds (or "3s") without a drain after which an actor stops sending
    and the driver gives its stripe to the others."""
    lease = check_number("lease_s", parse_duration(value, "lease_s"), "s")
    if lease < MIN_LEASE_S:
        raise ValueError(f"lease_s {value!r} is too short; expected at least {MIN_LEASE_S:g} s "
                         "(the driver drains every second)")
    return float(lease)


OTLP_METRICS_PATH = "/v1/metrics"  # OTLP/HTTP's path for metrics, added to a bare URL


def parse_otlp_url(value: Any) -> str:
    """An OTLP/HTTP metrics URL: http(s) with a host; without a path (or with just "/"),
    OTLP/HTTP's metrics path is added (``http://127.0.0.1:4318/v1/metrics``)."""
    text = str(value).strip()
    hint = "expected e.g. http://127.0.0.1:4318"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError when the port is not a port
    except ValueError:
        raise ValueError(f"otlp {value!r} is not an http(s) URL; {hint}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"otlp {value!r} is not an http(s) URL; {hint}")
    if parts.path in ("", "/"):
        return urlunsplit(parts._replace(path=OTLP_METRICS_PATH))
    return text
