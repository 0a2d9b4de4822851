"""The send limits of an engine (pure): the in-flight cap's ramp and the connect budget."""

from __future__ import annotations

import math

import pytest

from rafale.actors.config import EngineConfig
from rafale.actors.limits import CAP, CONNECT, SendLimits


def limits(http: str = "1.1", **options: object) -> SendLimits:
    url = "http://a.test/" if http == "2c" else "https://a.test/"
    return SendLimits(EngineConfig(urls=(url,), http=http, **options))  # type: ignore[arg-type]


def test_without_a_budget_only_the_ramping_cap_holds() -> None:
    one = limits(max_in_flight=120, in_flight_step=50)
    assert one.budget(100.0, 0.0) == (math.inf, math.inf)
    assert [one.holding(n, 5.0, 0.0)[0] for n in (49, 50)] == ["", CAP]
    one.ramp()
    one.ramp()
    one.ramp()
    assert one.cap == 120  # 50, 100, then the maximum


@pytest.mark.parametrize(("http", "per_connection"), [("1.1", 1), ("2", 100), ("3", 100),
                                                      ("2c", 100), ("auto", 100)])
def test_the_budget_grows_by_its_rate_from_one_connection(http: str,
                                                         per_connection: int) -> None:
    one = limits(http, connect_rate_per_s=40.0, max_in_flight=10_000, in_flight_step=10_000)
    assert one.budget(10.0, 10.0) == (per_connection, 10.0 + 1 / 40)  # one at the start
    assert one.budget(10.5, 10.0) == (21 * per_connection, 10.0 + 21 / 40)
    assert one.holding(21 * per_connection, 10.5, 10.0)[0] == CONNECT
    assert one.holding(21 * per_connection - 1, 10.5, 10.0)[0] == ""


def test_the_budget_is_named_when_both_bind_and_each_cause_is_kept() -> None:
    one = limits(connect_rate_per_s=10.0, max_in_flight=5, in_flight_step=5)
    assert one.limit(0.0, 0.0)[:2] == (1, CONNECT)  # one connection: the budget binds first
    assert one.limit(2.0, 0.0)[:2] == (5, CAP)  # 21 allowed by then: the cap binds
    one.held(CONNECT, 1.0)
    one.held(CAP, 3.0)
    one.held("", 9.0)  # nothing held: nothing changes
    assert one.causes(0.5) == (True, True) and one.causes(2.0) == (True, False)
    assert one.causes(3.5) == (False, False)
