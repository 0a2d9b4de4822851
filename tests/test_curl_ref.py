"""The C libcurl reference client builds against pycurl's libcurl and runs for real."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.curl_ref import (
    build,
    ensure_compiler_and_headers,
    probe,
    run_curl_ref,
    run_curl_ref_rate,
)
from benchmarks.shapes import shape_named
from rafale.actors.handles import libcurl_version
from rafale.cluster.target import Target


@pytest.fixture(scope="module")
def binary() -> Path:
    try:
        ensure_compiler_and_headers()
    except RuntimeError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no C toolchain for curl_ref: {error}")
        pytest.skip(f"no C toolchain for curl_ref: {error}")
    return build()


@pytest.fixture(scope="module")
def running_target() -> Iterator[Target]:
    with Target() as target:
        yield target


@pytest.mark.slow
def test_binary_runs_pycurls_libcurl_with_http3(binary: Path) -> None:
    report = probe(binary)
    assert report["libcurl_version"] == libcurl_version()
    assert report["http3"] is True


@pytest.mark.slow
@pytest.mark.parametrize(("name", "version"), [("h2-1x100", "2"), ("h1-100", "1.1"),
                                               ("h3-1x100", "3")])
def test_reference_client_measures_main_phase(
    binary: Path, running_target: Target, name: str, version: str
) -> None:
    m = run_curl_ref(shape_named(name), running_target, warmup_s=0.5, duration_s=1,
                     binary=binary)
    assert m.client == "libcurl-c"
    assert m.shape == name
    assert m.succeeded > 0, m.extra
    assert m.failed == 0, m.extra
    assert m.cpu_s > 0
    assert 0.99 < m.duration_s < 1.1
    assert m.extra["version"] == {version: m.succeeded}
    assert m.extra["libcurl_version"] == libcurl_version()


@pytest.mark.slow
def test_open_model_sends_each_request_when_due(binary: Path, running_target: Target) -> None:
    m = run_curl_ref_rate(shape_named("h2-1x100"), running_target, 500, warmup_s=0.5,
                          duration_s=1.5, binary=binary)
    sent = m.extra["sent"]
    assert abs(sent - 500 * m.duration_s) <= 0.02 * 500 * m.duration_s, m.extra
    assert m.failed == 0, m.extra
    # answers to the last sends may land after the phase; a busy machine delays both
    assert m.succeeded >= 0.9 * sent, m.extra
    # Each send is measured against its own due time: the median is that of a sender that
    # keeps its schedule. The tail is the machine's, not the client's: with three test
    # workers on two cores this single thread was descheduled for 27 ms once in CI, so the
    # p99 is only checked to be reported and ordered (a tail bound is a benchmark figure).
    assert 0 <= m.extra["send_lag_us_p50"] < 5_000, m.extra
    assert m.extra["send_lag_us_p99"] >= m.extra["send_lag_us_p50"], m.extra
    assert m.extra["wakeups"] > 0
    assert m.extra["rate_per_s"] == 500
    assert m.extra["version"] == {"2": m.succeeded}
