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
from dataclasses import dataclass, field, fields, replace
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
from rafale.actors.feed import FeedPlan
from rafale.actors.pacing import Schedule, Stage
from rafale.actors.rows import RetryPolicy
from rafale.analysis.redact import redact_url
from rafale.analysis.thresholds import Threshold
from rafale.cluster.feeds import Feed, check_mode, load_feed, select_rows
from rafale.cluster.options import (
    FD_OVERHEAD,
    GAP_MODES,
    check_lease,
    check_writable,
    parse_headers,
    parse_resolve,
    parse_stages,
    planned_connections,
)
from rafale.cluster.threshold_syntax import parse_thresholds

__all__ = ["RunSpec", "normalize_http", "parse_duration", "parse_stages", "planned_connections"]

DEFAULT_DURATION_S = 10.0
ONCE_SLACK_S = 1.0  # slots past the end of a feed sent once (rows taken over, late rows)
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

    urls: tuple[str, ...] = ()
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
    feed: Any = field(default=None, repr=False)
    feed_format: str | None = None
    feed_mode: str = "cycle"
    only: tuple[str, ...] = ()
    retry: int = 0
    resend_unknown: bool = False
    keep_answers: tuple[int, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    abort_on_fail: bool = False
    lease_s: float = 3.0
    gap: str = "catch-up"

    def __post_init__(self) -> None:
        put = object.__setattr__
        http = normalize_http(self.http)
        put(self, "http", http)
        urls = (self.urls,) if isinstance(self.urls, str) else tuple(self.urls or ())
        self._check_feed(urls)
        if self.feed is not None:
            urls = self.feed.origins
        if not urls:
            raise ValueError("no target URL given; expected at least one http(s) URL or a feed")
        put(self, "urls", urls)
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
        given_duration = self.duration_s
        self._check_schedule()
        if self.feed is not None and self.feed_mode == "once":
            self._check_once(given_duration)
        put(self, "resolve", parse_resolve(self.resolve))
        if self.nameserver is not None and not str(self.nameserver).strip():
            raise ValueError("nameserver '' is empty; expected an IP address like 127.0.0.53")
        self._check_limits()
        self._check_files()
        put(self, "retry", check_number("retry", self.retry, "retries", zero_ok=True,
                                        integer=True, parse_text=True))
        keep = tuple(self.keep_answers or ())
        for code in keep:
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise ValueError(f"keep_answers {code!r} is not an HTTP status (100..599)")
        put(self, "keep_answers", keep)
        thresholds = parse_thresholds(self.thresholds)
        if self.abort_on_fail:
            thresholds = tuple(replace(t, abort=True) for t in thresholds)
        put(self, "thresholds", thresholds)
        put(self, "lease_s", check_lease(self.lease_s))
        if self.gap not in GAP_MODES:
            raise ValueError(f"gap {self.gap!r} is not a gap mode; expected one of "
                             f"{', '.join(GAP_MODES)}")
        if self.feed is None and (self.retry or self.resend_unknown):
            raise ValueError("retry and resend_unknown need a feed (they act on its rows)")

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
            elif f.name == "feed" and value is not None:
                shown.append(f"feed={value!r}")
            elif f.name not in ("headers", "body", "feed") and value != f.default:
                shown.append(f"{f.name}={value!r}")
        return f"RunSpec({', '.join(shown)})"

    # ----- validation helpers ------------------------------------------------------------

    def _check_feed(self, urls: tuple[str, ...]) -> None:
        put = object.__setattr__
        only = (self.only,) if isinstance(self.only, str) else tuple(self.only or ())
        only = tuple(k.strip() for part in only for k in str(part).split(",") if k.strip())
        put(self, "only", only)
        if self.feed is None:
            for name in ("only", "feed_format"):
                if getattr(self, name):
                    raise ValueError(f"{name} {getattr(self, name)!r} needs a feed")
            if self.feed_mode != "cycle":
                raise ValueError(f"feed_mode {self.feed_mode!r} needs a feed")
            return
        if urls:
            raise ValueError("give either URLs or a feed, not both (a feed has a url column)")
        check_mode(self.feed_mode)
        if only and not isinstance(self.feed, Feed):
            if not isinstance(self.feed, str | Path):
                raise ValueError("only needs an outcomes file path as the feed "
                                 "(outcomes.parquet of a run)")
            put(self, "feed", select_rows(self.feed, only, http=self.http,
                                          feed_format=self.feed_format))
        else:
            put(self, "feed", load_feed(self.feed, http=self.http,
                                        feed_format=self.feed_format))

    def _check_once(self, given_duration: float | None) -> None:
        """A feed sent once ends when its last row is due: the schedule must reach it."""
        rows = self.feed.rows
        if self.rate_per_s is None and not self.stages:
            raise ValueError("feed_mode 'once' needs a rate or stages (the speed to send the "
                             "feed at), e.g. --rate 1000")
        if self.stages:
            full = Schedule.from_stages(self.stages)
        elif given_duration is not None:
            full = Schedule.ramp_then_constant(self.rate_per_s or 0.0, self.ramp_s, self.run_s)
        else:
            assert self.rate_per_s is not None
            long_s = self.ramp_s + rows / self.rate_per_s + 1.0
            full = Schedule.ramp_then_constant(self.rate_per_s, self.ramp_s, long_s)
        if full.total() < rows:
            given = "stages" if self.stages else f"duration {given_duration!r}"
            raise ValueError(f"feed_mode 'once': {given} sends {full.total()} requests, fewer "
                             f"than the feed's {rows} rows; leave the duration out (the run "
                             "ends when the feed is done) or make the stages longer")
        last, after = full.time_of(rows - 1), full.time_of(rows)
        # Half-way to the next request: the schedule then holds exactly ``rows`` requests.
        end_s = full.duration_s if after == math.inf else (last + after) / 2
        object.__setattr__(self, "duration_s", max(end_s, 1e-3))

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
        """The global schedule, or None for the closed model (a feed sent once may end
        before the stages do: the engine stops at ``run_s``)."""
        if self.stages:
            return Schedule.from_stages(self.stages)
        if self.rate_per_s is None:
            return None
        # A feed sent once may end inside the ramp: the ramp keeps its slope.
        return Schedule.ramp_then_constant(self.rate_per_s, self.ramp_s,
                                           max(self.run_s, self.ramp_s))

    def engine_schedule(self) -> tuple[Schedule | None, float]:
        """The schedule the senders follow and until when. A feed sent once gets slots past
        its end (``ONCE_SLACK_S``; with retries, room for every retry and its longest wait):
        its senders stop when their rows are done, not when the slots are."""
        schedule = self.schedule()
        if schedule is None or self.feed is None or self.feed_mode != "once":
            return schedule, self.run_s
        rate = max(max(s.start_rate_per_s, s.end_rate_per_s) for s in schedule.stages)
        extra_s = (self.run_s * self.retry + RetryPolicy(self.retry).longest_wait_s
                   + ONCE_SLACK_S)
        longer = Schedule((*schedule.stages, Stage(extra_s, rate, rate)))
        return longer, longer.duration_s

    def engine_config(self, index: int, count: int, resolve: tuple[ResolveEntry, ...],
                      feed: FeedPlan | None = None) -> EngineConfig:
        """The config of actor ``index`` of ``count``: stripe index/count of the schedule;
        in pinned mode the engine starts its address cycle at ``index`` so that the actors
        together spread connections evenly over the addresses."""
        schedule, until_s = self.engine_schedule()
        return EngineConfig(
            urls=self.urls, method=self.method, headers=self.headers, body=self.body,
            http=self.http, dns=self.dns, resolve=resolve, cacert=self.cacert,
            insecure=self.insecure, timeout_s=self.timeout_s, schedule=schedule,
            late_after_s=self.late_after_s, retry=RetryPolicy(self.retry),
            keep_answers=self.keep_answers,
            duration_s=until_s, max_in_flight=self.max_in_flight,
            in_flight_step=self.in_flight_step, max_connections=self.max_connections,
            streams_per_connection=self.streams_per_connection,
            actor_index=index, actor_count=count, feed=feed, lease_s=self.lease_s,
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
            elif f.name == "feed":
                value = None if value is None else value.summary(self.feed_mode)
            elif f.name in ("only", "keep_answers"):
                value = list(value)
            elif f.name == "thresholds":
                value = [str(t) for t in value]
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with some fields changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if "stages" not in changes and "duration_s" in changes and self.stages:
            values["stages"] = ()
        if self.feed is not None:
            values["urls"] = ()  # they come from the feed
            values["only"] = ()  # the feed is already the selected rows
            if self.feed_mode == "once" and "duration_s" not in changes:
                values["duration_s"] = None  # the feed's end, under the new schedule
        values.update(changes)
        return RunSpec(**values)
