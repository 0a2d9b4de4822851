"""The run spec: one frozen description of a run, shared by the CLI and the API.

Every field has the same name as its CLI option (``--rate`` is ``rate_per_s`` here, with
units in the name; ``tests/cluster/test_options.py`` holds the two together).
:meth:`RunSpec.parse` takes user input (a single URL string, "K: V" header strings, "10s"
durations, "10s:100,20s:500" stages, "host:port:addr" resolve strings; see
cluster/spec_parse.py) and rejects bad values before any traffic, with a ``ValueError`` that
names the value and what would be valid. The dataclass holds parsed values only (its
``__post_init__`` checks each field's type). Header values never appear in ``repr`` or
``redacted()``.
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from rafale.actors.checks import normalize_http, parse_duration
from rafale.actors.config import EngineConfig, ResolveEntry, url_host_port
from rafale.actors.feed import FeedPlan
from rafale.actors.health import STALL_AFTER_S
from rafale.actors.pacing import Schedule, Stage
from rafale.actors.rows import RetryPolicy
from rafale.analysis.redact import redact_url
from rafale.analysis.thresholds import Threshold
from rafale.cluster.options import parse_stages, planned_connections
from rafale.cluster.spec_parse import Draft, ResourceRiskWarning, parse_fields

__all__ = ["ResourceRiskWarning", "RunSpec", "normalize_http", "parse_duration", "parse_stages",
           "planned_connections", "unknown_option_message"]

ONCE_SLACK_S = 1.0  # slots past the end of a feed sent once (rows taken over, late rows)


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
    http: str = "auto"
    dns: str = "system"
    resolve: tuple[ResolveEntry, ...] = ()
    nameserver: str | None = None
    actors: int | Literal["auto"] = "auto"
    reserve_driver_cpu: bool = False
    max_in_flight: int = 100
    in_flight_step: int = 50
    max_connections: int | None = None
    streams_per_connection: int = 100
    connect_rate_per_s: float | None = None  # new connections a second, over all actors
    cacert: str | None = None
    insecure: bool = False
    timeout_s: float = 10.0
    late_after_s: float = 0.001
    stall_after_s: float = STALL_AFTER_S
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
    aggregation: str = "auto"
    metrics: str | None = None
    metrics_allow_remote: bool = False
    otlp: str | None = None

    def __post_init__(self) -> None:
        """Holds parsed values only: each field of its declared type (``parse`` makes them
        from user input); a raw value here is a caller's bug, named with the way out."""
        for name, hint in _hints().items():
            value = getattr(self, name)
            if not _holds(value, hint):
                raise TypeError(f"RunSpec.{name} = {value!r} is not a parsed value ({hint}); "
                                f"build specs from user input with RunSpec.parse(...)")

    @classmethod
    def parse(cls, urls: Any = (), **options: Any) -> RunSpec:
        """A spec from user input, as ``start(**options)``, the CLI and :meth:`replace` give
        it: a single URL string, "K: V" header strings, "10s" durations, "10s:100,20s:500"
        stages, "host:port:addr" resolve strings, numbers as text, threshold expressions, a
        feed as a path or rows. Bad values raise ``ValueError`` naming the value and what
        would be valid, before any traffic; an unknown option raises ``TypeError``."""
        unknown = [name for name in options if name not in cls.__dataclass_fields__]
        if unknown:
            raise TypeError(f"RunSpec.parse() got unexpected options {', '.join(unknown)}")
        draft = Draft(**{f.name: f.default for f in fields(cls)})
        vars(draft).update(options, urls=urls)
        parse_fields(draft)
        return cls(**vars(draft))

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
            late_after_s=self.late_after_s, stall_after_s=self.stall_after_s,
            retry=RetryPolicy(self.retry), keep_answers=self.keep_answers,
            duration_s=until_s, max_in_flight=self.max_in_flight,
            in_flight_step=self.in_flight_step, max_connections=self.max_connections,
            streams_per_connection=self.streams_per_connection,
            connect_rate_per_s=(None if self.connect_rate_per_s is None
                                else self.connect_rate_per_s / count),
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
        return RunSpec.parse(**values)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(RunSpec)


def _holds(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` (the few forms RunSpec's fields use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (types.UnionType, typing.Union):
        return any(_holds(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_holds(item, args[0]) for item in value)
        return len(value) == len(args) and all(map(_holds, value, args))
    if hint is float:
        return isinstance(value, float)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return value is None if hint is type(None) else isinstance(value, hint)


# Names users reach for first, and the option they mean.
_ALIASES = {"url": "urls", "rate": "rate_per_s", "duration": "duration_s", "ramp": "ramp_s",
            "timeout": "timeout_s", "header": "headers", "data": "body",
            "threshold": "thresholds"}


def unknown_option_message(options: dict[str, Any], error: str) -> str:
    """Name each unknown option and the closest valid one ("did you mean urls=?")."""
    valid = list(RunSpec.__dataclass_fields__)
    hints = []
    for name in options:
        if name in valid:
            continue
        close = _ALIASES.get(name) or next(iter(difflib.get_close_matches(name, valid, 1)), None)
        hints.append(f"unknown option {name}=" + (f" (did you mean {close}=?)" if close else ""))
    return ("; ".join(hints) or error) + f"; valid options are RunSpec fields: {', '.join(valid)}"
