"""Every number block in the README is rendered from a committed results file."""

from __future__ import annotations

import pytest

from benchmarks import readme, table

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
