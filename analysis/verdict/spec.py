"""Which spec fields two sides of a comparison differ in, from their runs' meta.json.

``target`` is the set of origins (scheme://host:port) the runs sent to: a path or a query
is part of what is measured, not of where; ``rate`` is the offered load (rate, ramp and
stages); ``duration_s``, ``http``, ``dns`` and ``method`` as the spec has them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

FIELDS: tuple[str, ...] = ("target", "rate", "duration_s", "http", "dns", "method")


def _origin(url: str) -> str:
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{host}:{port}"


def spec_fields(meta: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of one run, as text."""
    spec = meta.get("spec") or {}
    duration_s = (meta.get("schedule") or {}).get("duration_s", spec.get("duration_s"))
    stages = [list(s) for s in spec.get("stages") or ()]
    load = f"{spec.get('rate_per_s')}/s" if spec.get("rate_per_s") is not None else "closed"
    if spec.get("ramp_s"):
        load += f", ramp {spec['ramp_s']:g} s"
    if stages:
        load = "stages " + " ".join(f"{t:g}s:{r:g}/s" for t, r in stages)
    return {
        "target": " ".join(sorted({_origin(u) for u in spec.get("urls") or ()})) or "feed",
        "rate": load,
        "duration_s": "" if duration_s is None else f"{float(duration_s):g}",
        "http": str(meta.get("http") or spec.get("http") or ""),
        "dns": str(meta.get("dns") or spec.get("dns") or ""),
        "method": str(spec.get("method") or ""),
    }


def _values(metas: Sequence[Mapping[str, Any]], name: str) -> list[str]:
    return sorted({spec_fields(m)[name] for m in metas})


def differences(base: Sequence[Mapping[str, Any]], cand: Sequence[Mapping[str, Any]]
                ) -> dict[str, tuple[str, str]]:
    """field -> (base's value, candidate's) for each field where the runs are not all
    alike (runs of one side that differ count too: their values are joined by " | ")."""
    out: dict[str, tuple[str, str]] = {}
    for name in FIELDS:
        left, right = _values(base, name), _values(cand, name)
        if left != right or len(left) > 1:
            out[name] = (" | ".join(left), " | ".join(right))
    return out


def describe_differences(found: Mapping[str, tuple[str, str]],
                         names: Sequence[str] | None = None) -> str:
    """'rate differs (100.0/s vs 200.0/s)' for the named fields (all by default)."""
    shown = [n for n in (names if names is not None else found) if n in found]
    return "; ".join(f"{n} differs ({found[n][0]} vs {found[n][1]})" for n in shown)
