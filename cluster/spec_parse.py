"""Parsing a run spec from user input: every field of a draft (a namespace holding what
the user gave) turned into the precise value ``RunSpec`` holds, or a ``ValueError`` that
names the value and what would be valid. ``RunSpec.parse`` (cluster/spec.py) calls
:func:`parse_fields` and builds the frozen spec from the result."""

from __future__ import annotations

import math
import os
import resource
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rafale.actors.checks import (
    check_dns,
    check_duration,
    check_number,
    check_rate,
    check_url,
    normalize_http,
)
from rafale.actors.pacing import Schedule
from rafale.cluster.feeds import Feed, check_mode, load_feed, select_rows
from rafale.cluster.metrics import parse_metrics_address
from rafale.cluster.options import (
    AGGREGATIONS,
    FD_OVERHEAD,
    GAP_MODES,
    check_lease,
    check_writable,
    parse_headers,
    parse_otlp_url,
    parse_resolve,
    parse_stages,
    planned_connections,
)
from rafale.cluster.threshold_syntax import parse_thresholds

__all__ = ["DEFAULT_DURATION_S", "Draft", "ResourceRiskWarning", "parse_fields"]

DEFAULT_DURATION_S = 10.0
PEM_MARKER = "-----BEGIN CERTIFICATE-----"

RAY_ADDRESS_ENV = "RAY_ADDRESS"  # the cluster a run joins when it names none


class ResourceRiskWarning(RuntimeWarning):
    """The run may hit a resource limit (e.g. open files) but is not certain to."""


class Draft(SimpleNamespace):
    """A spec's fields while :meth:`RunSpec.parse` turns user input into parsed values."""


def parse_fields(d: Any) -> None:
    """Every field of the draft ``d`` parsed and checked, in the order they depend on."""
    d.http = http = normalize_http(d.http)
    urls = (d.urls,) if isinstance(d.urls, str) else tuple(d.urls or ())
    _parse_feed(d, urls)
    if d.feed is not None:
        urls = d.feed.origins
    if not urls:
        raise ValueError("no target URL given; expected at least one http(s) URL or a feed")
    d.urls = urls
    check_dns(d.dns)
    for url in urls:
        check_url(url, http)
    method = str(d.method).strip().upper()
    if not method.isalpha():
        raise ValueError(f"method {d.method!r} is not an HTTP method, e.g. GET or POST")
    d.method = method
    d.headers = parse_headers(d.headers)
    if isinstance(d.body, str):
        d.body = d.body.encode()
    given_duration = d.duration_s
    _parse_schedule(d)
    if d.feed is not None and d.feed_mode == "once":
        _parse_once(d, given_duration)
    d.resolve = parse_resolve(d.resolve)
    if d.nameserver is not None and not str(d.nameserver).strip():
        raise ValueError("nameserver '' is empty; expected an IP address like 127.0.0.53")
    _parse_limits(d)
    _parse_files(d)
    d.retry = check_number("retry", d.retry, "retries", zero_ok=True, integer=True,
                           parse_text=True)
    raw = d.keep_answers or ()
    keep = (raw,) if isinstance(raw, int | str) else tuple(raw)  # one status, or several
    d.keep_answers = tuple(_status(code) for code in keep)
    thresholds = parse_thresholds(d.thresholds)
    if d.abort_on_fail:
        thresholds = tuple(replace(t, abort=True) for t in thresholds)
    d.thresholds = thresholds
    d.lease_s = check_lease(d.lease_s)
    if d.gap not in GAP_MODES:
        raise ValueError(f"gap {d.gap!r} is not a gap mode; expected one of "
                         f"{', '.join(GAP_MODES)}")
    if d.aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation {d.aggregation!r} is not an aggregation; expected one "
                         f"of {', '.join(AGGREGATIONS)}")
    if d.feed is None and (d.retry or d.resend_unknown):
        raise ValueError("retry and resend_unknown need a feed (they act on its rows)")
    if d.metrics is not None:
        d.metrics = parse_metrics_address(d.metrics, d.metrics_allow_remote is True)
    if d.otlp is not None:
        d.otlp = parse_otlp_url(d.otlp)
    for name in ("insecure", "show_query", "resend_unknown", "abort_on_fail",
                 "reserve_driver_cpu", "metrics_allow_remote"):
        if not isinstance(getattr(d, name), bool):
            raise ValueError(f"{name} {getattr(d, name)!r} is not a boolean; expected True "
                             "or False")


def _status(code: Any) -> int:
    """An HTTP status code to keep answers of (an int, or its text)."""
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        raise ValueError(f"keep_answers {code!r} is not an HTTP status (100..599)")
    return code


def _parse_feed(d: Any, urls: tuple[str, ...]) -> None:
    only = (d.only,) if isinstance(d.only, str) else tuple(d.only or ())
    d.only = only = tuple(k.strip() for part in only for k in str(part).split(",")
                          if k.strip())
    if d.feed is None:
        for name in ("only", "feed_format"):
            if getattr(d, name):
                raise ValueError(f"{name} {getattr(d, name)!r} needs a feed")
        if d.feed_mode != "cycle":
            raise ValueError(f"feed_mode {d.feed_mode!r} needs a feed")
        return
    if urls:
        raise ValueError("give either URLs or a feed, not both (a feed has a url column)")
    check_mode(d.feed_mode)
    if only and not isinstance(d.feed, Feed):
        if not isinstance(d.feed, str | Path):
            raise ValueError("only needs an outcomes file path as the feed "
                             "(outcomes.parquet of a run)")
        d.feed = select_rows(d.feed, only, http=d.http, feed_format=d.feed_format)
    else:
        d.feed = load_feed(d.feed, http=d.http, feed_format=d.feed_format)


def _parse_once(d: Any, given_duration: float | None) -> None:
    """A feed sent once ends when its last row is due: the schedule must reach it."""
    rows = d.feed.rows
    if d.rate_per_s is None and not d.stages:
        raise ValueError("feed_mode 'once' needs a rate or stages (the speed to send the "
                         "feed at), e.g. --rate 1000")
    if d.stages:
        full = Schedule.from_stages(d.stages)
    elif given_duration is not None:
        full = Schedule.ramp_then_constant(d.rate_per_s or 0.0, d.ramp_s, d.duration_s)
    else:
        long_s = d.ramp_s + rows / d.rate_per_s + 1.0
        full = Schedule.ramp_then_constant(d.rate_per_s, d.ramp_s, long_s)
    if full.total() < rows:
        given = "stages" if d.stages else f"duration {given_duration!r}"
        raise ValueError(f"feed_mode 'once': {given} sends {full.total()} requests, fewer "
                         f"than the feed's {rows} rows; leave the duration out (the run "
                         "ends when the feed is done) or make the stages longer")
    last, after = full.time_of(rows - 1), full.time_of(rows)
    # Half-way to the next request: the schedule then holds exactly ``rows`` requests.
    end_s = full.duration_s if after == math.inf else (last + after) / 2
    d.duration_s = max(end_s, 1e-3)


def _parse_schedule(d: Any) -> None:
    stages = parse_stages(d.stages) if d.stages not in ((), [], "", None) else ()
    given_stages, d.stages = d.stages, stages
    given_ramp = d.ramp_s
    d.ramp_s = ramp_s = check_duration("ramp", given_ramp or 0.0, zero_ok=True)
    if d.rate_per_s is not None:
        try:
            d.rate_per_s = check_rate(d.rate_per_s)
        except ValueError as exc:
            raise ValueError(f"{exc}; leave it out for the closed model") from None
    if stages and d.rate_per_s is not None:
        raise ValueError("give either rate or stages, not both (stages set their own rates)")
    if stages and ramp_s:
        raise ValueError("give either ramp or stages, not both (a stage ramps by itself)")
    if ramp_s and d.rate_per_s is None:
        raise ValueError(f"ramp {given_ramp!r} needs a rate to ramp up to")
    total_s = sum(duration for duration, _ in stages)
    if d.duration_s is None:
        duration_s = total_s if stages else DEFAULT_DURATION_S
    else:
        duration_s = check_duration("duration", d.duration_s)
    if stages and not math.isclose(duration_s, total_s):
        raise ValueError(f"duration {d.duration_s!r} differs from the stages' total "
                         f"{total_s:g} s; leave duration out when giving stages")
    if ramp_s > duration_s:
        raise ValueError(f"ramp {given_ramp!r} ({ramp_s:g} s) is longer than the duration "
                         f"({duration_s:g} s); expected ramp <= duration")
    d.duration_s = float(duration_s)
    if stages and not any(rate > 0 for _, rate in stages):
        raise ValueError(f"stages {given_stages!r} never send: every target rate is 0")


def _parse_limits(d: Any) -> None:
    actors = d.actors
    if isinstance(actors, str) and actors.strip().lower() == "auto":
        d.actors = "auto"
    else:
        try:
            d.actors = check_number("actors", actors, "count", integer=True, parse_text=True)
        except ValueError:
            raise ValueError(f"actors {actors!r} must be 'auto' (one per CPU) or an "
                             "integer >= 1") from None
    units = {"max_in_flight": "requests per actor", "in_flight_step": "requests",
             "streams_per_connection": "streams"}
    if d.max_connections is not None:
        units["max_connections"] = "connections per actor"
    for name, unit in units.items():
        setattr(d, name, check_number(name, getattr(d, name), unit, integer=True,
                                      parse_text=True))
    d.timeout_s = check_duration("timeout", d.timeout_s)
    d.late_after_s = check_duration("late_after", d.late_after_s, zero_ok=True)
    d.stall_after_s = check_duration("stall_after", d.stall_after_s)
    if d.connect_rate_per_s is not None:
        d.connect_rate_per_s = check_number("connect_rate", d.connect_rate_per_s,
                                            "new connections per second", parse_text=True)
    _check_open_files(d)


def _check_open_files(d: Any) -> None:
    addresses = max((len(e.addresses) for e in d.resolve), default=1)
    planned = planned_connections(d.http, d.max_in_flight, d.streams_per_connection,
                                  d.max_connections, addresses) * len(d.urls)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    advice = (f"raise it with `ulimit -n {2 * (planned + FD_OVERHEAD)}` (and the nofile "
              "limit of the Ray nodes), or lower max_in_flight / max_connections")
    if planned > soft:
        raise ValueError(f"max_in_flight {d.max_in_flight} plans up to {planned} "
                         f"connections per actor, above the open-files limit {soft}; "
                         + advice)
    if planned + FD_OVERHEAD > soft:
        warnings.warn(f"up to {planned} connections per actor come close to the "
                      f"open-files limit {soft}; " + advice, ResourceRiskWarning,
                      stacklevel=5)


def _parse_files(d: Any) -> None:
    if d.cacert is not None:
        path = Path(str(d.cacert)).expanduser()
        if not path.is_file():
            raise ValueError(f"cacert {str(d.cacert)!r} does not exist or is not a file; "
                             "expected a PEM CA certificate file")
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise ValueError(f"cacert {str(d.cacert)!r} cannot be read: {exc}") from None
        if PEM_MARKER not in text:
            raise ValueError(f"cacert {str(d.cacert)!r} is not a PEM certificate (no "
                             f"{PEM_MARKER!r} line); expected a PEM CA certificate file")
        d.cacert = str(path)
    if d.out is not None:
        check_writable(str(d.out))
        d.out = str(Path(str(d.out)).expanduser())
    for name in ("nameserver", "address", "label", "feed_format"):
        value = getattr(d, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} {value!r} is not text")
    if d.address is None:  # as ray.init does: RAY_ADDRESS, else a local Ray ("local")
        d.address = os.environ.get(RAY_ADDRESS_ENV) or None


