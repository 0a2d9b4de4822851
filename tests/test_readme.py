"""Every number block in the README is rendered from a committed results file."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import readme, table
from rafale.analysis import store
from rafale.cluster.target import Target
from tests.helpers import rafale
from tests.rayhead import RayHead

TEXT = readme.README.read_text(encoding="utf-8")


def test_the_readme_has_results_blocks() -> None:
    assert set(readme.blocks(TEXT)) >= {"driver_scale", "contention", "feeds", "webpush", "demo",
                                         "bench"}


def test_the_bench_block_names_a_committed_results_file() -> None:
    """The block says which benchmarks/results/*.json it shows; that file is in the repo
    (a newer local `make bench` run does not change what the README is checked against)."""
    block = readme.blocks(TEXT)["bench"]
    path = readme.results_path("bench", block)
    assert path.parent == table.RESULTS_DIR and path.exists(), path
    assert f"from `benchmarks/results/{path.name}`" in block


@pytest.mark.parametrize("name", sorted(readme.blocks(TEXT)))
def test_block_equals_its_results_file(name: str) -> None:
    block = readme.blocks(TEXT)[name]
    assert block == readme.render(name, block), (
        f"README block {name!r} differs from {readme.results_path(name, block)}: "
        "run `python -m benchmarks.readme`")


@pytest.mark.slow
def test_the_first_example_works_as_written(ray_head: RayHead, tmp_path: Path) -> None:
    """README's first two commands: `rafale target --port P --http-port Q`, then the plain
    http:// run line, as written (joined to the session's Ray head): every request completes
    over HTTP/1.1."""
    lines = [line.split("#")[0].split() for line in TEXT.splitlines()
             if line.startswith(".venv/bin/rafale ")]
    target_args, run_args = lines[0], lines[1]
    assert target_args[1] == "target" and run_args[1:3] == ["run", run_args[2]]
    assert run_args[2].startswith("http://"), "the first run example is a plain http:// URL"
    ports = dict(zip(target_args[2::2], map(int, target_args[3::2]), strict=True))
    with Target(https_port=ports["--port"], http_port=ports["--http-port"]):
        done = rafale(*run_args[1:], "--out", str(tmp_path / "first"), "--no-charts",
                      head=ray_head)
    assert done.returncode == 0, done.stderr
    summary = store.load(tmp_path / "first").summary
    assert summary["requests"]["completed"] == summary["requests"]["sent"] == 300
    assert summary["version"] == {"1.1": 300}
