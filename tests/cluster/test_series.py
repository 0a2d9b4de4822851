"""rafale.repeat refuses bad input before Ray starts (its real runs: notebooks/compare.py,
run by tests/test_notebooks.py; the CLI's --repeat: tests/cluster/test_cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import rafale


@pytest.mark.parametrize(("times", "out", "message"), [
    (0, "x", "times 0 is not a number of runs; expected 1 or more"),
    (-2, "x", "times -2 is not a number of runs"),
    (True, "x", "times True is not a number of runs"),
    ("3", "x", "times '3' is not a number of runs"),
    (2, "", "times 2 needs out=DIR: the runs are saved in DIR/1 .. DIR/2"),
])
def test_a_bad_count_or_no_out_is_refused_naming_it(times: Any, out: str, message: str,
                                                    tmp_path: Path) -> None:
    with pytest.raises(ValueError) as info:
        rafale.repeat(times, out=out and str(tmp_path / out), urls="https://x.test/",
                      rate_per_s=10, duration_s=1)
    assert message in str(info.value)
    assert not (tmp_path / "x").exists()


def test_a_bad_option_is_refused_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate -1 must be"):
        rafale.repeat(2, out=str(tmp_path / "s"), urls="https://x.test/", rate_per_s=-1,
                      duration_s=1)
    with pytest.raises(ValueError, match="durations_s"):
        rafale.repeat(2, out=str(tmp_path / "s"), urls="https://x.test/", durations_s=1)
    assert not (tmp_path / "s").exists()
