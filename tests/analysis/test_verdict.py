"""rafale compare, without traffic: exact resampled percentiles, the bootstrap's weights,
verdicts, spec differences, --fail-if, and the command's exits on bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import rafale
from rafale.actors.contract import (
    LATENCY_CORRECTED,
    counts_view,
    new_histogram,
)
from rafale.analysis import store
from rafale.analysis.latency import mean, percentiles
from rafale.analysis.verdict import (
    BETTER,
    CHANGED,
    NO_CHANGE,
    NOT_COMPARABLE,
    WORSE,
    Options,
    baseline,
    bootstrap,
    charts,
    compare,
    compare_series,
    side_series,
)
from rafale.analysis.verdict.baseline import against_first
from rafale.analysis.verdict.compare import COLUMNS, verdict
from rafale.analysis.verdict.fail_if import ABSOLUTE, RELATIVE, FailIf
from rafale.analysis.verdict.metrics import describe
from rafale.analysis.verdict.series import series_of
from rafale.cluster.cli import main
from rafale.cluster.cli.compare import parse_min_effect, split_sides
from rafale.cluster.threshold_syntax import parse_fail_if
from tests.analysis.windows_factory import RunShape, make_run

URL = "https://rafale.test:8443/"


def save_run(path: Path, seed: int = 7, seconds: int = 12, latency_factor: float = 1.0,
             **spec: Any) -> Path:
    windows, _ = make_run(RunShape(seconds=seconds, seed=seed, requests_per_window=150,
                                   latency_factor=latency_factor))
    meta = {"spec": {"urls": [URL], "rate_per_s": 300.0, "http": "2", "dns": "system",
                     "method": "GET", **spec},
            "http": spec.get("http", "2"), "dns": spec.get("dns", "system"),
            "schedule": {"duration_s": float(seconds)}}
    return store.save(path, windows, meta)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {"a": save_run(root / "a", seed=1), "b": save_run(root / "b", seed=2),
            "a_again": save_run(root / "a_again", seed=1),
            "fast": save_run(root / "fast", seed=3, rate_per_s=600.0),
            "h3": save_run(root / "h3", seed=4, http="3"),
            "elsewhere": save_run(root / "elsewhere", seed=5,
                                  urls=["https://other.test:8443/"])}


# ----- exact percentiles of resamples ------------------------------------------------------


def test_resampled_percentiles_are_exact_merges_of_the_seconds(runs: dict[str, Path]) -> None:
    """A resample's percentiles and mean equal those hdrh-equivalent functions give for the
    histogram made by adding each second's histogram as many times as it was drawn."""
    side = series_of(store.load(runs["a"]))
    hist = side.hists[LATENCY_CORRECTED]
    weights = bootstrap.block_weights(np.random.default_rng(3), side.seconds, 6)
    pcts = (50.0, 90.0, 99.0, 99.9, 100.0)
    found = bootstrap.percentiles(weights, hist.counts, hist.buckets, pcts)
    found_means = bootstrap.means(weights, hist.counts, hist.buckets)
    for row, drawn in enumerate(weights):
        merged = new_histogram()
        counts_view(merged)[hist.buckets] = (drawn @ hist.counts).astype(np.uint64)
        merged.total_count = int((drawn @ hist.counts).sum())
        expected = percentiles(merged, pcts[:-1])
        assert list(found[row, :-1]) == [expected[p] for p in pcts[:-1]]
        last = int(hist.buckets[np.flatnonzero(drawn @ hist.counts)[-1]])
        assert found[row, -1] == merged.get_highest_equivalent_value(
            merged.get_value_from_index(last))  # the max: the last bucket drawn
        assert found_means[row] == pytest.approx(mean(merged), rel=1e-12)


def test_the_observed_values_are_the_run_summary(runs: dict[str, Path]) -> None:
    result = store.load(runs["a"])
    table = compare(runs["a"], runs["b"], seed=1, resamples=100).set_index("metric")
    summary = result.summary["latency_corrected_us"]
    for label in ("p50", "p90", "p99", "p99.9", "max"):
        assert table.loc[f"latency.{label}", "base"] == summary[label]
    assert table.loc["latency.mean", "base"] == pytest.approx(summary["mean"])


# ----- the bootstrap's weights -------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1, 2, 7, 30, 301])
def test_block_weights_draw_as_many_seconds_as_the_run(seconds: int) -> None:
    weights = bootstrap.block_weights(np.random.default_rng(seconds), seconds, 50)
    assert weights.shape == (50, seconds)
    assert (weights.sum(axis=1) == seconds).all()


def test_a_block_as_long_as_the_run_takes_every_second_once() -> None:
    weights = bootstrap.block_weights(np.random.default_rng(0), 9, 20, block_s=9)
    assert (weights == 1).all()


def test_hierarchical_weights_draw_whole_runs_then_blocks() -> None:
    runs = (10, 20, 30)
    weights = bootstrap.hierarchical_weights(np.random.default_rng(5), runs, 400)
    edges = np.cumsum((0, *runs))
    per_run = np.stack([weights[:, a:b].sum(axis=1)
                        for a, b in zip(edges[:-1], edges[1:], strict=True)], 1)
    drawn = per_run / np.array(runs)
    assert (drawn == np.round(drawn)).all()  # each run drawn a whole number of times
    assert (drawn.sum(axis=1) == len(runs)).all()
    assert (drawn == 0).any() and (drawn >= 2).any()  # with replacement


# ----- verdicts ----------------------------------------------------------------------------

LOWER = describe("latency.p99")
HIGHER = describe("rate")
NEITHER = describe("share[address=127.0.0.2]")


@pytest.mark.parametrize(("metric", "base", "cand", "low", "high", "expected"), [
    (LOWER, 100.0, 120.0, 5.0, 30.0, WORSE),
    (LOWER, 100.0, 80.0, -30.0, -5.0, BETTER),
    (LOWER, 100.0, 120.0, -1.0, 30.0, NO_CHANGE),  # the interval holds 0
    (LOWER, 100.0, 104.0, 1.0, 6.0, NO_CHANGE),  # significant, under the 5 % minimum
    (HIGHER, 100.0, 90.0, -15.0, -5.0, WORSE),
    (HIGHER, 100.0, 110.0, 5.0, 15.0, BETTER),
    (NEITHER, 0.5, 0.3, -0.25, -0.15, CHANGED),
    (describe("error_rate"), 0.0, 0.01, 0.008, 0.012, WORSE),  # from 0: any real change
    (LOWER, float("nan"), 120.0, 5.0, 30.0, NOT_COMPARABLE),
    (describe("latency.max"), 100.0, 300.0, 50.0, 250.0, NOT_COMPARABLE),
])
def test_verdict(metric: Any, base: float, cand: float, low: float, high: float,
                 expected: str) -> None:
    assert verdict(metric, base, cand, low, high, 0.05)[0] == expected


def test_a_run_against_itself_changes_nothing(runs: dict[str, Path]) -> None:
    table = compare(runs["a"], runs["a_again"], seed=2, resamples=200)
    assert set(table["verdict"]) == {NO_CHANGE, NOT_COMPARABLE}
    assert set(table.loc[table["verdict"] == NOT_COMPARABLE, "metric"]) == {
        "latency.max", "latency_raw.max"}
    assert (table["difference"] == 0).all()


def test_a_slower_candidate_is_worse(runs: dict[str, Path]) -> None:
    """The same seconds with every latency bucket moved 30 % up: the latency rows are
    worse, the counts are unchanged."""
    from benchmarks.compare_calibration import shifted

    base = series_of(store.load(runs["a"]))
    table = compare_series(base, shifted(base, 1.3, 0.0), Options(seed=4, resamples=300))
    rows = table.set_index("metric")["verdict"]
    for metric in ("latency.p50", "latency.p90", "latency.p99", "latency.mean",
                   "latency_raw.p50", "latency.p50[tag=t0]"):
        assert rows[metric] == WORSE, metric
    assert rows["rate"] == rows["error_rate"] == NO_CHANGE


def test_the_seed_makes_the_intervals_repeat(runs: dict[str, Path]) -> None:
    one = compare(runs["a"], runs["b"], seed=11, resamples=100)
    two = compare(runs["a"], runs["b"], seed=11, resamples=100)
    pd.testing.assert_frame_equal(one, two)
    drawn = compare(runs["a"], runs["b"], resamples=100)
    assert isinstance(drawn.attrs["seed"], int)  # recorded when drawn


def test_one_run_a_side_says_the_interval_is_within_run_only(runs: dict[str, Path]) -> None:
    one = compare(runs["a"], runs["b"], seed=1, resamples=100)
    assert "within-run noise only" in one.attrs["interval"]
    three = compare([runs["a"], runs["b"], runs["a_again"]],
                    [runs["b"], runs["a"], runs["a_again"]], seed=1, resamples=100)
    assert "between-run" in three.attrs["interval"]


def test_a_different_rate_is_not_comparable_and_says_why(runs: dict[str, Path]) -> None:
    table = compare(runs["a"], runs["fast"], seed=1, resamples=100).set_index("metric")
    assert table.loc["latency.p99", "verdict"] == NOT_COMPARABLE
    assert table.loc["latency.p99", "reason"] == "rate differs (300.0/s vs 600.0/s)"
    assert table.attrs["differences"]["rate"] == ["300.0/s", "600.0/s"]


def test_another_protocol_compares_latency_not_the_version_share(runs: dict[str, Path]
                                                                  ) -> None:
    table = compare(runs["a"], runs["h3"], seed=1, resamples=100).set_index("metric")
    assert table.loc["latency.p50", "verdict"] != NOT_COMPARABLE
    assert table.loc["share[version=2]", "verdict"] == NOT_COMPARABLE
    assert "http differs (2 vs 3)" in table.loc["share[version=2]", "reason"]


def test_runs_of_different_targets_need_allow_different(runs: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="runs of different targets: target differs "
                       r"\(https://rafale.test:8443 vs https://other.test:8443\).*"
                       "--allow-different"):
        compare(runs["a"], runs["elsewhere"])
    table = compare(runs["a"], runs["elsewhere"], allow_different=True, resamples=100)
    assert table.attrs["differences"]["target"]


def test_several_candidates_get_a_block_each(runs: dict[str, Path]) -> None:
    table = compare(runs["a"], runs["b"], runs["a_again"], seed=1, resamples=100)
    assert list(table["candidate"].unique()) == [str(runs["b"]), str(runs["a_again"])]


@pytest.mark.parametrize(("options", "message"), [
    ({"min_effect": -0.1}, "min_effect -0.1"),
    ({"confidence": 1.0}, "confidence 1.0"),
    ({"resamples": 10}, "resamples 10"),
])
def test_bad_options_name_the_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Options(**options)


def test_the_public_api_has_compare() -> None:
    assert rafale.compare is compare


# ----- a series of runs (rafale run --repeat N) --------------------------------------------


def series(directory: Path, seeds: tuple[int, ...], **spec: Any) -> list[Path]:
    """A --repeat directory: one run per seed in DIR/1 .. DIR/N, listed in repeat.json."""
    runs = [save_run(directory / str(i), seed=seed, **spec)
            for i, seed in enumerate(seeds, 1)]
    store.write_repeat(directory, runs)
    return runs


def test_a_repeat_directory_lists_its_runs_relative_to_itself(tmp_path: Path) -> None:
    runs = series(tmp_path / "before", (1, 2))
    listing = json.loads((tmp_path / "before" / store.REPEAT_FILE).read_text())
    assert listing == {"runs": ["1", "2"]}
    assert store.repeated_runs(tmp_path / "before") == runs
    assert store.repeated_runs(runs[0]) is None  # one run, not a series
    (tmp_path / "before").rename(tmp_path / "moved")
    assert store.repeated_runs(tmp_path / "moved") == [tmp_path / "moved" / "1",
                                                       tmp_path / "moved" / "2"]


def test_a_repeat_directory_stands_for_its_runs(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`rafale compare BEFORE AFTER` with two series of three runs: the same table as
    the runs given one by one, with the hierarchical interval (runs, then seconds)."""
    before = series(tmp_path / "before", (1, 2, 3))
    after = series(tmp_path / "after", (4, 5, 6))
    by_directory = compare(tmp_path / "before", str(tmp_path / "after"), seed=8,
                           resamples=100)
    pd.testing.assert_frame_equal(by_directory, compare(before, after, seed=8, resamples=100))
    assert by_directory.attrs["base"] == [str(r) for r in before]
    assert "between-run" in by_directory.attrs["interval"]
    code = main(["compare", str(tmp_path / "before"), str(tmp_path / "after"), "--resamples",
                 "100"])
    assert code == 0 and "between-run and within-run noise" in capsys.readouterr().out


@pytest.mark.parametrize("listing", ['{"runs": "1"}', '{"runs": [1, 2]}', "[]", "{"])
def test_a_repeat_file_that_lists_no_runs_exits_2(tmp_path: Path, runs: dict[str, Path],
                                                  listing: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / store.REPEAT_FILE).write_text(listing)
    assert main(["compare", str(tmp_path), str(runs["a"])]) == 2
    assert f"{tmp_path / store.REPEAT_FILE} does not list runs" in capsys.readouterr().err


# ----- a matrix's baseline: every cell against the first -------------------------------------


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A matrix: HTTP/1.1 first, HTTP/2 (other seconds), h2c at another origin, a cell
    whose latencies are all 40 % higher, and one at another rate."""
    root = tmp_path_factory.mktemp("matrix")
    return [save_run(root / "http1.1", seed=1, http="1.1"),
            save_run(root / "http2", seed=2, http="2"),
            save_run(root / "http2c", seed=3, http="2c", urls=["http://rafale.test:8080/"]),
            save_run(root / "http2-slow", seed=2, http="2", latency_factor=1.4),
            save_run(root / "fast", seed=4, rate_per_s=600.0)]


def test_every_cell_is_compared_against_the_first(cells: list[Path]) -> None:
    table = against_first(cells, seed=4, resamples=200)
    assert table.attrs["base"] == "http1.1" and table.attrs["seed"] == 4
    assert list(table.columns) == ["cell", *COLUMNS]
    names = ["http2", "http2c", "http2-slow", "fast"]
    assert list(zip(table["cell"], table["metric"], strict=True)) == [
        (cell, metric) for cell in names for metric in baseline.METRICS]
    verdicts = table.set_index(["cell", "metric"])["verdict"]
    # Another protocol and another origin are compared (the same rate); the slow cell's
    # latencies are worse, its rate and errors not; another rate is not comparable.
    assert verdicts["http2"].isin([NO_CHANGE, BETTER, WORSE]).all()
    assert verdicts["http2c"].isin([NO_CHANGE, BETTER, WORSE]).all()
    assert verdicts["http2-slow", "latency.p50"] == verdicts["http2-slow", "latency.p99"] == WORSE
    assert verdicts["http2-slow", "rate"] == verdicts["http2-slow", "error_rate"] == NO_CHANGE
    assert (verdicts["fast"] == NOT_COMPARABLE).all()
    assert set(table.loc[table["cell"] == "fast", "reason"]) == {
        "rate differs (300.0/s vs 600.0/s)"}


def test_the_baseline_compares_what_compare_does(cells: list[Path]) -> None:
    """A cell's rows are compare's rows for the same two runs and seed."""
    table = against_first(cells[:2], seed=9, resamples=200).drop(columns="cell")
    full = compare(cells[0], cells[1], seed=9, resamples=200, allow_different=True)
    expected = full[full["metric"].isin(list(baseline.METRICS))].reset_index(drop=True)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), expected, check_like=False)


def test_the_baseline_text_fits_100_columns_and_names_its_first(cells: list[Path]) -> None:
    long = ["http1.1", "http2-" + "x" * 120, "http2c", "http2-slow", "fast"]
    table = against_first(cells, long, seed=4, resamples=200)
    lines = baseline.baseline_lines(table)
    assert lines[0] == "baseline: every cell against the first, http1.1"
    assert all(len(line) <= baseline.WIDTH for line in lines), lines
    assert lines[1].split() == ["cell", "rate", "p50", "p99", "errors"]
    rows = {line.split()[0]: line for line in lines[2:6]}
    [cut] = [label for label in rows if label.startswith("http2-x")]
    assert cut.endswith("…") and len(cut) < len(long[1])  # the label cut to fit
    words = re.findall(r"noise|worse|better|not comparable", rows["http2-slow"])
    assert words == ["noise", "worse", "worse", "noise"], rows["http2-slow"]
    assert rows["fast"].count("not comparable") == 4
    assert any("not comparable: fast rate, p50, p99, errors: rate differs" in line
               for line in lines)
    assert any("seed 4" in line for line in lines)


def test_one_cell_has_no_baseline_to_compare(cells: list[Path]) -> None:
    table = against_first(cells[:1])
    assert table.empty
    assert baseline.baseline_lines(table)[-1] == "  (one cell: nothing to compare against)"


def test_the_baseline_is_written_into_the_matrix_directory(cells: list[Path],
                                                           tmp_path: Path) -> None:
    table = against_first(cells, seed=4, resamples=200)
    md, csv = baseline.write_baseline(tmp_path, table)
    assert (md.name, csv.name) == (baseline.BASELINE_MD, baseline.BASELINE_CSV)
    rows = pd.read_csv(csv)
    assert list(rows.columns) == ["base_cell", "cell", *COLUMNS]
    assert len(rows) == 4 * len(baseline.METRICS) and set(rows["base_cell"]) == {"http1.1"}
    assert list(rows["verdict"]) == list(table["verdict"])
    text = md.read_text()
    assert baseline.baseline_text(table) in text  # what the terminal shows
    assert "not comparable: rate differs (300.0/s vs 600.0/s)" in text  # every row's reason


# ----- --fail-if ---------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "row", "op", "limit", "kind"), [
    ("p99>+10%", "latency.p99", ">", 0.10, RELATIVE),
    ("error_rate>+0.5pp", "error_rate", ">", 0.005, ABSOLUTE),
    ("rate<-2%", "rate", "<", -0.02, RELATIVE),
    ("p99[tag=api] >= +20ms", "latency.p99[tag=api]", ">=", 20_000.0, ABSOLUTE),
    ("latency_raw.p99.9>5%", "latency_raw.p99.9", ">", 0.05, RELATIVE),
    ("share[address=127.0.0.2]<-10pp", "share[address=127.0.0.2]", "<", -0.10, ABSOLUTE),
    ("dropped_rate>+1pp", "dropped_rate", ">", 0.01, ABSOLUTE),
])
def test_fail_if_parses(expression: str, row: str, op: str, limit: float, kind: str) -> None:
    parsed = parse_fail_if(expression)
    assert (parsed.row, parsed.op, parsed.kind) == (row, op, kind)
    assert parsed.limit == pytest.approx(limit)


@pytest.mark.parametrize(("expression", "message", "position"), [
    ("p99>+10", "expected METRIC[SCOPE] OP CHANGE UNIT", 7),
    ("p99>>10%", "expected METRIC[SCOPE] OP CHANGE UNIT", 4),
    ("latency_p99>+10%", "unknown metric 'latency_p99'", 0),
    ("p98>+1%", "latency.p98 is not compared; latency has p50, p90, p99, p99.9", 0),
    ("rate<-2pp", "rate takes %, not pp", 7),
    ("error_rate>+1ms", "error_rate takes % or pp, not ms", 13),
    ("p99>+1pp", "a latency takes %, us, ms or s, not pp", 6),
    ("p99[10s]>+1%", "a comparison has no rolling window", 3),
    ("latency.max>+1%", "gets no verdict", 0),
    ("dropped>+1%", "dropped is not compared", 0),
    ("status_5xx_rate>+1pp", "status_5xx_rate is not compared", 0),
])
def test_a_bad_fail_if_points_at_the_error(expression: str, message: str, position: int
                                           ) -> None:
    with pytest.raises(ValueError) as caught:
        parse_fail_if(expression)
    text = str(caught.value)
    assert text.startswith(f"fail-if {expression!r}:") and message in text
    assert f"at position {position}\n" in text
    assert text.splitlines()[-1] == "  " + " " * position + "^"


def _table(verdict_: str, base: float, cand: float) -> pd.DataFrame:
    return pd.DataFrame([{"metric": "latency.p99", "unit": "us", "base": base, "cand": cand,
                          "difference": cand - base, "verdict": verdict_}])


@pytest.mark.parametrize(("verdict_", "cand", "failed"), [
    (WORSE, 120.0, True),     # +20 % > +10 %, significant
    (WORSE, 108.0, False),    # significant, under the limit
    (NO_CHANGE, 150.0, False),  # past the limit, but noise
    (BETTER, 80.0, False),
])
def test_fail_if_counts_only_significant_changes(verdict_: str, cand: float, failed: bool
                                                 ) -> None:
    condition = parse_fail_if("p99>+10%")
    assert condition.check(_table(verdict_, 100.0, cand))[0]["failed"] is failed


def test_a_fail_if_on_a_row_the_comparison_lacks_says_so() -> None:
    result = FailIf("p99[tag=x]>+1%", "latency.p99[tag=x]", ">", 0.01).check(
        _table(WORSE, 1.0, 2.0))
    assert result == [{"fail_if": "p99[tag=x]>+1%", "metric": "latency.p99[tag=x]",
                       "candidate": "", "change": pytest.approx(float("nan"), nan_ok=True),
                       "shown": "-", "verdict": "not in the comparison", "failed": False}]


# ----- the command -------------------------------------------------------------------------


@pytest.mark.parametrize(("tokens", "base", "cands"), [
    (["a", "b"], ["a"], [["b"]]),
    (["a", "b", "c"], ["a"], [["b"], ["c"]]),
    (["--base", "a1", "a2", "a3", "--cand", "b1", "b2", "b3"], ["a1", "a2", "a3"],
     [["b1", "b2", "b3"]]),
    (["--base", "a", "--cand", "b", "--cand", "c1", "c2"], ["a"], [["b"], ["c1", "c2"]]),
])
def test_sides(tokens: list[str], base: list[str], cands: list[list[str]]) -> None:
    assert split_sides(tokens) == (base, cands)


@pytest.mark.parametrize(("tokens", "message"), [
    (["a"], "expected BASE CAND"),
    (["a", "--min-efect", "3"], "unknown option '--min-efect'"),
    (["--cand", "b", "--base", "a"], "start with --base"),
    (["--base", "a", "--cand"], "each side needs at least one"),
    (["--base", "a", "--base", "b"], "--base is given once"),
])
def test_bad_sides(tokens: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_sides(tokens)


@pytest.mark.parametrize(("text", "effect"), [("5%", 0.05), ("0.05", 0.05), ("0", 0.0),
                                              ("12.5%", 0.125)])
def test_min_effect(text: str, effect: float) -> None:
    assert parse_min_effect(text) == pytest.approx(effect)


@pytest.mark.parametrize("text", ["5", "-1%", "100%", "five"])
def test_bad_min_effect(text: str) -> None:
    with pytest.raises(ValueError, match=f"--min-effect '{text}'"):
        parse_min_effect(text)


def test_the_command_prints_the_table_and_the_seed(runs: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(runs["a"]), str(runs["b"]), "--seed", "5", "--resamples",
                 "100", "--fail-if", "error_rate>+0.5pp"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "latency.p99" in out and "share[address=127.0.0.2]" in out
    assert "seed 5" in out and "within-run noise only" in out
    assert "fail-if error_rate>+0.5pp: passed (no significant change" in out


def test_a_failed_fail_if_exits_99(runs: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A candidate with 5 % of its requests failed more than the base."""
    slower = save_run(tmp_path / "errors", seed=1)
    windows = pd.read_parquet(slower / store.WINDOWS_FILE)
    windows["failed"] += (windows["completed"] * 0.2).round().astype("int64")
    windows.to_parquet(slower / store.WINDOWS_FILE)
    (slower / store.SUMMARY_FILE).unlink()
    code = main(["compare", str(runs["a"]), str(slower), "--seed", "5", "--resamples", "100",
                 "--fail-if", "error_rate>+0.5pp"])
    out = capsys.readouterr().out
    assert code == 99, out
    assert "fail-if error_rate>+0.5pp: FAILED (worse, change +" in out


@pytest.mark.parametrize(("args", "message"), [
    (["{a}", "{missing}"], "is not a rafale result directory"),
    (["{a}", "{elsewhere}"], "runs of different targets"),
    (["{a}", "{b}", "--fail-if", "p99>+10"], "at position 7"),
    (["{a}", "{b}", "--fail-if", "latency_p99>+10%"], "unknown metric 'latency_p99'"),
    (["{a}", "{b}", "--min-effect", "five"], "--min-effect 'five'"),
    (["{a}"], "expected BASE CAND"),
])
def test_bad_input_exits_2_with_a_message(runs: dict[str, Path], tmp_path: Path,
                                          args: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    paths = {**{k: str(v) for k, v in runs.items()}, "missing": str(tmp_path / "nothing")}
    code = main(["compare", *(a.format(**paths) for a in args)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("rafale: error: ") and message in err


def test_a_directory_that_is_not_a_run_is_named(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a run")
    assert main(["compare", str(tmp_path / "notes"), str(tmp_path / "notes")]) == 2
    assert f"{tmp_path / 'notes'} is not a rafale result directory" in capsys.readouterr().err


def test_the_attrs_are_plain_data(runs: dict[str, Path]) -> None:
    table = compare(runs["a"], runs["b"], seed=3, resamples=100)
    assert json.loads(json.dumps(table.attrs))["seed"] == 3


def test_compare_does_not_import_ray_or_pycurl(runs: dict[str, Path]) -> None:
    """`rafale compare` runs where saved results are read: pandas and numpy only."""
    import subprocess
    import sys

    code = ("import sys; from rafale.cluster.cli import main; "
            "rc = main(['compare', sys.argv[1], sys.argv[2], '--resamples', '100']); "
            "assert 'ray' not in sys.modules and 'pycurl' not in sys.modules, 'imported'; "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(runs["a"]), str(runs["b"])],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "latency.p99" in done.stdout


@pytest.mark.slow
def test_compare_html_is_one_file_that_renders_in_headless_chromium(
        runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--html writes compare.html: the verdicts, the fail-if results and two inline charts
    (over time, the percentile spectrum), nothing fetched; Chromium loads and draws it."""
    import re
    import subprocess

    from matplotlib.image import imread

    from benchmarks.h2load import ensure_tool

    monkeypatch.chdir(tmp_path)
    code = main(["compare", str(runs["a"]), str(runs["b"]), "--seed", "5", "--resamples",
                 "100", "--html", "--fail-if", "error_rate>+0.5pp"])
    assert code == 0 and "wrote compare.html" in capsys.readouterr().out
    page = tmp_path / "compare.html"
    text = page.read_text()
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', text)
    assert len(images) == 2 and all(s.startswith("data:image/png;base64,") for s in images)
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "latency.p99" in text and "error_rate&gt;+0.5pp" in text and "seed 5" in text
    chromium = ensure_tool("chromium", "chromium")
    flags = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "shot.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000",
                           page.as_uri()], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert "Failed to load resource" not in done.stderr
    pixels = imread(shot)
    assert pixels.shape[0] >= 2500 and float(pixels.std()) > 0.05  # not a blank page


def test_the_charts_name_a_series_by_its_directory_and_a_run_by_its_label(
        tmp_path: Path) -> None:
    runs = [save_run(tmp_path / "before" / str(i), seed=i, seconds=4) for i in (1, 2)]
    store.write_repeat(tmp_path / "before", runs)
    after = save_run(tmp_path / "after", seed=3, seconds=4)
    figure = charts.over_time(side_series(tmp_path / "before"), [side_series(after)])
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["base: before (2 runs)", "cand: after"]
    meta = json.loads((after / store.META_FILE).read_text())
    store.write_json(after / store.META_FILE, {**meta, "label": "h3-pinned"})
    figure = charts.spectrum(side_series(tmp_path / "before"), [side_series(after)])
    assert "cand: h3-pinned" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
