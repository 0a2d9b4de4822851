"""Fixtures: saved result directories built from contract-shaped windows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rafale.analysis import store
from rafale.analysis.result import Result
from tests.analysis.windows_factory import RunShape, make_run

SECRET_TOKEN = "Bearer s3cr3t-t0ken-value"
SECRET_API_KEY = "k3y-9f8e7d6c5b4a"


def make_meta(run_id: str, http: str = "2", dns: str = "pinned", actors: int = 2) -> dict[str, Any]:
    return {  # the shape cluster.meta.run_meta writes
        "run_id": run_id,
        "http": http,
        "dns": dns,
        "spec": {
            "urls": ["https://127.0.0.1:8443/push"],
            "http": http,
            "dns": dns,
            "rate_per_s": 100 * actors,
            "headers": [["Authorization", SECRET_TOKEN], ["X-Api-Key", SECRET_API_KEY],
                        ["Accept", "application/json"]],
        },
        "cluster": {"actors": actors, "nodes": 1},
        "ended": "completed",
    }


SaveRun = Callable[..., Path]


@pytest.fixture
def save_run(tmp_path: Path) -> SaveRun:
    """save_run(name, shape=RunShape(), http=, dns=) -> saved result directory."""

    def _save(name: str = "run", shape: RunShape | None = None, http: str = "2",
              dns: str = "pinned") -> Path:
        shape = shape or RunShape(run_id=name)
        windows, _ = make_run(shape)
        meta = make_meta(shape.run_id, http, dns, shape.actors)
        return store.save(tmp_path / name, windows, meta)

    return _save


@pytest.fixture
def small_result(save_run: SaveRun) -> Result:
    return store.load(save_run("small", RunShape(actors=3, seconds=5, run_id="small")))
