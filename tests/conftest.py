"""Shared fixtures: the embedded target (a real Caddy on loopback)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from rafale.cluster.target import Target

# Property tests never fail CI by chance: under CI (CI=true, as .ci/run runs) hypothesis is
# derandomized, so a run is repeatable; locally it explores new examples each run, and a
# failure prints the seed (--hypothesis-seed=N) and the blob to reproduce it. Every
# counterexample found is kept as a table case next to its property test.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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
        kept = running.dir  # a test that asked for keep_dir looked at it by now
        running.stop()
        if kept is not None:
            shutil.rmtree(kept, ignore_errors=True)
