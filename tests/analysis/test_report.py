from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rafale.analysis import compare, report
from rafale.analysis.result import Result
from tests.analysis.conftest import SaveRun
from tests.analysis.windows_factory import RunShape

REPO = Path(__file__).resolve().parents[2]


def test_summary_text_names_everything(small_result: Result) -> None:
    text = report.summary_text(small_result)
    for needle in ("requests", "req/s", "connect", "timeout:28", "200", "127.0.0.2",
                   "HTTP versions", "from intended", "from send", "all finished", "send lag",
                   "p99.9", "HTTP/2", "DNS pinned", "in flight at the end", "dropped"):
        assert needle in text, needle
    # What was asked, then what answered: "auto (negotiated: 2 …)" for a default run.
    assert f"HTTP versions  {small_result.meta['http']} (negotiated: " in text.replace("  ", "  ")


def test_render_single_result(small_result: Result) -> None:
    assert small_result.path is not None
    written = report.render(small_result.path)
    assert [p.name for p in written] == ["throughput.png", "latency.png", "address_share.png",
                                        "tags.png"]  # the result has feed tags
    assert all(p.parent == small_result.path and p.stat().st_size > 0 for p in written)


def test_render_matrix_and_markdown(save_run: SaveRun, tmp_path: Path) -> None:
    for i, dns in enumerate(["system", "pinned"]):
        save_run(f"matrix/r{i}", RunShape(actors=1 + i, seconds=2, run_id=f"r{i}"), dns=dns)
    written = report.render(tmp_path / "matrix")
    assert sorted(p.name for p in written) == ["comparison.csv", "comparison.md",
                                               "comparison.png", "scaling.png"]
    table = (tmp_path / "matrix" / "comparison.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("|")]
    assert len(rows) == 2 + 2 and len({line.count("|") for line in rows}) == 1
    assert len(compare.load_all(tmp_path / "matrix")) == 2
    assert "| r0 " in report.text(tmp_path / "matrix")


@pytest.mark.parametrize(
    ("frame_rows", "expected_lines"), [([], 1), ([{"a": 1, "b": "x|y"}], 3)]
)
def test_to_markdown(frame_rows: list[dict[str, object]], expected_lines: int) -> None:
    import pandas as pd

    text = compare.to_markdown(pd.DataFrame(frame_rows))
    assert len(text.strip().splitlines()) == expected_lines
    if frame_rows:
        assert "x\\|y" in text and "---:" in text


@pytest.mark.real
def test_module_runs_without_ray_or_pycurl(small_result: Result, tmp_path: Path) -> None:
    assert small_result.path is not None
    copy = shutil.copytree(small_result.path, tmp_path / "elsewhere" / "copied")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    cli = subprocess.run([sys.executable, "-m", "rafale.analysis.report", str(copy)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert "p99.9" in cli.stdout and (copy / "latency.png").stat().st_size > 0
    script = textwrap.dedent(f"""
        import sys
        import rafale.analysis.report as report
        paths = report.render({str(copy)!r})
        assert len(paths) == 4, paths  # with tags.png: the result has feed tags
        report.summary_text(report.store.load({str(copy)!r}))
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in ("ray", "pycurl", "actors", "cluster"))
        assert "ray" not in sys.modules and "pycurl" not in sys.modules, bad
        assert not bad, bad
        print("ok")
    """)
    check = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.strip() == "ok", check.stderr


def test_module_usage_errors(tmp_path: Path) -> None:
    assert report.main([]) == 2
    assert report.main([str(tmp_path / "missing")]) == 1


def test_terminal_table_fits_120_columns_and_scaling_needs_several_actor_counts(
        save_run: SaveRun, tmp_path: Path) -> None:
    for i, dns in enumerate(["system", "pinned"]):
        save_run(f"m/a-very-long-run-label-that-would-not-fit-in-a-terminal-{i}",
                 RunShape(actors=2, seconds=2, run_id=f"r{i}"), dns=dns)
    written = report.render(tmp_path / "m")
    assert "scaling.png" not in [p.name for p in written]  # every run has 2 actors
    text = compare.to_terminal(compare.compare(compare.load_all(tmp_path / "m")))
    lines = text.splitlines()
    assert len(lines) == 3 and all(len(line) <= 120 for line in lines)
    assert lines[0].split()[:3] == ["run", "req/s", "p50"]  # no ramp: no "held/s" column
    table = compare.compare(compare.load_all(tmp_path / "m"))
    table.loc[0, "held_per_s"] = 1000.0  # a run that ramped up to 1,000 req/s and held it
    header, first, second = compare.to_terminal(table).splitlines()
    assert header.split()[:3] == ["run", "req/s", "held/s"]
    held_end = header.index("held/s") + len("held/s")  # right-aligned under its header
    assert first[:held_end].split()[-1] == "1,000" and second[:held_end].split()[-1] == "-"
