"""Shared fixtures (the embedded target, one local Ray, one `ray start` head) and how the
suite is ordered and split.

`make test` runs the suite in three passes: first the ``cores`` tests alone (busy loops
and a sender pinned to the cores, a run-queue measure), while the machine is quiet (each
still waits for quiet cores: what a pass before left running stalled a quiet sender in CI);
then the tests not marked ``serial`` on several workers at once (pytest-xdist; most tests
wait on real time, not on a CPU); then the ``multinode`` tests (several Ray nodes, network
namespaces), a module per worker on three workers: the namespace testbeds' modules and a
ray.cluster_utils.Cluster test, each mostly waiting on leases and real time (the Makefile
runs ruff and mypy beside them). Ray gives a starting node 30 s to register, which a burst
of starts on two busy cores exceeded (CI: "The current node timed out during startup"): the
test processes start their own local Rays and `ray start` heads one at a time (a lock, see
tests/rayhead.py), and the tests that start a Ray in another process (a rafale process
without --address, the demo) are in two xdist groups, ``own_ray_a`` and ``own_ray_b``, so
that at most two such starts overlap. A notebook's kernel joins the session's `ray start`
head.

`make test-fast` runs the tests that need none of Caddy, Ray, a notebook kernel or
a rafale process (not ``real``) and refuses, in that pass, to start Caddy or Ray.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray
from hypothesis import settings

from rafale.cluster import placement
from rafale.cluster.target import Target
from tests.rayhead import RayHead, one_ray_start_at_a_time

# Fixtures that start real components: a test that asks for one is `real`.
REAL_FIXTURES = frozenset({"target", "target_factory", "local_ray", "ray_head"})
FAST_ONLY = "RAFALE_TEST_FAST"  # set by `make test-fast`

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


# The tests on a `ray start` head are ~220 s of a worker's time: in one group they were the
# parallel pass's longest worker. Two groups (two heads, on two workers): the notebooks and
# the README's example (~105 s) and the CLI's runs (~115 s).
RAY_HEAD_A = frozenset({"tests.test_notebooks", "tests.test_readme", "tests.cluster.test_target"})


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark what needs real components (``real``) and what runs apart from the parallel pass
    (``serial``: every ``multinode`` test, a module per worker, and every ``cores`` test);
    the tests on a `ray start` head run on two workers (a head each, RAY_HEAD_A and the
    rest, not one per worker); then put ``slow`` tests first, so that the longest start
    while the others fill the remaining workers (stable: modules stay together)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if REAL_FIXTURES & fixtures:
            item.add_marker(pytest.mark.real)
        if "ray_head" in fixtures:
            half = "a" if item.module.__name__ in RAY_HEAD_A else "b"
            item.add_marker(pytest.mark.xdist_group(f"ray_head_{half}"))
        if item.get_closest_marker("multinode"):
            item.add_marker(pytest.mark.serial)
            item.add_marker(pytest.mark.real)
            item.add_marker(pytest.mark.xdist_group(f"multinode_{item.module.__name__}"))
        if item.get_closest_marker("cores"):
            item.add_marker(pytest.mark.serial)
            item.add_marker(pytest.mark.real)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


QUIET_IDLE_SHARE = 0.8  # of both cores, over QUIET_SAMPLE_S
QUIET_SAMPLE_S = 0.5
QUIET_WAIT_MAX_S = 20.0


def _idle_share(sample_s: float) -> float:
    """The share of all CPUs' time that was idle over ``sample_s`` (/proc/stat)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all
    idle0, all0 = read()
    time.sleep(sample_s)
    idle1, all1 = read()
    return (idle1 - idle0) / max(all1 - all0, 1)


@pytest.fixture(autouse=True)
def _cores_wait_for_quiet(request: pytest.FixtureRequest) -> None:
    """A ``cores`` test starts once the machine is quiet (at most QUIET_WAIT_MAX_S)."""
    if not request.node.get_closest_marker("cores"):
        return
    deadline = time.monotonic() + QUIET_WAIT_MAX_S
    while (share := _idle_share(QUIET_SAMPLE_S)) < QUIET_IDLE_SHARE:
        if time.monotonic() > deadline:
            print(f"the cores stayed busy: {1 - share:.0%} in use")
            return


@pytest.fixture(autouse=True)
def _fast_means_no_real_components(request: pytest.FixtureRequest,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """In `make test-fast`, a test that starts Caddy or Ray without being marked ``real``
    fails, naming the mark it lacks (so the fast pass stays fast and honest)."""
    if not os.environ.get(FAST_ONLY) or request.node.get_closest_marker("real"):
        return

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"{request.node.nodeid} starts Caddy or Ray: mark it "
                           "@pytest.mark.real (make test-fast runs without them)")

    monkeypatch.setattr(Target, "start", refuse)
    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture(scope="session")
def _session_ray() -> Iterator[None]:
    """The local Ray of this test process, started by the first test that needs it (and
    again after a test that shut it down); shut down at the end of the session."""
    yield
    ray.shutdown()


@pytest.fixture
def local_ray(_session_ray: None) -> None:
    """A local Ray on loopback (rafale's own default: `placement.connect(None)`), shared
    by the tests of this process: started once (~4 s), not per module, one test process
    at a time (see tests/rayhead.py)."""
    if not ray.is_initialized():
        with one_ray_start_at_a_time():
            placement.connect(None)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A `ray start --head` (2 CPUs, worker niceness 0) for the CLI tests that check
    wiring or output, on two workers (see pytest_collection_modifyitems): `rafale run
    --address ADDRESS` with ``env`` joins it in ~1 s instead of starting a Ray of its own
    (~4 s). Torn down by pid."""
    with RayHead(num_cpus=2) as head:
        yield head
