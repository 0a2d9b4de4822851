"""The run spec: one frozen, validated description of a run, shared by the CLI and the API.

Every field has the same name as its CLI option (``--rate`` is ``rate_per_s`` here, with
units in the name). ``__post_init__`` normalizes convenient inputs (a single URL string,
"K: V" header strings, "10s" durations, "10s:100,20s:500" stages, "host:port:addr" resolve
strings) and rejects bad values before any traffic, with a ``ValueError`` that names the
value and what would be valid. Header values never appear in ``repr`` or ``redacted()``.
"""

from __future__ import annotations

import math
import resource
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from rafale.actors.checks import (
    check_dns,
    check_duration,
    check_number,
    check_rate,
    check_url,
    normalize_http,
    parse_duration,
)
from rafale.actors.config import EngineConfig, ResolveEntry, url_host_port
from rafale.actors.pacing import Schedule
from rafale.analysis.redact import redact_url
from rafale.cluster.options import (
    FD_OVERHEAD,
    check_writable,
    parse_headers,
    parse_resolve,
    parse_stages,
    planned_connections,
)

__all__ = ["RunSpec", "normalize_http", "parse_duration", "parse_stages", "planned_connections"]

DEFAULT_DURATION_S = 10.0
PEM_MARKER = "-----BEGIN CERTIFICATE-----"


class ResourceRiskWarning(RuntimeWarning):
    """The run may hit a resource limit (e.g. open files) but is not certain to."""


# ----------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class RunSpec:
    """One run: targets, rate schedule, protocol, DNS mode, limits and where to run.

    ``rate_per_s=None`` without ``stages`` is the closed model (as fast as the in-flight
    cap allows). ``duration_s=None`` means the stages' total, or 10 s.
    """

    urls: tuple[str, ...]
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    body: bytes = field(default=b"", repr=False)
    rate_per_s: float | None = None
    ramp_s: float = 0.0
    stages: tuple[tuple[float, float], ...] = ()
    duration_s: float | None = None
    http: str = "2"
    dns: str = "system"
    resolve: tuple[ResolveEntry, ...] = ()
    nameserver: str | None = None
    actors: int | Literal["auto"] = "auto"
    reserve_driver_cpu: bool = False
    max_in_flight: int = 100
    in_flight_step: int = 50
    max_connections: int | None = None
    streams_per_connection: int = 100
    cacert: str | None = None
    insecure: bool = False
    timeout_s: float = 10.0
    late_after_s: float = 0.001
    address: str | None = None
    out: str | None = None
    label: str | None = None
    show_query: bool = False

    def __post_init__(self) -> None:
        put = object.__setattr__
        urls = (self.urls,) if isinstance(self.urls, str) else tuple(self.urls)
        if not urls:
            raise ValueError("no target URL given; expected at least one http(s) URL")
        put(self, "urls", urls)
        http = normalize_http(self.http)
        put(self, "http", http)
        check_dns(self.dns)
        for url in urls:
            check_url(url, http)
        method = str(self.method).strip().upper()
        if not method.isalpha():
            raise ValueError(f"method {self.method!r} is not an HTTP method, e.g. GET or POST")
        put(self, "method", method)
        put(self, "headers", parse_headers(self.headers))
        if isinstance(self.body, str):
            put(self, "body", self.body.encode())
        self._check_schedule()
        put(self, "resolve", parse_resolve(self.resolve))
        if self.nameserver is not None and not str(self.nameserver).strip():
            raise ValueError("nameserver '' is empty; expected an IP address like 127.0.0.53")
        self._check_limits()
        self._check_files()

    def __repr__(self) -> str:
        """The fields that differ from their defaults; header values never shown."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "urls":
                shown.append(repr(tuple(redact_url(u, show_query=self.show_query)
                                        for u in value)))
            elif f.name == "headers" and value:
                shown.append(f"headers=<{len(value)} redacted: {', '.join(n for n, _ in value)}>")
            elif f.name == "body" and value:
                shown.append(f"body=<{len(value)} bytes>")
            elif f.name not in ("headers", "body") and value != f.default:
                shown.append(f"{f.name}={value!r}")
        return f"RunSpec({', '.join(shown)})"

    # ----- validation helpers ------------------------------------------------------------

    def _check_schedule(self) -> None:
        put = object.__setattr__
        stages = parse_stages(self.stages) if self.stages not in ((), [], "", None) else ()
        put(self, "stages", stages)
        given_ramp = self.ramp_s
        ramp_s = check_duration("ramp", given_ramp or 0.0, zero_ok=True)
        put(self, "ramp_s", ramp_s)
        if self.rate_per_s is not None:
            try:
                put(self, "rate_per_s", check_rate(self.rate_per_s))
            except ValueError as exc:
                raise ValueError(f"{exc}; leave it out for the closed model") from None
        if stages and self.rate_per_s is not None:
            raise ValueError("give either rate or stages, not both (stages set their own rates)")
        if stages and ramp_s:
            raise ValueError("give either ramp or stages, not both (a stage ramps by itself)")
        if ramp_s and self.rate_per_s is None:
            raise ValueError(f"ramp {given_ramp!r} needs a rate to ramp up to")
        total_s = sum(d for d, _ in stages)
        if self.duration_s is None:
            duration_s = total_s if stages else DEFAULT_DURATION_S
        else:
            duration_s = check_duration("duration", self.duration_s)
        if stages and not math.isclose(duration_s, total_s):
            raise ValueError(f"duration {self.duration_s!r} differs from the stages' total "
                             f"{total_s:g} s; leave duration out when giving stages")
        if ramp_s > duration_s:
            raise ValueError(f"ramp {given_ramp!r} ({ramp_s:g} s) is longer than the duration "
                             f"({duration_s:g} s); expected ramp <= duration")
        put(self, "duration_s", duration_s)
        if stages and not any(rate > 0 for _, rate in stages):
            raise ValueError(f"stages {self.stages!r} never send: every target rate is 0")

    def _check_limits(self) -> None:
        put = object.__setattr__
        actors = self.actors
        if isinstance(actors, str) and actors.strip().lower() == "auto":
            put(self, "actors", "auto")
        else:
            try:
                put(self, "actors", check_number("actors", actors, "count", integer=True,
                                                 parse_text=True))
            except ValueError:
                raise ValueError(f"actors {actors!r} must be 'auto' (one per CPU) or an "
                                 "integer >= 1") from None
        units = {"max_in_flight": "requests per actor", "in_flight_step": "requests",
                 "streams_per_connection": "streams"}
        if self.max_connections is not None:
            units["max_connections"] = "connections per actor"
        for name, unit in units.items():
            put(self, name, check_number(name, getattr(self, name), unit, integer=True,
                                         parse_text=True))
        put(self, "timeout_s", check_duration("timeout", self.timeout_s))
        put(self, "late_after_s", check_duration("late_after", self.late_after_s,
                                                 zero_ok=True))
        self._check_open_files()

    def _check_open_files(self) -> None:
        addresses = max((len(e.addresses) for e in self.resolve), default=1)
        planned = planned_connections(self.http, self.max_in_flight, self.streams_per_connection,
                                      self.max_connections, addresses) * len(self.urls)
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        advice = (f"raise it with `ulimit -n {2 * (planned + FD_OVERHEAD)}` (and the nofile "
                  "limit of the Ray nodes), or lower max_in_flight / max_connections")
        if planned > soft:
            raise ValueError(f"max_in_flight {self.max_in_flight} plans up to {planned} "
                             f"connections per actor, above the open-files limit {soft}; "
                             + advice)
        if planned + FD_OVERHEAD > soft:
            warnings.warn(f"up to {planned} connections per actor come close to the "
                          f"open-files limit {soft}; " + advice, ResourceRiskWarning,
                          stacklevel=4)

    def _check_files(self) -> None:
        if self.cacert is not None:
            path = Path(str(self.cacert)).expanduser()
            if not path.is_file():
                raise ValueError(f"cacert {str(self.cacert)!r} does not exist or is not a file; "
                                 "expected a PEM CA certificate file")
            try:
                text = path.read_text(encoding="ascii", errors="replace")
            except OSError as exc:
                raise ValueError(f"cacert {str(self.cacert)!r} cannot be read: {exc}") from None
            if PEM_MARKER not in text:
                raise ValueError(f"cacert {str(self.cacert)!r} is not a PEM certificate (no "
                                 f"{PEM_MARKER!r} line); expected a PEM CA certificate file")
            object.__setattr__(self, "cacert", str(path))
        if self.out is not None:
            check_writable(str(self.out))
            object.__setattr__(self, "out", str(Path(str(self.out)).expanduser()))

    # ----- what the run uses -------------------------------------------------------------

    @property
    def run_s(self) -> float:
        """The run length in seconds (``duration_s`` after normalization)."""
        assert self.duration_s is not None
        return self.duration_s

    def host_ports(self) -> tuple[tuple[str, int], ...]:
        """Every distinct (host, port) of the URLs, in order."""
        return tuple(dict.fromkeys(url_host_port(u) for u in self.urls))

    def schedule(self) -> Schedule | None:
        """The global schedule, or None for the closed model."""
        if self.stages:
            return Schedule.from_stages(self.stages)
        if self.rate_per_s is None:
            return None
        return Schedule.ramp_then_constant(self.rate_per_s, self.ramp_s, self.run_s)

    def engine_config(self, index: int, count: int,
                      resolve: tuple[ResolveEntry, ...]) -> EngineConfig:
        """The config of actor ``index`` of ``count``: stripe index/count of the schedule;
        in pinned mode the engine starts its address cycle at ``index`` so that the actors
        together spread connections evenly over the addresses."""
        return EngineConfig(
            urls=self.urls, method=self.method, headers=self.headers, body=self.body,
            http=self.http, dns=self.dns, resolve=resolve, cacert=self.cacert,
            insecure=self.insecure, timeout_s=self.timeout_s, schedule=self.schedule(),
            late_after_s=self.late_after_s,
            duration_s=self.run_s, max_in_flight=self.max_in_flight,
            in_flight_step=self.in_flight_step, max_connections=self.max_connections,
            streams_per_connection=self.streams_per_connection,
            actor_index=index, actor_count=count,
        )

    def redacted(self) -> dict[str, Any]:
        """Plain data for meta.json: header values and URL passwords replaced, body size only."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "headers":
                value = [[name, "<redacted>"] for name, _ in value]
            elif f.name == "body":
                out["body_bytes"] = len(value)
                continue
            elif f.name == "urls":
                value = [redact_url(u, show_query=self.show_query) for u in value]
            elif f.name == "resolve":
                value = [str(e) for e in value]
            elif f.name == "stages":
                value = [list(s) for s in value]
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if "stages" not in changes and "duration_s" in changes and self.stages:
            values["stages"] = ()
        values.update(changes)
        return RunSpec(**values)
