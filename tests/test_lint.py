"""ruff and mypy, as `make lint` runs them, inside the test pass: started first (``slow``)
on a worker of the parallel pass, so that their ~20 CPU-s of checking share the cores with
tests that wait on real time instead of running before every test, alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What `make lint` checks (the Makefile's lint target names the same paths).
RUFF_PATHS = ("rafale/__init__.py", "actors", "cluster", "analysis", "tests", "benchmarks",
              "notebooks")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    # Not under the test's coverage: a checker imports none of the product.
    env = {key: value for key, value in os.environ.items() if not key.startswith("COV_")}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)


def test_ruff_finds_nothing() -> None:
    checked = _run(str(BIN / "ruff"), "check", *RUFF_PATHS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_mypy_finds_nothing() -> None:
    checked = _run(str(BIN / "mypy"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
