"""Fixtures of the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray

from rafale.cluster import placement


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray owned by one test module (a Ray another module left is shut down)."""
    ray.shutdown()
    placement.connect(None)
    yield
    ray.shutdown()
