"""Nothing lost, nothing double-counted: rafale's counts against the server's access log.

Caddy logs each request just after its response has gone out, so counts are read with
``wait_access_log``; after ``kill()`` every logged line is on disk (keep_dir keeps the log
across kill/start).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from rafale.actors.engine import Engine
from rafale.actors.pacing import Schedule, Stage
from rafale.cluster.target import Target
from tests.faults import (
    books_balance,
    kill_then_restart,
    plain_config,
    run_engine,
    sleep_until,
    target_config,
)
from tests.faults.misbehaving import Misbehaving

SERVER_PROTO = {"1.1": "HTTP/1.1", "2": "HTTP/2.0", "2c": "HTTP/2.0", "3": "HTTP/3.0"}
NEGOTIATED = {"1.1": "1.1", "2": "2", "2c": "2", "3": "3"}


@pytest.fixture
def server() -> Iterator[Misbehaving]:
    with Misbehaving() as running:
        yield running


def settled_count(target: Target, at_least: int, proto: str | None = None) -> int:
    """The access-log count once it reached ``at_least`` and then stayed put for 0.3 s."""
    seen = target.wait_access_log(at_least, proto=proto)
    time.sleep(0.3)
    later = target.count_access_log(proto)
    assert later == seen, f"the access log still grew after {seen}: {later}"
    return later


@pytest.mark.parametrize(
    ("http", "rate_per_s"),
    [("1.1", 300), ("2", 300), ("2c", 300), ("3", 300), ("2", None)],  # None: closed model
)
def test_server_answered_exactly_what_rafale_completed(
    target: Target, http: str, rate_per_s: int | None
) -> None:
    proto = SERVER_PROTO[http]
    before, before_proto = target.count_access_log(), target.count_access_log(proto)
    schedule = None if rate_per_s is None else Schedule.constant(rate_per_s, 1.0)
    config = target_config(target, http, schedule=schedule)
    engine, windows, _ = run_engine(config)
    totals = books_balance(windows, engine, intended=rate_per_s)
    assert totals["failed"] == 0 and totals["in_flight"] == 0, totals["error"]
    assert totals["completed"] == totals["sent"] > 0
    assert totals["version"] == {NEGOTIATED[http]: totals["completed"]}
    answered = settled_count(target, before + totals["completed"]) - before
    assert answered == totals["completed"]
    assert target.count_access_log(proto) - before_proto == totals["completed"]


@pytest.mark.parametrize("http", ["1.1", "2", "3"])
def test_with_failures_completed_le_server_count_le_sent(
    target_factory: Callable[..., Target], http: str
) -> None:
    # Killed at 1.0 s (SIGKILL: a crash), started again at 1.5 s, on the same ports; the
    # log of both lives survives in the kept dir.
    rate, duration_s = 100, 2.5
    victim = target_factory(access_log=True, keep_dir=True)
    config = target_config(victim, http, schedule=Schedule.constant(rate, duration_s),
                           duration_s=duration_s, timeout_s=2.0, connect_timeout_s=1.0)

    engine, windows, _ = run_engine(config, kill_then_restart(victim, 1.0, 1.5))
    totals = books_balance(windows, engine, intended=int(rate * duration_s))
    assert totals["failed"] > 0, "the kill did not show"
    assert totals["completed"] > rate  # before the kill and after the restart
    answered = settled_count(victim, totals["completed"])
    assert totals["completed"] <= answered <= totals["sent"], (
        totals["completed"], answered, totals["sent"], totals["error"])


def test_requests_still_open_at_the_end_are_counted_in_flight(server: Misbehaving) -> None:
    # Answers take 3 s; the run gives them drain_s = 0.2 s after the last send.
    config = plain_config(server.url("/delay/3000"), 20, 1.0, drain_s=0.2, max_in_flight=50)
    engine, windows, elapsed_s = run_engine(config)
    totals = books_balance(windows, engine, intended=20)
    assert elapsed_s < 1.0 + 0.2 + 0.3
    assert (totals["sent"], totals["completed"], totals["failed"]) == (20, 0, 0)
    assert totals["in_flight"] == engine.in_flight == 20
    assert server.requests["/delay/3000"] == 20  # every one reached the server


def test_pause_and_set_rate_lose_and_double_count_nothing(target: Target) -> None:
    before = target.count_access_log()
    config = target_config(target, "2", schedule=Schedule.constant(200, 2.0), duration_s=2.0)
    engine_box: list[Engine] = []

    def steer(start: float) -> None:
        engine = engine_box[0]
        sleep_until(start + 0.5)
        engine.pause()
        sleep_until(start + 0.8)
        engine.resume()
        sleep_until(start + 1.2)
        engine.set_rate(400)

    engine, windows, _ = run_engine(config, steer, engine_box=engine_box)
    totals = books_balance(windows, engine)
    assert totals["failed"] == 0, totals["error"]
    assert totals["intended"] == totals["sent"] == totals["completed"]
    assert settled_count(target, before + totals["completed"]) - before == totals["completed"]


def test_each_event_lands_in_the_window_of_its_second(server: Misbehaving) -> None:
    # Bursts of 10 requests at 0.75 s, 1.75 s and 2.75 s to a server that never answers,
    # with timeout_s = 0.25: each burst fails just after a window boundary (1 s, 2 s, 3 s),
    # while the loop sleeps across it. Those failures belong to the new second.
    # (Each burst is due within 0.1 ms, so it goes out in one loop turn.)
    burst, idle = Stage(0.0001, 100_000.0, 100_000.0), Stage(0.9999, 0.0, 0.0)
    schedule = Schedule((Stage(0.75, 0.0, 0.0), burst, idle, burst, idle, burst))
    config = plain_config(server.url("/hang"), 1, 2.7501, schedule=schedule, timeout_s=0.25,
                          max_in_flight=50)
    engine, windows, _ = run_engine(config)
    books_balance(windows, engine, intended=30)
    got = [(w["second"], w["sent"], w["failed"]) for w in windows[:4]]
    assert got == [(0, 10, 0), (1, 10, 10), (2, 10, 10), (3, 0, 10)], got
