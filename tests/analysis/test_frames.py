from __future__ import annotations

import math
from pathlib import Path

import pytest

from rafale.analysis import compare, frames, store
from rafale.analysis.log import WindowLog
from rafale.analysis.result import Result
from tests.analysis.conftest import SaveRun, make_meta
from tests.analysis.test_sender import stalled_run
from tests.analysis.windows_factory import RunShape, make_run, make_window


def test_per_second_fills_gaps_with_zeros() -> None:
    windows = [make_window(0, s, [1000, 2000], [900, 1800]) for s in (0, 3)]
    ps = WindowLog.of(windows).per_second()
    assert ps["second"].tolist() == [0, 1, 2, 3]
    assert ps["completed"].tolist() == [2, 0, 0, 2]
    assert math.isnan(ps.loc[1, "p50_corrected_us"]) and ps.loc[0, "p50_corrected_us"] > 0


@pytest.mark.parametrize("dimension", ["status", "error", "address", "version"])
def test_per_key_shares_sum_to_one(small_result: Result, dimension: str) -> None:
    table = frames.per_key(small_result, dimension)
    assert not table.empty
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["count"].is_monotonic_decreasing


def test_per_key_rejects_unknown_dimension(small_result: Result) -> None:
    with pytest.raises(ValueError, match="address"):
        frames.per_key(small_result, "colour")


def test_per_error_splits_kind_and_code(small_result: Result) -> None:
    table = frames.per_error(small_result)
    assert set(table["kind"]) == {"connect", "timeout", "tls"}
    assert set(table["curl_code"]) == {"7", "28", "35"}
    assert sum(frames.error_kinds(small_result).values()) == small_result.summary["requests"][
        "failed"
    ]


@pytest.mark.parametrize(
    ("view", "key", "rows"),
    [(frames.per_actor, "actor", 3), (frames.per_node, "node", 2)],
)
def test_per_actor_and_node(save_run: SaveRun, view: object, key: str, rows: int) -> None:
    result = store.load(save_run("r", RunShape(actors=3, seconds=4, nodes=2)))
    table = view(result)  # type: ignore[operator]
    assert len(table) == rows and table[key].is_unique
    assert int(table["completed"].sum()) == result.summary["requests"]["completed"]
    assert (table["p99_corrected_us"] >= table["p50_corrected_us"]).all()


@pytest.mark.parametrize(
    ("addresses", "dns", "used", "max_share"),
    [(("127.0.0.2",), "system", 1, 1.0), (("127.0.0.2", "127.0.0.3"), "pinned", 2, 0.5)],
)
def test_run_row(save_run: SaveRun, addresses: tuple[str, ...], dns: str, used: int,
                 max_share: float) -> None:
    shape = RunShape(actors=2, seconds=3, addresses=addresses, requests_per_window=40,
                     error_every=0)
    row = frames.run_row(store.load(save_run("r", shape, http="3", dns=dns)))
    assert (row["http"], row["dns"], row["actors"]) == ("3", dns, 2)
    assert row["rate_target_per_s"] == 200.0
    assert row["achieved_per_s"] == pytest.approx(80.0)
    assert row["addresses_used"] == used
    assert row["max_address_share"] == pytest.approx(max_share)
    assert row["error_share"] == 0.0
    assert row["p99_corrected_us"] >= row["p50_corrected_us"] > 0


def test_run_row_counts_the_stalled_seconds(save_run: SaveRun, tmp_path: Path) -> None:
    """The comparison's "stalled s" column: 0 for a healthy run, the sender-bound seconds
    and their stall time for one whose sender stalled."""
    healthy = frames.run_row(store.load(save_run("h", RunShape(actors=2, seconds=3))))
    assert (healthy["stalled_seconds"], healthy["sender_stall_s"]) == (0, 0.0)
    stalled = frames.run_row(store.load(store.save(tmp_path / "s", stalled_run(),
                                                   make_meta("s"))))
    assert stalled["stalled_seconds"] == 4
    assert stalled["sender_stall_s"] == pytest.approx(2.32)
    header, row = compare.to_terminal(compare.compare([store.load(tmp_path / "s")])
                                      ).splitlines()
    assert header.endswith("stalled s") and row.split()[-1] == "4"


def test_run_row_falls_back_to_windows_for_labels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    windows, _ = make_run(RunShape(actors=3, seconds=2, nodes=3))
    row = frames.run_row(store.load(store.save(tmp_path / "r", windows, {})))
    assert (row["actors"], row["nodes"], row["http"]) == (3, 3, "")


@pytest.mark.parametrize(
    ("meta", "actors", "nodes", "rate"),
    [
        ({"spec": {"stages": [[10.0, 100.0], [20.0, 500.0]]}, "cluster": {"actors": 3}},
         3, 1, 500.0),
        ({"spec": {"rate_per_s": 50}, "cluster": {"actors": 8, "node_count": 2}}, 8, 2, 50.0),
        ({"spec": {"rate_per_s": None}, "cluster": {"actors": 5}}, 5, 1, None),
        ({}, 3, 1, None),  # no meta: counted in the windows
    ],
)
def test_run_row_reads_the_meta_the_driver_writes(
        tmp_path, meta: dict, actors: int, nodes: int,  # type: ignore[no-untyped-def]
        rate: float | None) -> None:
    windows, _ = make_run(RunShape(actors=3, seconds=2))
    row = frames.run_row(store.load(store.save(tmp_path / "r", windows, meta)))
    assert (row["actors"], row["nodes"], row["rate_target_per_s"]) == (actors, nodes, rate)


@pytest.mark.parametrize("shape", [RunShape(actors=2, seconds=4), RunShape(actors=5, seconds=9,
                                                                           nodes=2, seed=3)])
@pytest.mark.parametrize("open_s", [0, 2, 5])
def test_log_per_second_equals_the_saved_result_per_second(
        tmp_path, shape: RunShape, open_s: int) -> None:  # type: ignore[no-untyped-def]
    """The live frame (sealed rows and open seconds of the log) equals the frame computed
    from the saved windows, whatever is still open, windows arriving in any order."""
    windows, _ = make_run(shape)
    log = WindowLog(open_s=open_s)
    for window in reversed(windows):  # late windows land in sealed seconds too
        log.append([window])
    live = log.per_second()
    saved = frames.per_second(store.load(store.save(tmp_path / "r", windows, {})))
    assert not saved.pop("partial").any()  # a result's frame marks partial seconds: none here
    assert live.columns.tolist() == saved.columns.tolist()
    assert live.equals(saved), (live.compare(saved) if live.shape == saved.shape else live)
