"""Parse threshold expressions (``--threshold``) into :class:`Threshold` s, before any
traffic; the syntax and the evaluation are in ``analysis/thresholds.py``."""

from __future__ import annotations

import re

from rafale.actors.checks import parse_duration
from rafale.analysis.thresholds import (
    DURATIONS,
    HISTS,
    RATES,
    SCOPES,
    STAT,
    STATUS_RATE,
    Threshold,
)
from rafale.analysis.verdict.fail_if import ABSOLUTE, RELATIVE, FailIf
from rafale.analysis.verdict.metrics import check_row

__all__ = ["parse_fail_if", "parse_fail_ifs", "parse_threshold", "parse_thresholds"]

_UNITS_US = {"us": 1.0, "µs": 1.0, "ms": 1000.0, "s": 1_000_000.0}
_EXPRESSION = re.compile(
    r"\s*(?P<metric>[A-Za-z_][\w.]*)"
    r"(?P<scopes>(?:\[[^\]]*\])*)"
    r"\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(?P<unit>us|µs|ms|s|%)?"
    r"(?P<options>(?::[\w=.-]+)*)\s*$")


def _error(expression: str, position: int, what: str, kind: str = "threshold"
           ) -> ValueError:
    pointer = " " * position + "^"
    return ValueError(f"{kind} {expression!r}: {what} at position {position}\n"
                      f"  {expression}\n  {pointer}")


_THRESHOLD_METRICS = ("p99 (or another percentile, max, mean, latency_raw.p99, send_lag.p99, "
                      "connect.p99, ttfb.p99), "
                      "error_rate, status_5xx_rate, late_rate, rate, dropped, share, "
                      "sender_stall_s or runq_wait_share")
_FAIL_IF_METRICS = ("p99 (or another percentile, max, mean, latency_raw.p99, send_lag.p99), "
                    "error_rate, late_rate, rate, dropped_rate or share")


def _metric(expression: str, name: str, start: int, kind: str = "threshold",
            expected: str = _THRESHOLD_METRICS) -> str:
    """The metric ``name`` (at ``start``) normalised; an error of ``kind`` (threshold or
    fail-if) listing ``expected`` when unknown."""
    hist, _, stat = name.partition(".")
    if STAT.fullmatch(name):  # a bare statistic (p99, p99.9, max, mean): the latency
        hist, stat = "latency", name
    if stat or hist in HISTS:
        if hist not in HISTS:
            raise _error(expression, start, f"unknown latency {hist!r}; expected "
                         f"{', '.join(HISTS)}", kind)
        if not stat or not STAT.fullmatch(stat):
            raise _error(expression, start + len(hist) + 1, f"unknown statistic {stat!r}; "
                         "expected p50..p99.99, max or mean", kind)
        if stat.startswith("p") and not 0 < float(stat[1:]) < 100:
            raise _error(expression, start + len(hist) + 1, f"percentile {stat!r} is not "
                         "between 0 and 100", kind)
        return f"{hist}.{stat}"
    if name in (*RATES, *DURATIONS, "dropped") or STATUS_RATE.fullmatch(name):
        return name
    raise _error(expression, start, f"unknown metric {name!r}; expected {expected}", kind)


def parse_threshold(expression: str) -> Threshold:
    """A Threshold from its text (see the module docstring); ValueError with the position
    of the error."""
    text = str(expression)
    match = _EXPRESSION.fullmatch(text)
    if match is None:
        position = _first_bad(text)
        raise _error(text, position, "expected METRIC[SCOPE][WINDOW] OP VALUE[UNIT], e.g. "
                     "p99<250ms or error_rate[tag=api][10s]<1%")
    metric = _metric(text, match.group("metric"), match.start("metric"))
    scope, window_s = _scopes(text, match.group("scopes"), match.start("scopes"))
    _check_scope(text, metric, scope, match.start("scopes"))
    unit = match.group("unit")
    limit = float(match.group("value"))
    latency = "." in metric
    if latency:
        if unit == "%":
            raise _error(text, match.start("unit"), "a latency takes us, ms or s, not %")
        limit *= _UNITS_US[unit or "ms"]
    elif metric in DURATIONS:
        if unit == "%":
            raise _error(text, match.start("unit"), f"{metric} is a time: us, ms or s")
        limit *= _UNITS_US[unit or "s"]
    elif metric == "dropped":
        if unit:
            raise _error(text, match.start("unit"), "dropped is a count: no unit")
    else:
        if unit not in (None, "%"):
            raise _error(text, match.start("unit"), f"{metric} is a rate: % or a fraction")
        limit = limit / 100.0 if unit == "%" else limit
    abort, after = _options(text, match.group("options"), match.start("options"))
    return Threshold(text.strip(), metric, match.group("op"), limit, scope, window_s, abort,
                     after)


def _scopes(text: str, scopes: str, offset: int
            ) -> tuple[tuple[str, str] | None, int | None]:
    """The scope ([tag=NAME], [address=IP], [version=2]) and the window ([10s]) given."""
    scope, window_s = None, None
    for part in re.findall(r"\[[^\]]*\]", scopes):
        inner = part[1:-1].strip()
        if "=" in inner:
            dimension, _, key = inner.partition("=")
            if dimension.strip() not in SCOPES or not key.strip():
                raise _error(text, offset + 1, f"scope {inner!r}: expected tag=NAME, "
                             "address=IP or version=2")
            if scope is not None:
                raise _error(text, offset, "only one scope per threshold")
            scope = (dimension.strip(), key.strip())
        else:
            try:
                window_s = round(parse_duration(inner))
            except ValueError:
                window_s = 0
            if window_s < 1:
                raise _error(text, offset + 1, f"window {inner!r}: expected whole seconds "
                             "such as 10s or 1m")
        offset += len(part)
    return scope, window_s


_THRESHOLD_VALUE = r"[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?\s*(us|µs|ms|s|%)?"
_CHANGE_VALUE = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?\s*"


def _first_bad(text: str, value_pattern: str = _THRESHOLD_VALUE) -> int:
    """Where an expression stops making sense (for the error pointer): after its metric and
    scopes, its operator, then its value (``value_pattern``)."""
    head = re.match(r"\s*[A-Za-z_][\w.]*(?:\[[^\]]*\])*\s*", text)
    if head is None:
        return len(text) - len(text.lstrip())
    rest = head.end()
    op = re.match(r"(<=|>=|<|>)\s*", text[rest:])
    if op is None:
        return rest
    rest += op.end()
    value = re.match(value_pattern, text[rest:])
    return rest if value is None else rest + value.end()


def _check_scope(text: str, metric: str, scope: tuple[str, str] | None, at: int) -> None:
    if metric == "share" and scope is None:
        raise _error(text, at, "share needs a scope: share[address=IP], [version=2] or "
                     "[tag=NAME]")
    if scope is None or scope[0] == "tag":
        if scope is not None and metric.split(".")[0] in ("latency_raw", "send_lag", "connect",
                                                           "ttfb"):
            raise _error(text, at, "a tag scope has the latency from the intended send time "
                         "only (p99[tag=NAME])")
        if scope is not None and metric in ("rate", "late_rate", "dropped", "dropped_rate",
                                            "runq_wait_share", *DURATIONS):
            raise _error(text, at, f"{metric} is counted per run, not per tag")
        return
    if metric != "share":
        raise _error(text, at, f"scope {scope[0]}= works with share only (windows count "
                     f"completed requests per {scope[0]}, not their latency or errors)")


def _options(text: str, options: str, at: int) -> tuple[bool, float]:
    abort, after = False, 0.0
    offset = at
    for option in filter(None, options.split(":")):
        offset += 1
        if option == "abort":
            abort = True
        elif option.startswith("abort-after="):
            try:
                after = parse_duration(option.partition("=")[2])
            except ValueError:
                raise _error(text, offset, f"{option!r}: expected abort-after=DURATION "
                             "e.g. abort-after=5s") from None
            abort = True
        else:
            raise _error(text, offset, f"unknown option {option!r}; expected abort or "
                         "abort-after=DURATION")
        offset += len(option)
    return abort, after




def parse_thresholds(expressions: object) -> tuple[Threshold, ...]:
    """Every threshold of a run (a string or a sequence of strings / Thresholds)."""
    items = [expressions] if isinstance(expressions, str | Threshold) else list(
        expressions or ())  # type: ignore[call-overload]
    return tuple(t if isinstance(t, Threshold) else parse_threshold(str(t)) for t in items)


# ----- --fail-if (rafale compare): METRIC[SCOPE] OP CHANGE UNIT -------------------------

_FAIL_IF = re.compile(
    r"\s*(?P<metric>[A-Za-z_][\w.]*)"
    r"(?P<scopes>(?:\[[^\]]*\])*)"
    r"\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(?P<unit>pp|us|µs|ms|s|%)\s*$")
_FAIL_IF_HELP = ("expected METRIC[SCOPE] OP CHANGE UNIT with UNIT % (relative), pp "
                 "(percentage points) or us/ms/s, e.g. p99>+10%, error_rate>+0.5pp, rate<-2%")


def _fail_if_metric(text: str, name: str, start: int) -> str:
    if name == "dropped_rate":
        return name
    metric = _metric(text, name, start, "fail-if", _FAIL_IF_METRICS)
    if metric == "dropped" or STATUS_RATE.fullmatch(metric):
        raise _error(text, start, f"{metric} is not compared; expected p99 (or another "
                     "latency), rate, error_rate, late_rate, dropped_rate or share", "fail-if")
    return metric


def parse_fail_if(expression: str) -> FailIf:
    """A FailIf from its text (``analysis/verdict/fail_if.py``); ValueError with the
    position of the error."""
    text = str(expression)
    match = _FAIL_IF.fullmatch(text)
    if match is None:
        raise _error(text, _first_bad(text, _CHANGE_VALUE), _FAIL_IF_HELP, "fail-if")
    metric = _fail_if_metric(text, match.group("metric"), match.start("metric"))
    try:
        scope, window_s = _scopes(text, match.group("scopes"), match.start("scopes"))
        _check_scope(text, metric, scope, match.start("scopes"))
    except ValueError as exc:
        raise ValueError(str(exc).replace("threshold ", "fail-if ", 1)) from None
    if window_s is not None:
        raise _error(text, match.start("scopes"), "a comparison has no rolling window",
                     "fail-if")
    row = f"{metric}[{scope[0]}={scope[1]}]" if scope else metric
    why = check_row(row)
    if why is None and metric.endswith(".max"):
        why = f"{metric} gets no verdict (a maximum is one request)"
    if why is not None:
        raise _error(text, match.start("metric"), why, "fail-if")
    unit, value = match.group("unit"), float(match.group("value"))
    at = match.start("unit")
    if unit == "%":
        return FailIf(text.strip(), row, match.group("op"), value / 100.0, RELATIVE)
    if "." in metric:
        if unit == "pp":
            raise _error(text, at, "a latency takes %, us, ms or s, not pp", "fail-if")
        return FailIf(text.strip(), row, match.group("op"), value * _UNITS_US[unit], ABSOLUTE)
    if metric == "rate" or unit != "pp":
        expected = "%" if metric == "rate" else "% or pp"
        raise _error(text, at, f"{metric} takes {expected}, not {unit}", "fail-if")
    return FailIf(text.strip(), row, match.group("op"), value / 100.0, ABSOLUTE)


def parse_fail_ifs(expressions: object) -> tuple[FailIf, ...]:
    """Every --fail-if of a comparison (a string or a sequence of strings / FailIfs)."""
    items = [expressions] if isinstance(expressions, str | FailIf) else list(
        expressions or ())  # type: ignore[call-overload]
    return tuple(f if isinstance(f, FailIf) else parse_fail_if(str(f)) for f in items)

