"""rafale compare on real runs: two short runs against the embedded target, the second
against its /delay/200 route (200 ms slower), both through the same proxy path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rafale.analysis.verdict import NO_CHANGE, WORSE, compare
from rafale.cluster.cli import main
from rafale.cluster.run import start
from rafale.cluster.target import Target
from rafale.cluster.warm import WarmSenders

pytestmark = pytest.mark.slow


def test_the_delay_route_answers_after_the_delay(target_factory: Callable[..., Target]
                                                 ) -> None:
    import pycurl

    target = target_factory(delay=True)
    timings = {}
    for path in ("/delay/0", "/delay/150", "/delay/x"):
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, target.url(path))
        curl.setopt(pycurl.CAINFO, str(target.ca_file))
        curl.setopt(pycurl.RESOLVE, list(target.resolve))
        curl.setopt(pycurl.WRITEFUNCTION, lambda _data: None)
        started = time.perf_counter()
        curl.perform()
        timings[path] = (curl.getinfo(pycurl.RESPONSE_CODE), time.perf_counter() - started)
        curl.close()
    assert timings["/delay/0"][0] == timings["/delay/150"][0] == 200
    assert timings["/delay/x"][0] == 400  # not a number of ms: says what is valid
    assert timings["/delay/150"][1] >= 0.150 > timings["/delay/0"][1]


def test_a_slower_target_is_worse_and_its_errors_are_unchanged(
        target_factory: Callable[..., Target], local_ray: None, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    target = target_factory(delay=True)
    # 200 ms: more than a busy machine's slow spells move the p99 of a 5 s run (CI saw a
    # 30 ms delay's p99 change, +102 ms with the cand's own spikes, called noise).
    with WarmSenders() as warm:  # one sender for both runs
        for name, path in (("base", "/delay/0"), ("slower", "/delay/200")):
            start(urls=target.url(path), resolve=target.resolve, cacert=str(target.ca_file),
                  http="2", rate_per_s=100, duration_s=5, actors=1, warm=warm,
                  out=str(tmp_path / name)).wait(timeout=60)
    table = compare(tmp_path / "base", tmp_path / "slower", seed=24).set_index("metric")
    for metric in ("latency.p50", "latency.p99"):
        assert table.loc[metric, "verdict"] == WORSE, table.loc[metric].to_dict()
    assert table.loc["latency.p50", "difference"] >= 180_000  # µs: most of the 200 ms
    assert table.loc["error_rate", "verdict"] == NO_CHANGE
    assert table.loc["error_rate", "base"] == table.loc["error_rate", "cand"] == 0.0
    assert table.attrs["differences"] == {}  # same origin, rate and protocol: comparable

    code = main(["compare", str(tmp_path / "base"), str(tmp_path / "slower"), "--seed", "24",
                 "--fail-if", "p50>+100%", "--fail-if", "error_rate>+0.5pp"])
    out = capsys.readouterr().out
    assert code == 99, out
    assert "fail-if p50>+100%: FAILED (worse" in out
    assert "fail-if error_rate>+0.5pp: passed" in out
