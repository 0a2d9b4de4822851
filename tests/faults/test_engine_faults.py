"""Faults during a run, one engine: counted per second by kind; the run goes on and ends.

Curl codes seen (libcurl 8.23, loopback): refused TCP connect -> connect:7; HTTP/3 to a
dead port -> send:55 (the ICMP "port unreachable" fails QUIC's sendmsg); reset after the
request -> recv:56; reset right after accept -> recv:56 or connect:7; clean close without
a reply -> recv:52; short body -> recv:18; no reply within timeout_s -> timeout:28;
a reply that is not HTTP -> 1 (CURLE_UNSUPPORTED_PROTOCOL, "Received HTTP/0.9 when not
allowed").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from rafale.actors.pacing import Schedule, Stage
from rafale.cluster.target import Target
from tests.faults import (
    books_balance,
    by_second,
    error_kinds,
    free_loopback_port,
    kill_then_restart,
    percentile_us,
    plain_config,
    run_engine,
    target_config,
)
from tests.faults.misbehaving import Misbehaving, OnAccept


@pytest.fixture
def server() -> Iterator[Misbehaving]:
    with Misbehaving() as running:
        yield running


# ----- target down at start ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "http", "error"),
    [
        ("nothing listens", "1.1", "connect:7"),
        ("nothing listens", "2c", "connect:7"),
        ("killed target", "1.1", "connect:7"),
        ("killed target", "2", "connect:7"),
        # QUIC over UDP: the kernel's "port unreachable" fails curl's sendmsg.
        ("killed target", "3", "send:55"),
    ],
)
def test_target_down_at_start_is_counted_every_second(
    target_factory: Callable[..., Target], down: str, http: str, error: str
) -> None:
    rate, duration_s = 50, 2.0
    overrides: dict[str, Any] = {"schedule": Schedule.constant(rate, duration_s),
                                 "duration_s": duration_s}
    if down == "nothing listens":
        url = f"http://127.0.0.1:{free_loopback_port()}/"
        config = plain_config(url, rate, duration_s, http=http)
    else:
        dead = target_factory()
        dead.kill()
        config = target_config(dead, http, **overrides)
    engine, windows, elapsed_s = run_engine(config)
    totals = books_balance(windows, engine, intended=rate * 2)
    assert elapsed_s < duration_s + 1.0, "the run did not end normally"
    seconds = by_second(windows)
    for second in range(int(duration_s)):
        w = seconds[second]
        assert w["completed"] == 0
        assert w["failed"] == w["sent"] == rate, (second, w["sent"], w["failed"])
        assert w["error"] == {error: rate}, (second, w["error"])
    assert totals["failed"] == rate * 2


# ----- target killed mid-run and restarted --------------------------------------------------


@pytest.mark.parametrize("http", ["1.1", "2", "3"])
def test_target_killed_and_restarted_fails_then_recovers(
    target_factory: Callable[..., Target], http: str
) -> None:
    rate, duration_s = 200, 4.0
    victim = target_factory(access_log=True, keep_dir=True)
    config = target_config(victim, http, schedule=Schedule.constant(rate, duration_s),
                           duration_s=duration_s, timeout_s=2.0, connect_timeout_s=1.0)

    engine, windows, _ = run_engine(config, kill_then_restart(victim, 1.2, 2.0))
    totals = books_balance(windows, engine, intended=rate * int(duration_s))
    seconds = by_second(windows)
    before, gap, after = seconds[0], seconds[1], seconds[3]
    assert before["failed"] == 0 and before["completed"] >= rate * 0.9, before["error"]
    # Killed at 1.2 s: about 0.8 s x 200 req/s of second 1 find nothing to talk to.
    assert gap["failed"] >= rate * 0.8 * 0.5, gap["error"]
    assert gap["completed"] > 0  # the first 0.2 s went through
    # Every request of second 3 is answered (the last few just after the second ends).
    assert after["failed"] == 0, after["error"]
    assert after["completed"] >= rate * 0.9, after["completed"]
    # Refused connects, and resets of what was open (a TLS handshake cut: tls:35).
    assert error_kinds(windows) <= {"connect", "send", "recv", "tls"}, totals["error"]
    assert totals["completed"] + totals["failed"] == totals["sent"] == rate * duration_s


# ----- slow target: coordinated omission made visible ---------------------------------------


def test_slow_target_with_cap_counts_late_and_corrected_latency_grows(
    server: Misbehaving,
) -> None:
    # 200 ms per answer and 5 in flight carry 25 req/s; the schedule asks for 100 req/s.
    # Late requests are still sent up to drain_s past the end; keep that short.
    config = plain_config(server.url("/delay/200"), 100, 2.0, max_in_flight=5,
                          in_flight_step=5, drain_s=0.5)
    engine, windows, _ = run_engine(config)
    totals = books_balance(windows, engine, intended=200)
    assert totals["failed"] == 0, totals["error"]
    assert server.connections <= 5  # HTTP/1.1: one connection per open request, kept alive
    assert totals["late"] >= totals["sent"] // 2, (totals["late"], totals["sent"])
    raw_p50 = percentile_us(totals["latency_raw_us"], 50)
    corrected_p50 = percentile_us(totals["latency_corrected_us"], 50)
    assert 200_000 <= raw_p50 < 300_000, raw_p50
    assert corrected_p50 > 2 * raw_p50, (corrected_p50, raw_p50)
    # Per second: the corrected latency grows as the backlog grows; the raw one does not.
    first, second = by_second(windows)[0], by_second(windows)[1]
    assert (percentile_us(second["latency_corrected_us"], 50)
            > percentile_us(first["latency_corrected_us"], 50) + 300_000)
    raw_first = percentile_us(first["latency_raw_us"], 50)
    raw_second = percentile_us(second["latency_raw_us"], 50)
    assert abs(raw_second - raw_first) < 50_000, (raw_first, raw_second)


# ----- answers and misbehaviour counted by status or error kind ------------------------------


@pytest.mark.parametrize(
    ("path", "on_accept", "status", "errors"),
    [
        ("/status/429", None, "429", None),
        ("/status/503", None, "503", None),
        ("/reset", None, None, {"recv:56"}),  # RST after the request was read
        # RST right after accept: curl sees it while connecting, sending or receiving.
        ("/", "reset", None, {"recv:56", "connect:7", "send:55"}),
        ("/close", None, None, {"recv:52"}),  # closed without a byte of reply
        ("/partial", None, None, {"recv:18"}),  # body shorter than Content-Length
        # Not HTTP at all / a malformed status line: curl says 1 (UNSUPPORTED_PROTOCOL,
        # "Received HTTP/0.9 when not allowed"). A bad reply is a receive error.
        ("/garbage", None, None, {"recv:1"}),
        ("/bad-status", None, None, {"recv:1"}),
    ],
)
def test_misbehaving_server_is_counted_by_status_or_error_kind(
    path: str, on_accept: OnAccept, status: str | None, errors: set[str] | None
) -> None:
    rate, duration_s = 40, 1.0
    with Misbehaving(on_accept=on_accept) as server:
        config = plain_config(server.url(path), rate, duration_s, timeout_s=2.0)
        engine, windows, elapsed_s = run_engine(config)
    totals = books_balance(windows, engine, intended=rate)
    assert elapsed_s < duration_s + 1.0, "no hang: every fault ends its request at once"
    assert totals["sent"] == rate
    if status is not None:
        assert totals["status"] == {status: rate}
        assert totals["failed"] == 0
        return
    assert totals["completed"] == 0
    assert totals["failed"] == rate
    assert "other" not in error_kinds(windows), f"curl gave {totals['error']}: give it a kind"
    assert set(totals["error"]) <= (errors or set()), totals["error"]


@pytest.mark.parametrize("target_kind", ["caddy h1", "caddy h3"])
@pytest.mark.parametrize("code", ["429", "503"])
def test_target_status_answers_are_counted_not_failed(
    target: Target, target_kind: str, code: str
) -> None:
    http = "3" if target_kind.endswith("h3") else "1.1"
    config = target_config(target, http, urls=(target.url(f"/status/{code}"),),
                           schedule=Schedule.constant(50, 1.0))
    engine, windows, _ = run_engine(config)
    totals = books_balance(windows, engine, intended=50)
    assert totals["status"] == {code: 50}
    assert totals["failed"] == 0


@pytest.mark.parametrize("on_accept", [None, "hang"])
def test_a_server_that_never_answers_times_out_at_timeout_s(on_accept: OnAccept) -> None:
    # 10 requests sent from 0.25 s to 0.70 s (none late: the cap is 50) time out from
    # 1.25 s to 1.70 s, away from any window boundary; then the run ends.
    timeout_s = 1.0
    schedule = Schedule((Stage(0.25, 0.0, 0.0), Stage(0.5, 20.0, 20.0)))
    with Misbehaving(on_accept=on_accept) as server:
        config = plain_config(server.url("/hang"), 20, 1.0, schedule=schedule,
                              timeout_s=timeout_s, max_in_flight=50)
        engine, windows, elapsed_s = run_engine(config)
    totals = books_balance(windows, engine, intended=10)
    assert set(totals["error"]) == {"timeout:28"}, totals["error"]
    assert totals["failed"] == totals["sent"] == 10
    # Never before timeout_s: what the engine recorded for each failure (from its intended
    # time, so at least its time from the send; 0.1 % for the histogram's precision). Not
    # sampled from another thread at set instants: that thread may wake late when busy.
    failed = HdrHistogram.decode(totals["latency_failed_us"])
    assert failed.get_min_value() >= timeout_s * 1e6 * 0.999, failed.get_min_value()
    # They time out 50 ms apart, as they were sent, all inside second 1 (1.25 s to 1.70 s;
    # 300 ms of slack for a busy machine on each side).
    assert [w["failed"] for w in windows[:2]] == [0, 10]
    assert elapsed_s < 0.7 + timeout_s + 0.3, elapsed_s
