"""Shared fixtures: the embedded target (a real Caddy on loopback)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rafale.cluster.target import Target


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    """One running Target for the whole session, access log on.

    Shared: compare access-log counts as deltas (before/after), and don't kill or
    restart it — use `target_factory` for that.
    """
    with Target(access_log=True) as running:
        yield running


@pytest.fixture
def target_factory() -> Iterator[Callable[..., Target]]:
    """Start private Targets (Target(**kwargs).start()); all are stopped at teardown."""
    started: list[Target] = []

    def make(**kwargs: Any) -> Target:
        started.append(Target(**kwargs))
        return started[-1].start()

    yield make
    for running in started:
        running.stop()
