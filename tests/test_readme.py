"""Every number block in the README is rendered from a committed results file."""

from __future__ import annotations

import pytest

from benchmarks import readme

TEXT = readme.README.read_text(encoding="utf-8")


def test_the_readme_has_results_blocks() -> None:
    assert set(readme.blocks(TEXT)) >= {"driver_scale", "contention", "feeds", "webpush", "demo"}


@pytest.mark.parametrize("name", sorted(readme.blocks(TEXT)))
def test_block_equals_its_results_file(name: str) -> None:
    assert readme.blocks(TEXT)[name] == readme.render(name), (
        f"README block {name!r} differs from docs/results/{name}.json: "
        "run `python -m benchmarks.readme`")
