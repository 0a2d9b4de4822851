from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from rafale.actors.contract import COUNTS_SCHEMA, WINDOWS_SCHEMA, to_batches
from rafale.analysis import frames, store
from rafale.analysis.latency import merge_histograms, percentile_label, percentiles
from rafale.analysis.log import WindowLog
from rafale.analysis.redact import redact_headers
from rafale.analysis.summary import summarize, summarize_frames
from tests.analysis.conftest import SECRET_API_KEY, SECRET_TOKEN, make_meta
from tests.analysis.windows_factory import RunShape, make_run, new_histogram

SHAPES = [
    RunShape(actors=1, seconds=1, requests_per_window=30, seed=1),
    RunShape(actors=3, seconds=5, nodes=2, seed=2),
    RunShape(actors=4, seconds=3, error_every=0, addresses=("127.0.0.2",), seed=3),
    RunShape(actors=2, seconds=4, error_every=3, versions=("1.1", "2", "3"), seed=4),
]
COUNTERS = ["intended", "sent", "completed", "failed", "late", "bytes_in", "new_connections",
            "loops"]


def direct_percentiles(encoded: list[str]) -> dict[float, int]:
    merged = new_histogram()
    for text in encoded:
        merged.add(new_histogram().decode(text))
    return {p: merged.get_value_at_percentile(p) for p in (50.0, 90.0, 99.0, 99.9)}


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_totals_and_percentiles(tmp_path: Path, shape: RunShape) -> None:
    windows, _ = make_run(shape)
    result = store.load(store.save(tmp_path / "r", windows, make_meta("r")))

    per_second = frames.per_second(result)
    for name in COUNTERS:
        assert int(per_second[name].sum()) == sum(w[name] for w in windows)
    requests = result.summary["requests"]
    for name, total in requests.items():
        if name != "in_flight_end":
            assert total == sum(w[name] for w in windows)
    last = {w["actor"]: w["in_flight"] for w in sorted(windows, key=lambda w: w["second"])}
    assert requests["in_flight_end"] == sum(last.values())
    for column, key in (("latency_corrected_us", "latency_corrected_us"),
                        ("latency_raw_us", "latency_raw_us")):
        expected = direct_percentiles([w[column] for w in windows])
        summary = result.summary[key]
        assert {p: summary[percentile_label(p)] for p in expected} == expected
        for second, row in per_second.set_index("second").iterrows():
            want = direct_percentiles([w[column] for w in windows if w["second"] == second])
            kind = key.removeprefix("latency_").removesuffix("_us")
            assert row[f"p50_{kind}_us"] == want[50.0]
            assert row[f"p99_{kind}_us"] == want[99.0]
    status = frames.per_status(result)
    assert int(status["count"].sum()) == sum(w["completed"] for w in windows)


@pytest.mark.parametrize("shape", SHAPES)
def test_merged_percentiles_equal_one_histogram_of_all_samples(shape: RunShape) -> None:
    windows, samples = make_run(shape)
    for column, values in (("latency_corrected_us", samples.corrected_us),
                           ("latency_raw_us", samples.raw_us)):
        single = new_histogram()
        for value in values:
            single.record_value(value)
        pcts = [50.0, 90.0, 99.0, 99.9, 100.0]
        got = percentiles(merge_histograms([w[column] for w in windows]), pcts)
        assert got == {p: single.get_value_at_percentile(p) for p in pcts}


def test_percentiles_accept_bytes_and_empty() -> None:
    hist = new_histogram()
    hist.record_value(1500)
    assert percentiles(merge_histograms([hist.encode()]), [50]) == {50.0: 1500}
    assert percentiles(merge_histograms([]), [50, 99]) == {50.0: None, 99.0: None}


def test_empty_run_saves_and_loads(tmp_path: Path) -> None:
    result = store.load(store.save(tmp_path / "empty", [], {"spec": {}}))
    assert result.windows.empty and result.counts.empty
    assert result.summary["requests"]["sent"] == 0
    assert result.summary["latency_corrected_us"]["p99"] is None
    assert frames.per_second(result).empty
    assert list(result.windows.columns)[:4] == ["run_id", "actor", "node", "second"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "a", "Accept": "b"}, [["Authorization", "<redacted>"], ["Accept", "b"]]),
        ([("X-Api-Key", "k"), ("User-Agent", "u")], [["X-Api-Key", "<redacted>"],
                                                     ["User-Agent", "u"]]),
        (["Cookie: c=1", "Content-Type: text/plain"], ["Cookie: <redacted>",
                                                        "Content-Type: text/plain"]),
        ([["X-Session-Id", "s"], ["x-amz-signature", "g"], ["proxy-authorization", "p"],
          ["X-Auth-Token", "t"], ["DB-Password", "w"], ["Client-Secret", "z"]],
         [["X-Session-Id", "<redacted>"], ["x-amz-signature", "<redacted>"],
          ["proxy-authorization", "<redacted>"], ["X-Auth-Token", "<redacted>"],
          ["DB-Password", "<redacted>"], ["Client-Secret", "<redacted>"]]),
        (None, []),
    ],
)
def test_redact_headers(headers: object, expected: list[object]) -> None:
    assert redact_headers(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [["Authorization", SECRET_TOKEN], ["X-Api-Key", SECRET_API_KEY]],
        {"Authorization": SECRET_TOKEN, "X-Api-Key": SECRET_API_KEY},
        [f"Authorization: {SECRET_TOKEN}", f"X-Api-Key: {SECRET_API_KEY}"],
    ],
)
def test_secrets_never_reach_disk(tmp_path: Path, headers: object) -> None:
    windows, _ = make_run(RunShape(actors=1, seconds=2))
    meta = make_meta("r")
    meta["spec"]["headers"] = headers
    meta["spec"]["urls"] = ["https://user:hunter2pass@127.0.0.1:8443/push"]
    directory = store.save(tmp_path / "r", windows, meta)
    store.save(directory, windows, meta)  # checkpoint again
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"windows.parquet", "counts.parquet", "meta.json",
                                       "summary.json"}
    for secret in (SECRET_TOKEN, SECRET_API_KEY, "s3cr3t", "hunter2pass"):
        for path in files:
            assert secret.encode() not in path.read_bytes(), (secret, path.name)
    assert meta["spec"]["headers"] == headers  # caller's dict untouched
    assert "<redacted>" in (directory / "meta.json").read_text()


@pytest.mark.parametrize(
    ("remove", "corrupt"),
    [
        (["counts.parquet"], None),
        (["summary.json"], None),
        (["meta.json"], None),
        (["summary.json", "counts.parquet", "meta.json"], None),  # only windows.parquet
        (["windows.parquet"], None),  # summary kept as written
        ([], "summary.json"),
        ([], "counts.parquet"),
    ],
)
def test_partial_directory_loads(tmp_path: Path, remove: list[str], corrupt: str | None) -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=3))
    directory = store.save(tmp_path / "r", windows, make_meta("r"))
    full = store.load(directory)
    for name in remove:
        (directory / name).unlink()
    if corrupt:
        (directory / corrupt).write_bytes(b"{truncated")
    result = store.load(directory)
    assert result.summary["requests"]["sent"] == full.summary["requests"]["sent"]
    assert result.summary["latency_raw_us"] == full.summary["latency_raw_us"]
    if "counts.parquet" in remove or corrupt == "counts.parquet":
        assert result.counts.empty
    if "windows.parquet" not in remove:
        assert len(result.windows) == len(windows)
        assert result.meta == ({} if "meta.json" in remove else full.meta)


def test_checkpoints_overwrite_and_stale_summary_is_recomputed(tmp_path: Path) -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=6))
    directory = tmp_path / "r"
    for upto in (2, 4, 6):
        store.save(directory, [w for w in windows if w["second"] < upto], make_meta("r"))
        assert store.load(directory).summary["duration_s"] == upto
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no tmp files left
    stale = json.loads((directory / "summary.json").read_text())
    stale["windows"] = 1
    (directory / "summary.json").write_text(json.dumps(stale))
    result = store.load(directory)
    assert result.summary["recomputed"] is True and result.summary["windows"] == len(windows)


def test_load_missing_directory_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="windows.parquet"):
        store.load(tmp_path / "nothing")


def test_to_batches_defaults_and_types() -> None:
    windows, _ = make_run(RunShape(actors=1, seconds=2))
    for w in windows:
        del w["run_id"], w["node"]
    wb, cb = to_batches(windows)
    assert wb.schema == WINDOWS_SCHEMA and cb.schema == COUNTS_SCHEMA
    wdf, cdf = wb.to_pandas(), cb.to_pandas()
    assert set(wdf["run_id"]) == {""} and set(wdf["node"]) == {""}
    assert pd.api.types.is_integer_dtype(wdf["sent"]) and pd.api.types.is_float_dtype(wdf["cpu_s"])
    assert set(cdf["dimension"]) == {"status", "error", "address", "version", "tag"}
    assert int(cdf.loc[cdf["dimension"] == "status", "count"].sum()) == sum(
        w["completed"] for w in windows)


def checkpointed(directory: Path, windows: list[dict], every: int) -> store.Checkpoints:
    """Append the windows to a log and checkpoint every ``every`` seconds, as the driver does."""
    log = WindowLog(unsaved=True)
    checkpoints = store.Checkpoints(directory)
    seconds = sorted({w["second"] for w in windows})
    for second in seconds:
        log.append([w for w in windows if w["second"] == second])
        if (second + 1) % every == 0:
            checkpoints.append(*log.take_unsaved(), make_meta("r"), summarize(log.total()))
    return checkpoints


def test_checkpoints_append_parts_and_load_up_to_the_last_one(tmp_path: Path) -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=7))
    checkpoints = checkpointed(tmp_path / "r", windows, every=2)
    assert checkpoints.parts == 3  # seconds 0-1, 2-3, 4-5; second 6 not checkpointed yet
    parts = sorted(p.name for p in (tmp_path / "r" / "windows").iterdir())
    assert parts == ["part-000001.parquet", "part-000002.parquet", "part-000003.parquet"]
    assert not (tmp_path / "r" / "windows.parquet").exists()
    result = store.load(tmp_path / "r")
    saved = [w for w in windows if w["second"] < 6]
    assert len(result.windows) == len(saved) and not result.summary.get("recomputed")
    assert result.summary["requests"]["sent"] == sum(w["sent"] for w in saved)
    assert result.meta["run_id"] == "r"


def test_a_checkpoint_rewrites_meta_only_when_it_changed(tmp_path: Path) -> None:
    """An unchanged meta is not serialized again (thousands of actors); a change deep in it
    (a lost actor's entry updated in place, as the drain does) is written."""
    windows, _ = make_run(RunShape(actors=2, seconds=3))
    log = WindowLog.of(windows)
    checkpoints = store.Checkpoints(tmp_path / "r")
    meta = {**make_meta("r"), "lost": [{"actor": 1}]}
    checkpoints.append(*log.tables(), meta, summarize(log.total()))
    (tmp_path / "r" / store.META_FILE).write_text("{}")  # a later write would replace it
    checkpoints.append(*log.take_unsaved(), meta, summarize(log.total()))
    assert (tmp_path / "r" / store.META_FILE).read_text() == "{}"
    meta["lost"][0]["came_back_at_s"] = 4.5
    checkpoints.append(*log.take_unsaved(), meta, summarize(log.total()))
    assert store.load(tmp_path / "r").meta["lost"] == [{"actor": 1, "came_back_at_s": 4.5}]


def test_checkpoint_parts_compact_at_the_end(tmp_path: Path) -> None:
    windows, _ = make_run(RunShape(actors=3, seconds=5))
    checkpoints = checkpointed(tmp_path / "r", windows, every=2)
    log = WindowLog.of(windows)
    checkpoints.finish(*log.tables(), make_meta("r"), summarize(log.total()))
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert names == {"windows.parquet", "counts.parquet", "meta.json", "summary.json"}
    result = store.load(tmp_path / "r")
    assert result.windows[["second", "actor"]].values.tolist() == sorted(
        [w["second"], w["actor"]] for w in windows)


def test_checkpoint_without_summary_is_summarized_on_load(tmp_path: Path) -> None:
    windows, _ = make_run(RunShape(actors=2, seconds=4))
    checkpointed(tmp_path / "r", windows, every=2)
    (tmp_path / "r" / "summary.json").unlink()
    result = store.load(tmp_path / "r")
    assert result.summary["recomputed"] and result.summary["windows"] == len(windows)


@pytest.mark.parametrize(("busy_seconds", "idle_tail", "expected_s"), [(5, 0, 5), (5, 1, 5),
                                                                      (3, 2, 3)])
def test_rates_are_over_the_sending_span(busy_seconds: int, idle_tail: int,
                                         expected_s: int) -> None:
    """Seconds after the last send only let in-flight requests finish: not in the rate."""
    from tests.analysis.windows_factory import make_window

    windows = [make_window(0, s, [1000] * 100, [900] * 100) for s in range(busy_seconds)]
    for s in range(busy_seconds, busy_seconds + idle_tail):
        tail = make_window(0, s, [1000] * 2, [900] * 2)
        tail["intended"] = tail["sent"] = 0
        windows.append(tail)
    summary = summarize(WindowLog.of(windows).total())
    log = WindowLog.of(windows)
    assert summary == summarize_frames(*(t.to_pandas() for t in log.tables()))
    assert summary["duration_s"] == expected_s
    assert summary["span_s"] == busy_seconds + idle_tail
    assert summary["rate_per_s"]["sent"] == 100.0


def test_a_result_saved_before_new_fields_loads_with_them_empty(tmp_path: Path) -> None:
    """Fields added to the contract later (dropped, late_cap, send_lag_us...) load as 0 or
    an empty histogram from results written without them."""
    windows, _ = make_run(RunShape(actors=2, seconds=2))
    directory = store.save(tmp_path / "r", windows, make_meta("r"))
    table = pq.read_table(directory / "windows.parquet")
    old = table.drop_columns(["dropped", "late_cap", "send_lag_us"])
    pq.write_table(old, directory / "windows.parquet")
    (directory / "summary.json").unlink()
    result = store.load(directory)
    assert result.summary["requests"]["dropped"] == 0 and result.summary["recomputed"]
    assert result.summary["requests"]["sent"] == sum(w["sent"] for w in windows)
    assert frames.per_second(result)["late_cap"].sum() == 0


@pytest.mark.parametrize("shape", SHAPES)
def test_per_tag_latency_is_the_same_from_the_log_and_from_saved_files(
        tmp_path: Path, shape: RunShape) -> None:
    windows, _ = make_run(shape)
    saved = store.load(store.save(tmp_path / "r", windows, make_meta("r")))
    recomputed = summarize_frames(saved.windows, saved.counts)
    tags = saved.summary["tags"]
    assert tags and recomputed["tags"] == tags
    # Each tag's histogram is the merge of exactly its actors' corrected latencies.
    for tag, entry in tags.items():
        mine = [w["latency_corrected_us"] for w in windows
                if w["completed"] and f"t{w['actor'] % 2}" == tag]
        assert entry["latency_corrected_us"]["p99"] == direct_percentiles(mine)[99.0]
        assert entry["finished"] == sum(w["completed"] for w in windows
                                        if f"t{w['actor'] % 2}" == tag)
    table = frames.per_tag(saved)
    assert list(table["tag"]) == sorted(tags)
    assert (table["p99_ms"] * 1000 == [tags[t]["latency_corrected_us"]["p99"]
                                        for t in table["tag"]]).all()
