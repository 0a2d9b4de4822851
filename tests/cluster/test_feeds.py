"""Feeds on the driver (cluster/feeds.py) and the feed fields of RunSpec: no Ray, no traffic."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rafale.actors.contract import OUTCOMES_SCHEMA
from rafale.cluster.feeds import MAX_TAGS, load_feed, select_rows
from rafale.cluster.spec import RunSpec

A, B, C = ("https://rafale.test/secret-a", "https://rafale.test:8443/secret-b?q=1",
           "https://rafale.test/secret-c")
ROWS: list[dict[str, Any]] = [
    {"url": A, "method": "get", "headers": ["X-A: 1", "Accept: */*"], "body": None,
     "tag": "read"},
    {"url": B, "method": " post ", "headers": ["Content-Type: application/json"],
     "body": '{"k": 1}', "tag": "write"},
    {"url": C, "method": None, "headers": None, "body": None, "tag": None},
]
NORMALIZED = [
    {"url": A, "method": "GET", "headers": ["X-A: 1", "Accept: */*"], "body": None, "tag": 0},
    {"url": B, "method": "POST", "headers": ["Content-Type: application/json"],
     "body": b'{"k": 1}', "tag": 1},
    {"url": C, "method": None, "headers": None, "body": None, "tag": -1},
]
ORIGINS = ("https://rafale.test/", "https://rafale.test:8443/")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    names = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(names)
        for row in rows:
            cells = [row.get(k) for k in names]
            writer.writerow(["" if v is None else v if isinstance(v, str) else json.dumps(v)
                             for v in cells])
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


Writer = Callable[[Path, list[dict[str, Any]]], Path]
FORMATS: dict[str, Callable[[Path], Any]] = {
    "jsonl": lambda d: write_jsonl(d / "feed.jsonl", ROWS),
    "csv": lambda d: write_csv(d / "feed.csv", ROWS),
    "parquet": lambda d: write_parquet(d / "feed.parquet", ROWS),
    "csv by feed_format": lambda d: write_csv(d / "feed.txt", ROWS),
    "pandas": lambda d: pd.DataFrame(ROWS),
    "pyarrow": lambda d: pa.Table.from_pylist(ROWS),
    "dicts": lambda d: [dict(r) for r in ROWS],
}


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_normalizes_alike(name: str, tmp_path: Path) -> None:
    given = FORMATS[name](tmp_path)
    feed = load_feed(given, http="2", feed_format="csv" if "feed_format" in name else None)
    assert feed.table.to_pylist() == NORMALIZED
    assert feed.tags == ("read", "write")
    assert feed.origins == ORIGINS
    assert feed.rows == 3
    if isinstance(given, Path):
        assert feed.source == str(given.resolve())
    assert feed.tag_names(np.arange(feed.rows)).to_pylist() == ["read", "write", ""]


@pytest.mark.parametrize("write", [write_jsonl, write_csv], ids=["jsonl", "csv"])
def test_bodies_text_base64_and_file(write: Writer, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "feeds"
    folder.mkdir()
    (folder / "payload.bin").write_bytes(b"\x00\xffbin")
    path = write(folder / ("f.jsonl" if write is write_jsonl else "f.csv"), [
        {"url": A, "body": "text"},
        {"url": A, "body_b64": base64.b64encode(b"\x01\x02\x03").decode()},
        {"url": A, "body_file": "payload.bin"},
        {"url": A},
    ])
    monkeypatch.chdir(tmp_path)  # body_file is relative to the feed's folder, not the cwd
    bodies = load_feed(str(path), http="2").table.column("body").to_pylist()
    assert bodies == [b"text", b"\x01\x02\x03", b"\x00\xffbin", None]


HEADERS = [{"X-A": "1", "X-B": "two"}, {"X-C": 3}]
EXPECTED_HEADERS = [["X-A: 1", "X-B: two"], ["X-C: 3"]]


@pytest.mark.parametrize(("write", "headers"), [
    (None, HEADERS),
    (None, EXPECTED_HEADERS),
    (write_jsonl, HEADERS),  # JSON objects with different keys
    (write_jsonl, EXPECTED_HEADERS),
    (write_csv, HEADERS),
    (write_csv, EXPECTED_HEADERS),
    (write_csv, ["X-A: 1", "X-C: 3"]),  # one plain header per cell (not JSON)
], ids=["dict objects", "dict lists", "jsonl objects", "jsonl lists", "csv objects",
        "csv lists", "csv plain"])
def test_headers_as_object_or_list(write: Writer | None, headers: list[Any],
                                   tmp_path: Path) -> None:
    rows = [{"url": A, "headers": h} for h in headers]
    given: Any = rows if write is None else write(tmp_path / f"h.{write.__name__[6:]}", rows)
    got = load_feed(given, http="2").table.column("headers").to_pylist()
    expected = [["X-A: 1"], ["X-C: 3"]] if isinstance(headers[0], str) else EXPECTED_HEADERS
    assert got == expected


Given = list[dict[str, Any]] | tuple[str, str | None]
BAD: list[tuple[str, Given, dict[str, str], list[str]]] = [
    ("missing file", ("nowhere.jsonl", None), {}, ["nowhere.jsonl", "does not exist"]),
    ("garbage jsonl", ("bad.jsonl", "{not json\n"), {}, ["cannot be parsed as jsonl"]),
    ("unknown extension", ("feed.txt", f'{{"url": "{A}"}}\n'), {}, ["'.txt'", "--feed-format"]),
    ("bad feed_format", ("feed.jsonl", f'{{"url": "{A}"}}\n'), {"feed_format": "xml"},
     ["feed_format 'xml'"]),
    ("no url column", [{"uri": A}], {}, ["no 'url' column", "uri"]),
    ("empty list", [], {}, ["is empty"]),
    ("empty csv", ("empty.csv", "url\n"), {}, ["is empty"]),
    ("null url", [{"url": A}, {"url": None}], {}, ["row 1 column 'url'", "empty"]),
    ("http url for h2", [{"url": A}, {"url": "http://rafale.test/x"}], {},
     ["row 1 column 'url'", "https://"]),
    ("https url for h2c", [{"url": "http://rafale.test/x"}, {"url": A}], {"http": "2c"},
     ["row 1 column 'url'", "http://"]),
    ("not a url", [{"url": A}, {"url": A}, {"url": "rafale.test/x"}], {},
     ["row 2 column 'url'", "not a URL"]),
    ("header without colon", [{"url": A, "headers": ["X-A 1"]}], {},
     ["row 0 column 'headers'", "no colon"]),
    ("header line break", [{"url": A}, {"url": A, "headers": ["A: b\r\nX: y"]}], {},
     ["row 1 column 'headers'", "line break"]),
    ("two bodies", [{"url": A, "body": "x"}, {"url": A, "body": "x", "body_b64": "eA=="}], {},
     ["row 1 column 'body and body_b64'", "more than one body"]),
    ("unreadable body_file", [{"url": A, "body_file": "/nonexistent/rafale.bin"}], {},
     ["row 0 column 'body_file'", "cannot be read"]),
    ("bad base64", [{"url": A, "body_b64": "eA=="}, {"url": A, "body_b64": "!!"}], {},
     ["row 1 column 'body_b64'", "not base64"]),
    ("bad method", [{"url": A, "method": "GE T"}], {}, ["row 0 column 'method'", "'GE T'"]),
    ("too many tags", [{"url": A, "tag": f"t{i}"} for i in range(MAX_TAGS + 1)], {},
     ["column 'tag'", f"{MAX_TAGS + 1} distinct tags", f"at most {MAX_TAGS}"]),
    ("tag with separator", [{"url": A, "tag": "ok"}, {"url": A, "tag": "a|b"}], {},
     ["row 1 column 'tag'", "'a|b'"]),
]


@pytest.mark.parametrize(("given", "options", "fragments"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_feeds_are_refused(given: Given, options: dict[str, str], fragments: list[str],
                               tmp_path: Path) -> None:
    feed: Any = given
    if isinstance(given, tuple):
        feed = tmp_path / given[0]
        if given[1] is not None:
            feed.write_text(given[1])
    with pytest.raises(ValueError) as caught:
        load_feed(feed, http=options.get("http", "2"), feed_format=options.get("feed_format"))
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("body", [{"k": 1}, [1, 2]], ids=["object", "list"])
def test_a_body_that_is_not_text_is_refused_with_its_column(body: Any) -> None:
    with pytest.raises(ValueError, match="column 'body'"):
        load_feed([{"url": A, "body": body}], http="2")


# ----- RunSpec ----------------------------------------------------------------------------

MANY = [{"url": f"https://rafale.test/secret-{i}", "tag": f"t{i % 2}"} for i in range(250)]


@pytest.mark.parametrize("options", [
    {"rate_per_s": 100},
    {"rate_per_s": 100, "ramp_s": 1},
    {"rate_per_s": 100, "duration_s": 60},  # shortened to the feed's end
    {"stages": "1s:100,10s:100"},
    {"stages": ((2.0, 50.0), (5.0, 200.0))},
    {"rate_per_s": 33.3},
    {"rate_per_s": 100, "ramp_s": 10},  # the feed ends inside the ramp
])
def test_once_ends_with_the_last_row(options: dict[str, Any]) -> None:
    spec = RunSpec.parse(feed=MANY, feed_mode="once", **options)
    schedule = spec.schedule()
    assert schedule is not None
    assert schedule.count_due(spec.run_s) == len(MANY)
    assert schedule.time_of(len(MANY) - 1) <= spec.run_s < schedule.time_of(len(MANY))


SPEC_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("once without rate", {"feed": MANY, "feed_mode": "once"}, "needs a rate or stages"),
    ("once duration short", {"feed": MANY, "feed_mode": "once", "rate_per_s": 100,
                             "duration_s": 1}, "duration 1 sends 100 requests, fewer than "
     "the feed's 250 rows"),
    ("once stages short", {"feed": MANY, "feed_mode": "once", "stages": "1s:100"},
     "stages sends 50 requests, fewer than the feed's 250 rows"),
    ("urls and feed", {"urls": A, "feed": MANY}, "either URLs or a feed"),
    ("only without feed", {"urls": A, "only": "failed"}, "only ('failed',) needs a feed"),
    ("format without feed", {"urls": A, "feed_format": "csv"}, "feed_format 'csv' needs"),
    ("retry without feed", {"urls": A, "retry": 2}, "retry and resend_unknown need a feed"),
    ("resend without feed", {"urls": A, "resend_unknown": True}, "need a feed"),
    ("once without feed", {"urls": A, "feed_mode": "once", "rate_per_s": 9},
     "feed_mode 'once' needs a feed"),
    ("bad feed_mode", {"feed": MANY, "feed_mode": "twice"}, "feed_mode 'twice' is not one of"),
    ("negative retry", {"feed": MANY, "retry": -1}, "retry -1"),
    ("only on rows", {"feed": MANY, "only": "failed"}, "only needs an outcomes file path"),
    ("feed row bad", {"feed": [{"url": "ftp://rafale.test/"}]}, "row 0 column 'url'"),
]


@pytest.mark.parametrize(("options", "fragment"), [c[1:] for c in SPEC_BAD],
                         ids=[c[0] for c in SPEC_BAD])
def test_spec_refuses_bad_feed_options(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        RunSpec.parse(**options)
    assert fragment in str(caught.value)


def test_spec_targets_are_the_feed_origins_and_redacted_has_no_paths() -> None:
    spec = RunSpec.parse(feed=ROWS, feed_mode="once", rate_per_s=100, retry=2)
    assert spec.urls == ORIGINS == spec.feed.origins
    summary = spec.redacted()["feed"]
    assert {k: summary[k] for k in ("source", "rows", "mode", "tags")} == {
        "source": "<list of dicts>", "rows": 3, "mode": "once", "tags": ["read", "write"]}
    text = json.dumps(spec.redacted())
    assert "secret" not in text and "q=1" not in text
    assert "secret" not in repr(spec)


def test_redacted_feed_origins_hide_passwords() -> None:
    spec = RunSpec.parse(feed=[{"url": "https://user:s3cret@rafale.test/x"}])
    assert "s3cret" not in json.dumps(spec.redacted())


def test_replace_recomputes_the_end_of_a_once_feed() -> None:
    spec = RunSpec.parse(feed=MANY, feed_mode="once", rate_per_s=100)
    faster = spec.replace(rate_per_s=200)
    assert faster.run_s == pytest.approx(spec.run_s / 2)
    schedule = faster.schedule()
    assert schedule is not None and schedule.count_due(faster.run_s) == len(MANY)
    assert faster.feed is spec.feed and faster.urls == spec.urls


# ----- only: rows of a previous run by outcome --------------------------------------------

OUTCOMES = ["ok", "failed", "unknown", "unsent", "failed", "ok"]


def make_run(tmp_path: Path, outcomes: list[str] = OUTCOMES, *, meta: bool = True,
             table: pa.Table | bool = True) -> Path:
    """A run folder: meta.json naming feed.jsonl, and outcomes.parquet (``table``: written
    from ``outcomes``, none when False, else that table)."""
    feed = write_jsonl(tmp_path / "feed.jsonl",
                       [{"url": f"https://rafale.test/r{i}"} for i in range(len(OUTCOMES))])
    run = tmp_path / "run"
    run.mkdir()
    if meta:
        (run / "meta.json").write_text(json.dumps({"spec": {"feed": {"source": str(feed)}}}))
    if table is True:  # written last row first: select_rows sorts
        table = pa.Table.from_pylist([
            {"row": i, "tag": "", "outcome": o, "status": 200 if o == "ok" else 0, "error": "",
             "latency_us": 5, "attempts": 1, "address": "", "actor": 0, "second": 0}
            for i, o in reversed(list(enumerate(outcomes)))], schema=OUTCOMES_SCHEMA)
    if isinstance(table, pa.Table):
        pq.write_table(table, run / "outcomes.parquet")
    return run / "outcomes.parquet"


@pytest.mark.parametrize(("only", "rows"), [
    (("failed", "unknown"), [1, 2, 4]),
    (("unsent",), [3]),
    (("ok",), [0, 5]),
    (("ok", "failed", "unknown", "unsent"), [0, 1, 2, 3, 4, 5]),
])
def test_select_rows_by_outcome(only: tuple[str, ...], rows: list[int], tmp_path: Path) -> None:
    outcomes = make_run(tmp_path)
    feed = select_rows(outcomes, only, http="2")
    assert feed.table.column("url").to_pylist() == [f"https://rafale.test/r{i}" for i in rows]
    assert feed.rows_of_source is not None and feed.rows_of_source.tolist() == rows
    assert f"only {','.join(only)}" in feed.selection
    assert feed.source == str(tmp_path / "feed.jsonl")


def test_spec_only_sends_the_selected_rows(tmp_path: Path) -> None:
    outcomes = make_run(tmp_path)
    given: dict[str, Any] = {"only": "failed, unknown"}  # text, as the CLI gives it
    spec = RunSpec.parse(feed=str(outcomes), feed_mode="once", rate_per_s=10, **given)
    assert spec.only == ("failed", "unknown") and spec.feed.rows == 3
    assert spec.redacted()["feed"]["selection"].startswith("only failed,unknown of ")
    schedule = spec.schedule()
    assert schedule is not None and schedule.count_due(spec.run_s) == 3


SELECT_BAD: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    ("not an outcomes file", {"table": pa.table({"a": [1]})}, ("failed",),
     "only needs an outcomes file"),
    ("unknown outcome", {}, ("failed", "lost"), "only 'lost' is not an outcome"),
    ("no such outcome", {"outcomes": ["ok"] * 6}, ("failed",), "no row of"),
    ("no meta.json", {"meta": False}, ("failed",), "does not name the original feed"),
    ("no outcomes file", {"table": False}, ("failed",), "cannot be read"),
]


@pytest.mark.parametrize(("options", "only", "fragment"), [c[1:] for c in SELECT_BAD],
                         ids=[c[0] for c in SELECT_BAD])
def test_select_rows_refuses(options: dict[str, Any], only: tuple[str, ...], fragment: str,
                             tmp_path: Path) -> None:
    outcomes = make_run(tmp_path, **options)
    with pytest.raises(ValueError) as caught:
        select_rows(outcomes, only, http="2")
    assert fragment in str(caught.value)
