"""One helper for each kind of check on a value, shared by the run spec and the engine.

Each raises a ``ValueError`` that names the option, shows the bad value and says what
would be valid. ``RunSpec`` (cluster/spec.py) checks user input with them; the engine
uses them for its control calls (``set_rate``, ``set_stripe``) and the pacer for its
stages. A leaf module: the standard library only (actors/ is shipped to Ray nodes).
"""

from __future__ import annotations

import ipaddress
import math
import re
from numbers import Real
from typing import Literal, get_args, overload
from urllib.parse import urlsplit

__all__ = [
    "DNS_MODES", "HTTP_VERSIONS", "DnsMode", "HttpVersion", "check_address", "check_dns",
    "check_duration", "check_index", "check_number", "check_rate", "check_url",
    "normalize_http", "number_ok", "parse_duration",
]

HttpVersion = Literal["auto", "1.1", "2", "2c", "3"]
DnsMode = Literal["system", "pinned"]
HTTP_VERSIONS: tuple[str, ...] = get_args(HttpVersion)
DNS_MODES: tuple[str, ...] = get_args(DnsMode)
_TLS_ONLY = {"2", "3"}
_CLEARTEXT_ONLY = {"2c"}
_HTTP_ALIASES = {"2.0": "2", "3.0": "3", "1": "1.1", "h2c": "2c", "h2": "2", "h3": "3"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


# ----------------------------------------------------------------------------- numbers


def number_ok(value: object, *, zero_ok: bool = False, integer: bool = False) -> bool:
    """Whether ``value`` is a real number (not a bool, not text), finite, > 0 (>= 0 if
    ``zero_ok``) and, if ``integer``, a whole number. The one rule behind the checks below
    (and the engine config's invariants)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        return False
    return not integer or number.is_integer()


def _from_text(value: object) -> object:
    """Numeric text such as ``"100"`` or ``"1e3"`` as a float; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@overload
def check_number(name: str, value: object, unit: str, *, zero_ok: bool = ...,
                 integer: Literal[False] = ..., parse_text: bool = ...) -> float: ...


@overload
def check_number(name: str, value: object, unit: str, *, zero_ok: bool = ...,
                 integer: Literal[True], parse_text: bool = ...) -> int: ...


def check_number(name: str, value: object, unit: str, *, zero_ok: bool = False,
                 integer: bool = False, parse_text: bool = False) -> float | int:
    """``value`` as a finite number > 0 (>= 0 if ``zero_ok``; an int if ``integer``), else
    ValueError, e.g. ``max_in_flight 0 must be an integer >= 1 (requests per actor)``.

    ``parse_text`` also takes numeric text (``"100"``), as options given as text are.
    """
    number = _from_text(value) if parse_text else value
    if not number_ok(number, zero_ok=zero_ok, integer=integer):
        kind = "an integer" if integer else "a finite number"
        bound = (">= 0" if zero_ok else ">= 1") if integer else (">= 0" if zero_ok else "> 0")
        raise ValueError(f"{name} {value!r} must be {kind} {bound} ({unit})")
    assert isinstance(number, Real)  # number_ok said so
    if integer:
        return number if isinstance(number, int) else int(float(number))
    return float(number)


def check_rate(rate_per_s: object) -> float:
    """A target rate: a finite number > 0 req/s (numeric text too), as a float. Used by
    RunSpec, ``Run.set_rate`` and the engine's ``set_rate``."""
    return check_number("rate", rate_per_s, "req/s", parse_text=True)


def check_index(name: str, index: object, count: int) -> int:
    """``index`` as an int in ``0..count - 1`` (actor ``index`` of ``count``), else ValueError."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(f"{name} {index!r} must be an integer in 0..{count - 1}")
    return index


# ----------------------------------------------------------------------------- durations


def parse_duration(value: object, name: str = "duration") -> float:
    """Seconds from ``10``, ``2.5``, ``"10"``, ``"10s"``, ``"500ms"``, ``"2m"``, ``"1h"``
    (any sign or size: :func:`check_duration` also checks the range)."""
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


def check_duration(name: str, value: object, *, zero_ok: bool = False) -> float:
    """Seconds from a duration (see :func:`parse_duration`), finite and > 0 (>= 0 if
    ``zero_ok``), else ValueError naming the value as given."""
    seconds = parse_duration(value, name)
    if not number_ok(seconds, zero_ok=zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} {value!r} must be a duration {bound} s, e.g. 10s or 2m")
    return seconds


# ----------------------------------------------------------------------------- protocol


def normalize_http(value: object) -> str:
    """``2``, ``"2.0"``, ``"http/2"`` -> ``"2"``; ``"h2c"`` -> ``"2c"``; ``"auto"`` (HTTP/2
    by ALPN over TLS with HTTP/1.1 as the server's choice, HTTP/1.1 for http://); else
    ValueError."""
    http = str(value).strip().lower().removeprefix("http/").removeprefix("http")
    http = _HTTP_ALIASES.get(http, http)
    if http not in HTTP_VERSIONS:
        raise ValueError(f"http {value!r} is not supported; expected one of "
                         f"{', '.join(HTTP_VERSIONS)}")
    return http


def check_dns(value: object) -> str:
    """``value`` if it is a DNS mode (``system`` or ``pinned``), else ValueError."""
    if value not in DNS_MODES:
        raise ValueError(f"dns {value!r} is not supported; expected one of "
                         f"{', '.join(DNS_MODES)}")
    return str(value)


def check_url(url: str, http: str) -> None:
    """Raise ValueError if ``url`` is malformed or its scheme does not fit ``http``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL {url!r} has scheme {parts.scheme!r}; expected http or https")
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host; expected e.g. https://example.test/")
    if http in _TLS_ONLY and parts.scheme != "https":
        raise ValueError(f"http {http} needs an https:// URL, got {url!r} (use auto, 1.1 "
                         "or 2c)")
    if http in _CLEARTEXT_ONLY and parts.scheme != "http":
        raise ValueError(f"http 2c is cleartext and needs an http:// URL, got {url!r}")


def check_address(address: str) -> str:
    """Return ``address`` if it is a literal IPv4/IPv6 address, else raise ValueError."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"address {address!r} is not an IP address; expected e.g. 127.0.0.2 or ::1"
        ) from None
    return address
