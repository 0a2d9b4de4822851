"""Option values from the CLI or Python turned into checked values: durations ("10s"),
k6-like stages ("10s:100,20s:500"), headers ("K: V"), resolve entries, the HTTP version,
planned connections, and whether an output directory can be written. Every bad value is a
``ValueError`` naming it and what would be valid."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from actors.config import HTTP_VERSIONS, ResolveEntry

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def parse_duration(value: Any, name: str = "duration") -> float:
    """Seconds from ``10``, ``2.5``, ``"10"``, ``"10s"``, ``"500ms"``, ``"2m"``, ``"1h"``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} {value!r} is not a duration; expected e.g. 10, 10s, 2m")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(
            f"{name} {value!r} is not a duration; expected seconds or a number with a unit "
            "(ms, s, m, h), e.g. 10, 10s, 2m"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


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
            duration_s = parse_duration(duration, "stage duration")
            rate_per_s = as_number("stage rate", rate)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"stage {shown!r} of stages {value!r} is malformed ({exc}); "
                             f"{hint}") from None
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"stage {shown!r}: duration must be > 0 s; {hint}")
        if not (math.isfinite(rate_per_s) and rate_per_s >= 0):
            raise ValueError(f"stage {shown!r}: rate must be a finite number >= 0 req/s; {hint}")
        out.append((duration_s, rate_per_s))
    return tuple(out)


def as_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None


def positive(name: str, value: Any, unit: str, *, integer: bool = False) -> Any:
    """``value`` as a number > 0 (an integer >= 1 if ``integer``), else ValueError."""
    kind = "an integer >= 1" if integer else "a finite number > 0"
    try:
        number = as_number(name, value)
    except ValueError:
        number = math.nan
    ok = math.isfinite(number) and number > 0 and (not integer or number == int(number))
    if not ok:
        raise ValueError(f"{name} must be {kind} ({unit}), got {value!r}")
    return int(number) if integer else number


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


def normalize_http(value: Any) -> str:
    """``2``, ``"2.0"``, ``"http/2"`` -> ``"2"``; ``"h2c"`` -> ``"2c"``; else ValueError."""
    http = str(value).strip().lower().removeprefix("http/").removeprefix("http")
    http = {"2.0": "2", "3.0": "3", "1": "1.1", "h2c": "2c", "h2": "2", "h3": "3"}.get(http, http)
    if http not in HTTP_VERSIONS:
        raise ValueError(f"http {value!r} is not supported; expected one of "
                         f"{', '.join(HTTP_VERSIONS)}")
    return http


def planned_connections(http: str, max_in_flight: int, streams_per_connection: int,
                        max_connections: int | None, addresses: int = 1) -> int:
    """Most connections one sender may open: one per request for HTTP/1.1, else enough
    streams for the in-flight cap (at least one per pinned address)."""
    if http == "1.1":
        planned = max_in_flight
    else:
        planned = max(math.ceil(max_in_flight / streams_per_connection), addresses)
    return planned if max_connections is None else min(planned, max_connections)


def redact_url(url: str) -> str:
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}<redacted>@", url)


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
