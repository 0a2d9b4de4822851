"""Feeds through the driver on a real local Ray and through the CLI: every row exactly once
over several actors, an actor killed mid-feed (at-most-once, or at-least-once with
resend_unknown), re-sending only the failed rows, and bad feeds refused before any traffic.
Checked in the embedded target's access log."""

from __future__ import annotations

import collections
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from rafale.analysis import store
from rafale.cluster import cli, placement
from rafale.cluster.run import start
from rafale.cluster.target import Target
from tests.helpers import rafale
from tests.rayhead import RayHead

pytestmark = pytest.mark.slow


def echo_feed(target: Target, path: Path, rows: int, prefix: str,
              changes: dict[int, dict[str, Any]] | None = None) -> Path:
    with path.open("w") as out:
        for i in range(rows):
            row = {"url": target.url(f"{prefix}/{i}"), "tag": f"t{i % 3}"}
            row.update((changes or {}).get(i, {}))
            out.write(json.dumps(row) + "\n")
    return path


def paths_logged(target: Target, since: int, prefix: str, at_least: int,
                 timeout_s: float = 10.0) -> collections.Counter[str]:
    """The paths under ``prefix`` logged after the mark ``since``, once ``at_least`` are."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = collections.Counter(e["request"]["uri"] for e in target.access_log_entries(since)
                                   if e["request"]["uri"].startswith(prefix + "/"))
        if sum(seen.values()) >= at_least or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def options(target: Target, **changes: Any) -> dict[str, Any]:
    return {"resolve": target.resolve, "cacert": str(target.ca_file), "http": "2",
            "max_in_flight": 100, "timeout_s": 5, **changes}


def test_once_over_two_actors_sends_every_row_exactly_once(
        target: Target, local_ray: None, tmp_path: Path) -> None:
    # 1,500 req/s over two actors: a rate a busy machine (the parallel test pass) still
    # holds, so that every row is sent within the run (rows left at its end are unsent).
    prefix, rows = f"/echo/{uuid.uuid4().hex[:8]}", 6_000
    feed = echo_feed(target, tmp_path / "feed.jsonl", rows, prefix)
    out = tmp_path / "out"
    mark = target.access_log_mark()
    run = start(**options(target, feed=str(feed), feed_mode="once", rate_per_s=1500,
                          actors=2, out=str(out)))
    assert run.spec.run_s == pytest.approx(4.0, abs=0.01)
    result = run.wait(timeout=60)
    seen = paths_logged(target, mark, prefix, rows)
    assert len(seen) == rows and set(seen.values()) == {1}
    outcomes = store.load_outcomes(out)
    assert len(outcomes) == rows and list(outcomes["row"]) == list(range(rows))
    assert set(outcomes["outcome"]) == {"ok"} and set(outcomes["actor"]) == {0, 1}
    assert list(outcomes["tag"][:3]) == ["t0", "t1", "t2"]
    feed_summary = result.summary["feed"]
    assert feed_summary["outcomes"] == {"ok": rows, "failed": 0, "unknown": 0, "unsent": 0}
    assert feed_summary["delivery"] == "at-most-once"
    tags = result.summary["tags"]
    assert {t: v["finished"] for t, v in tags.items()} == {
        "t0": 2000, "t1": 2000, "t2": 2000}
    # Each tag's latency histogram holds exactly its completed requests.
    assert {t: v["latency_corrected_us"]["count"] for t, v in tags.items()} == {
        "t0": 2000, "t1": 2000, "t2": 2000}
    # The saved summary says the same, the text summary shows the feed and the tags, and
    # the charts include the per-tag one.
    from rafale.analysis.report import render, summary_text

    saved = store.load(out)
    assert saved.summary["tags"] == tags
    text = summary_text(saved)
    assert "6,000 rows, once" in text and "tag t0" in text and "ok 6,000" in text
    assert "tags.png" in [p.name for p in render(out)]
    assert (out / "tags.png").stat().st_size > 10_000


@pytest.mark.parametrize("resend", [False, True])
def test_killed_actor_mid_feed_never_sends_a_row_twice_unless_asked(
        target: Target, local_ray: None, tmp_path: Path, resend: bool) -> None:
    prefix, rows = f"/echo/{uuid.uuid4().hex[:8]}", 6000
    feed = echo_feed(target, tmp_path / "feed.jsonl", rows, prefix)
    mark = target.access_log_mark()
    run = start(**options(target, feed=str(feed), feed_mode="once", rate_per_s=1500,
                          actors=2, resend_unknown=resend))
    time.sleep(max(0.0, run.start_at_s + 1.2 - time.time()))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the outcomes of actor 1's first second drained
        assert run.outcomes is not None
        if 1 in set(run.outcomes.table().column("actor").to_pylist()):
            break
        time.sleep(0.02)
    os.kill(run.actors[1]["pid"], signal.SIGKILL)  # a crash of its process
    killed_at_s = time.time() - run.start_at_s
    result = run.wait(timeout=60)
    assert result.meta["lost_actors"] == [1]
    [lost] = result.meta["lost"]
    outcomes = result.outcome_frame()
    assert list(outcomes["row"]) == list(range(rows))  # together they cover the feed
    seen = paths_logged(target, mark, prefix, rows - 400, timeout_s=3)
    count = pd.Series([seen.get(f"{prefix}/{i}", 0) for i in range(rows)])
    unknown = outcomes["outcome"] == "unknown"
    ok = outcomes["outcome"] == "ok"
    print(outcomes["outcome"].value_counts().to_dict(), "resent", result.summary["feed"])
    assert outcomes["outcome"].isin(["ok", "unknown"]).all()
    if not resend:
        # The lost actor's rows from the last second it handed over (outcomes go with the
        # window of their second) to the row boundary (RESTRIPE_AHEAD_S after the loss was
        # noticed): it may have sent them.
        window_s = lost["at_s"] - int(killed_at_s) + 0.5 + 0.1
        assert 0 < unknown.sum() <= 1500 / 2 * window_s, (unknown.sum(), lost)
        assert (count[~unknown] == 1).all()  # every row with an answer: exactly once
        assert (count[unknown] <= 1).all()  # never resent
        assert result.summary["feed"]["delivery"] == "at-most-once"
    else:
        assert ok.all() and unknown.sum() == 0
        assert (count >= 1).all()  # at least once
        assert result.summary["feed"]["resent_unknown"] > 0
        assert result.summary["feed"]["delivery"].startswith("at-least-once")
    # Rows after the loss went to the survivor: the lost actor's stripe did not stop.
    assert (outcomes.loc[outcomes["row"] >= rows - 1000, "actor"] == 0).all()


def test_only_failed_resends_just_those_rows_from_the_cli(target: Target, tmp_path: Path,
                                                          ray_head: RayHead) -> None:
    prefix, rows = f"/echo/{uuid.uuid4().hex[:8]}", 300
    failing = {i: {"url": target.url(f"/status/500?row={prefix[6:]}-{i}")} for i in (4, 150)}
    feed = echo_feed(target, tmp_path / "feed.jsonl", rows, prefix, failing)
    common = ["--rate", "300", "--actors", "1", "--cacert", str(target.ca_file), "--quiet",
              "--no-charts"] + [a for r in target.resolve for a in ("--resolve", r)]
    first = rafale("run", "--feed", str(feed), "--feed-mode", "once", "--out",
                   str(tmp_path / "first"), *common, head=ray_head)
    assert first.returncode == 0, first.stderr
    assert "row outcomes" in first.stdout and "failed 2" in first.stdout, first.stdout
    outcomes = store.load_outcomes(tmp_path / "first")
    assert sorted(outcomes.loc[outcomes["outcome"] == "failed", "row"]) == [4, 150]

    before, mark = target.count_access_log(), target.access_log_mark()
    again = rafale("run", "--feed", str(tmp_path / "first" / "outcomes.parquet"), "--only",
                   "failed", "--feed-mode", "once", "--out", str(tmp_path / "again"), *common,
                   head=ray_head)
    assert again.returncode == 0, again.stderr
    target.wait_access_log(before + 2)
    new = list(target.access_log_entries(mark))
    assert sorted(e["request"]["uri"] for e in new) == sorted(
        f"/status/500?row={prefix[6:]}-{i}" for i in (4, 150))
    resent = store.load_outcomes(tmp_path / "again")
    assert list(resent["row"]) == [4, 150]  # rows of the original feed
    assert json.loads((tmp_path / "again" / "meta.json").read_text())["spec"]["feed"][
        "selection"].startswith("only failed of ")


def bad_feeds(tmp_path: Path, target: Target) -> dict[str, tuple[list[str], str]]:
    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    url = target.url("/echo/bad")
    return {
        "missing file": (["--feed", str(tmp_path / "nope.jsonl")], "does not exist"),
        "not parseable": (["--feed", write("bad.jsonl", "{not json\n")], "cannot be parsed"),
        "no url column": (["--feed", write("nourl.csv", "path\n/x\n")], "no 'url' column"),
        "empty": (["--feed", write("empty.csv", "url\n")], "is empty"),
        "wrong scheme": (["--feed", write("http.jsonl", '{"url": "http://a.test/"}\n'),
                          "--http", "2"], "row 0 column 'url'"),
        "header without colon": (["--feed", write(
            "hdr.jsonl", json.dumps({"url": url, "headers": ["NoColon"]}) + "\n")],
            "row 0 column 'headers'"),
        "header line break": (["--feed", write(
            "crlf.jsonl", json.dumps({"url": url, "headers": ["A: b\r\nX: y"]}) + "\n")],
            "line break"),
        "two bodies": (["--feed", write(
            "two.jsonl", json.dumps({"url": url, "body": "x", "body_file": "f"}) + "\n")],
            "more than one body"),
        "unreadable body file": (["--feed", write(
            "bf.jsonl", json.dumps({"url": url, "body_file": "missing.bin"}) + "\n")],
            "column 'body_file'"),
        "too many tags": (["--feed", write("tags.jsonl", "".join(
            json.dumps({"url": url, "tag": f"t{i}"}) + "\n" for i in range(33)))],
            "at most 32"),
        "once with short duration": (["--feed", write(
            "ok.jsonl", "".join(json.dumps({"url": url}) + "\n" for i in range(500))),
            "--feed-mode", "once", "--duration", "1s"], "fewer than the feed's 500 rows"),
        "only on a feed": (["--feed", write("ok2.jsonl", json.dumps({"url": url}) + "\n"),
                            "--only", "failed"], "outcomes file"),
    }


def test_bad_feeds_exit_2_with_the_reason_and_send_nothing(
        target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process (the CLI's exit code and its message; tests/cluster/test_cli.py runs bad
    input in a subprocess once): Ray is never started, and the target sees nothing."""
    def no_ray(*_: Any, **__: Any) -> None:
        raise AssertionError("Ray must not start for a bad feed")

    monkeypatch.setattr(placement, "connect", no_ray)
    cases = bad_feeds(tmp_path, target)
    before = target.count_access_log()
    for name, (args, message) in cases.items():
        done = CliRunner().invoke(cli.app, [
            "run", *args, "--rate", "100", "--cacert", str(target.ca_file),
            *[a for r in target.resolve for a in ("--resolve", r)]])
        assert done.exit_code == cli.EXIT_BAD_INPUT, (name, done.output)
        assert message in done.output, (name, done.output)
        assert not isinstance(done.exception, AssertionError), (name, done.exception)
    time.sleep(0.5)
    assert target.count_access_log() == before
