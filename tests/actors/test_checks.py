"""The shared checks: each good value comes back normalized; each bad value is a ValueError
naming the option and the value."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from rafale.actors.checks import (
    check_address,
    check_dns,
    check_duration,
    check_index,
    check_number,
    check_rate,
    check_url,
    normalize_http,
    number_ok,
    parse_duration,
)

# (case id, call, expected result: equal and of the same type)
GOOD: list[tuple[str, Callable[[], object], object]] = [
    ("number", lambda: check_number("n", 1.5, "s"), 1.5),
    ("number int as float", lambda: check_number("n", 2, "s"), 2.0),
    ("number zero ok", lambda: check_number("n", 0, "s", zero_ok=True), 0.0),
    ("integer from float", lambda: check_number("n", 3.0, "x", integer=True), 3),
    ("integer from text", lambda: check_number("n", " 7 ", "x", integer=True, parse_text=True),
     7),
    ("integer zero ok", lambda: check_number("n", 0, "x", zero_ok=True, integer=True), 0),
    ("rate", lambda: check_rate(100), 100.0),
    ("rate from text", lambda: check_rate("2.5"), 2.5),
    ("rate tiny", lambda: check_rate(1e-3), 1e-3),
    ("index first", lambda: check_index("i", 0, 1), 0),
    ("index last", lambda: check_index("i", 2, 3), 2),
    ("duration ms", lambda: parse_duration("500ms"), 0.5),
    ("duration bare", lambda: parse_duration(10), 10.0),
    ("check duration", lambda: check_duration("d", "2m"), 120.0),
    ("check duration zero ok", lambda: check_duration("ramp", 0, zero_ok=True), 0.0),
    ("http prefix", lambda: normalize_http("HTTP/2"), "2"),
    ("http h2c", lambda: normalize_http("h2c"), "2c"),
    ("http number", lambda: normalize_http(1.1), "1.1"),
    ("http h3", lambda: normalize_http("h3"), "3"),
    ("http auto", lambda: normalize_http(" AUTO "), "auto"),
    ("dns", lambda: check_dns("pinned"), "pinned"),
    ("url https", lambda: check_url("https://a.test:8443/x", "2"), None),
    ("url 2c", lambda: check_url("http://a.test/", "2c"), None),
    ("url 1.1 either", lambda: check_url("http://a.test/", "1.1"), None),
    ("url auto cleartext", lambda: check_url("http://a.test/", "auto"), None),
    ("url auto tls", lambda: check_url("https://a.test/", "auto"), None),
    ("address v4", lambda: check_address("127.0.0.2"), "127.0.0.2"),
    ("address v6", lambda: check_address("::1"), "::1"),
]

# (case id, call, fragments the message must contain)
BAD: list[tuple[str, Callable[[], object], list[str]]] = [
    ("number zero", lambda: check_number("timeout_s", 0, "s"), ["timeout_s 0", "> 0", "(s)"]),
    ("number negative", lambda: check_number("n", -1, "s", zero_ok=True), ["n -1", ">= 0"]),
    ("number nan", lambda: check_number("n", math.nan, "s"), ["n nan", "finite"]),
    ("number inf", lambda: check_number("n", math.inf, "s"), ["n inf"]),
    ("number bool", lambda: check_number("n", True, "s"), ["n True"]),
    ("number none", lambda: check_number("n", None, "s"), ["n None"]),
    ("number text not parsed", lambda: check_number("n", "10", "s"), ["n '10'"]),
    ("number bad text", lambda: check_number("n", "ten", "s", parse_text=True), ["n 'ten'"]),
    ("integer fraction", lambda: check_number("max_in_flight", 2.5, "requests", integer=True),
     ["max_in_flight 2.5", "an integer >= 1", "(requests)"]),
    ("integer zero", lambda: check_number("n", 0, "x", integer=True), ["n 0", ">= 1"]),
    ("integer negative", lambda: check_number("n", -1, "x", zero_ok=True, integer=True),
     ["n -1", "an integer >= 0"]),
    ("rate zero", lambda: check_rate(0), ["rate 0", "> 0", "req/s"]),
    ("rate negative", lambda: check_rate(-5), ["rate -5"]),
    ("rate nan", lambda: check_rate(math.nan), ["rate nan"]),
    ("rate inf text", lambda: check_rate("inf"), ["rate 'inf'"]),
    ("rate word", lambda: check_rate("fast"), ["rate 'fast'"]),
    ("rate bool", lambda: check_rate(True), ["rate True"]),
    ("index too big", lambda: check_index("stripe index", 3, 3), ["stripe index 3", "0..2"]),
    ("index negative", lambda: check_index("i", -1, 2), ["i -1", "0..1"]),
    ("index float", lambda: check_index("i", 1.0, 2), ["i 1.0", "integer"]),
    ("duration unit", lambda: parse_duration("10 parsecs"), ["'10 parsecs'", "ms, s, m, h"]),
    ("duration bool", lambda: parse_duration(True, "ramp"), ["ramp True"]),
    ("duration zero", lambda: check_duration("duration", 0), ["duration 0", "> 0 s"]),
    ("duration negative", lambda: check_duration("ramp", -1, zero_ok=True),
     ["ramp -1", ">= 0 s"]),
    ("duration nan", lambda: check_duration("timeout", math.nan), ["timeout nan"]),
    ("http", lambda: normalize_http("4"), ["http '4'", "auto, 1.1, 2, 2c, 3"]),
    ("dns", lambda: check_dns("magic"), ["dns 'magic'", "system, pinned"]),
    ("url scheme", lambda: check_url("ftp://x/", "2"), ["'ftp://x/'", "'ftp'", "http or https"]),
    ("url port", lambda: check_url("https://x:99999/", "2"), ["'https://x:99999/'"]),
    ("url no host", lambda: check_url("https:///path", "2"), ["'https:///path'", "no host"]),
    ("url tls only", lambda: check_url("http://x/", "3"), ["'http://x/'", "https://"]),
    ("url strict 2", lambda: check_url("http://x/", "2"), ["http 2 needs an https://", "auto"]),
    ("url cleartext only", lambda: check_url("https://x/", "2c"), ["'https://x/'", "http://"]),
    ("address", lambda: check_address("not-an-ip"), ["'not-an-ip'", "IP address"]),
]


@pytest.mark.parametrize(("call", "expected"), [(c, e) for _, c, e in GOOD],
                         ids=[case for case, _, _ in GOOD])
def test_good_values_come_back_normalized(call: Callable[[], object], expected: object) -> None:
    result = call()
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("call", "fragments"), [(c, f) for _, c, f in BAD],
                         ids=[case for case, _, _ in BAD])
def test_bad_values_name_the_option_and_value(call: Callable[[], object],
                                              fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(("value", "zero_ok", "integer", "ok"), [
    (1, False, False, True),
    (0.5, False, True, False),
    (0, False, False, False),
    (0, True, False, True),
    (-0.1, True, False, False),
    (math.nan, True, False, False),
    (10**400, False, True, False),  # too big to be a float
    (False, True, True, False),
    ("1", False, False, False),
])
def test_number_ok_is_the_rule(value: object, zero_ok: bool, integer: bool, ok: bool) -> None:
    assert number_ok(value, zero_ok=zero_ok, integer=integer) is ok
