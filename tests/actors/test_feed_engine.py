"""Feeds in one engine (no Ray): real traffic to the embedded target, checked in its access
log — each row's path, method, headers and body arrive as given; a feed sent once sends
every row exactly once and reports each outcome; retries wait for Retry-After, take slots
of the schedule and are counted; per-tag counts."""

from __future__ import annotations

import collections
import uuid
from datetime import datetime
from typing import Any

import pytest

from rafale.actors.config import ResolveEntry
from rafale.actors.engine import Engine
from rafale.cluster.spec import RunSpec
from rafale.cluster.target import Target
from rafale.cluster.target.config import ECHO_BODY_FIELD, RETRY_AFTER_S
from tests.helpers import total


def run_feed(target: Target, rows: list[dict[str, Any]], **options: Any
             ) -> tuple[Engine, list[dict[str, Any]], dict[str, list[Any]]]:
    """Run one engine over ``rows`` (actor 0 of 1); its windows and drained outcomes."""
    spec = RunSpec.parse(feed=rows, resolve=target.resolve, cacert=str(target.ca_file),
                   max_in_flight=50, timeout_s=3, **options)
    assert spec.feed is not None
    config = spec.engine_config(0, 1, tuple(ResolveEntry.parse(r) for r in target.resolve),
                                spec.feed.plan(spec.feed_mode))
    engine = Engine(config)
    engine.run()
    outcomes = engine.drain_outcomes() or {}
    return engine, engine.drain(), outcomes


def logged(target: Target, since: int, prefix: str, count: int) -> list[dict[str, Any]]:
    """Access-log entries after the mark ``since`` whose path starts with ``prefix``
    (waiting for ``count``)."""
    def mine() -> list[dict[str, Any]]:
        return [e for e in target.access_log_entries(since)
                if e["request"]["uri"].startswith(prefix)]

    target.wait_access_log(0)
    entries = mine()
    for _ in range(100):
        if len(entries) >= count:
            break
        target.wait_access_log(target.count_access_log() + 1, timeout_s=0.05)
        entries = mine()
    return entries


def test_cycle_sends_each_row_as_given(target: Target) -> None:
    prefix = f"/echo/{uuid.uuid4().hex[:8]}"
    rows = [
        {"url": target.url(f"{prefix}/get"), "tag": "plain"},
        {"url": target.url(f"{prefix}/post"), "method": "POST", "body": "hello row 1",
         "headers": {"X-Row": "1", "Content-Type": "text/plain"}, "tag": "push"},
        {"url": target.url(f"{prefix}/put?x=1"), "method": "put",
         "body_b64": "AAEC/w==", "headers": ["X-Row: 2"]},
        {"url": target.url(f"{prefix}/head"), "method": "HEAD"},
    ]
    mark = target.access_log_mark()
    engine, windows, outcomes = run_feed(target, rows, rate_per_s=200, duration_s=1.0,
                                         headers=("X-Run: default",))
    assert outcomes == {}  # cycle mode has no per-row outcomes
    sums = total(windows)
    assert sums["sent"] == sums["completed"] == 200, sums
    entries = logged(target, mark, prefix, 200)
    assert len(entries) == 200
    by_path = collections.defaultdict(list)
    for entry in entries:
        by_path[entry["request"]["uri"]].append(entry)
    # Request k sent row k mod 4: 50 each, in order.
    assert {path: len(v) for path, v in by_path.items()} == {
        f"{prefix}/get": 50, f"{prefix}/post": 50, f"{prefix}/put?x=1": 50,
        f"{prefix}/head": 50}
    get, post = by_path[f"{prefix}/get"][0], by_path[f"{prefix}/post"][0]
    put, head = by_path[f"{prefix}/put?x=1"][0], by_path[f"{prefix}/head"][0]
    assert get["request"]["method"] == "GET" and get["request"]["headers"]["X-Run"] == ["default"]
    assert post["request"]["method"] == "POST" and post.get(ECHO_BODY_FIELD) == "hello row 1"
    assert post["request"]["headers"]["X-Row"] == ["1"] and "X-Run" not in post["request"][
        "headers"]  # a row's own headers replace the run's
    assert put["request"]["method"] == "PUT" and put["request"]["headers"]["X-Row"] == ["2"]
    assert put["request"]["headers"]["Content-Length"] == ["4"]  # the 4 decoded bytes
    assert head["request"]["method"] == "HEAD" and not head.get(ECHO_BODY_FIELD)
    # Per-tag counts: finished requests of tagged rows, by status.
    assert sums["tag"] == {"plain|200": 50, "push|200": 50}


def test_once_sends_every_row_once_and_reports_each(target: Target) -> None:
    prefix = f"/echo/{uuid.uuid4().hex[:8]}"
    rows = [{"url": target.url(f"{prefix}/{i}")} for i in range(300)]
    rows[7]["url"] = target.url("/status/500")
    mark = target.access_log_mark()
    engine, windows, outcomes = run_feed(target, rows, rate_per_s=600, feed_mode="once")
    sums = total(windows)
    assert sums["intended"] == sums["sent"] == 300 and sums["dropped"] == 0, sums
    entries = logged(target, mark, prefix, 299)
    assert collections.Counter(e["request"]["uri"] for e in entries) == {
        f"{prefix}/{i}": 1 for i in range(300) if i != 7}
    assert sorted(outcomes["row"]) == list(range(300))
    by_row = {row: (status, attempts) for row, status, attempts in
              zip(outcomes["row"], outcomes["status"], outcomes["attempts"], strict=True)}
    assert by_row[7] == (500, 1) and by_row[8] == (200, 1)
    assert set(outcomes["actor"]) == {0} and all(a == "127.0.0.2" or a == "127.0.0.3"
                                                 for a in outcomes["address"])
    # The run ended with the feed: about 0.5 s at 600 req/s, not a default duration.
    assert max(w["second"] for w in windows) <= 1


def test_retries_wait_for_retry_after_take_slots_and_are_counted(target: Target) -> None:
    prefix = f"/echo/{uuid.uuid4().hex[:8]}"
    rows = [{"url": target.url(f"{prefix}/{i}")} for i in range(20)]
    for i in (3, 11):
        rows[i]["url"] = target.url("/status/429") + f"?row={prefix[6:]}-{i}"
    mark = target.access_log_mark()
    engine, windows, outcomes = run_feed(target, rows, rate_per_s=40, feed_mode="once",
                                         retry=2)
    sums = total(windows)
    # Two rows, each tried three times (two retries): 20 + 4 sends; every send had a slot.
    assert sums["retries"] == 4 and sums["sent"] == 24 == sums["intended"], sums
    assert sums["dropped"] == 0
    attempts = dict(zip(outcomes["row"], outcomes["attempts"], strict=True))
    statuses = dict(zip(outcomes["row"], outcomes["status"], strict=True))
    assert attempts[3] == attempts[11] == 3 and statuses[3] == statuses[11] == 429
    assert all(attempts[i] == 1 and statuses[i] == 200 for i in range(20) if i not in (3, 11))
    # Each retry went out at least Retry-After after the previous answer.
    for i in (3, 11):
        sent = sorted(datetime.fromtimestamp(e["ts"]).timestamp() for e in logged(
            target, mark, f"/status/429?row={prefix[6:]}-{i}", 3))
        assert len(sent) == 3, sent
        gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
        assert all(gap >= RETRY_AFTER_S - 0.05 for gap in gaps), gaps


def test_connect_errors_retry_with_backoff_then_fail(target: Target) -> None:
    closed = f"https://{target.options.host}:9/closed"  # port 9 (discard): nothing listens
    rows = [{"url": closed}, {"url": target.url("/")}]
    spec_resolve = (*target.resolve, f"{target.options.host}:9:127.0.0.2")
    spec = RunSpec.parse(feed=rows, resolve=spec_resolve, cacert=str(target.ca_file),
                   rate_per_s=20, feed_mode="once", retry=2, timeout_s=2)
    assert spec.feed is not None
    engine = Engine(spec.engine_config(
        0, 1, tuple(ResolveEntry.parse(r) for r in spec_resolve), spec.feed.plan("once")))
    engine.run()
    outcomes = engine.drain_outcomes() or {}
    sums = total(engine.drain())
    row = outcomes["row"].index(0)
    assert outcomes["attempts"][row] == 3 and outcomes["error"][row].startswith("connect:")
    assert sums["failed"] == 3 and sums["retries"] == 2 and sums["completed"] == 1, sums


@pytest.mark.parametrize("dns", ["system", "pinned"])
def test_pinned_dns_spreads_feed_rows_over_every_address(target: Target, dns: str) -> None:
    prefix = f"/echo/{uuid.uuid4().hex[:8]}"
    rows = [{"url": target.url(f"{prefix}/{i}")} for i in range(40)]
    engine, windows, outcomes = run_feed(target, rows, rate_per_s=200, feed_mode="once",
                                         dns=dns)
    addresses = collections.Counter(outcomes["address"])
    assert sum(addresses.values()) == 40
    if dns == "pinned":
        assert addresses == {"127.0.0.2": 20, "127.0.0.3": 20}
    else:
        assert len(addresses) == 1
