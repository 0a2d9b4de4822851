"""The driver's side of a stalled sender (issue 28): the tolerance as an option, the
summary's ``sender`` part and its printed lines, the thresholds and the progress line."""

from __future__ import annotations

import pytest

from rafale.cluster.spec import RunSpec

URL = "https://x.test/"


@pytest.mark.parametrize(("given", "seconds"), [("80ms", 0.08), ("1s", 1.0), (0.2, 0.2)])
def test_stall_after_reaches_every_engine(given: object, seconds: float) -> None:
    spec = RunSpec.parse(URL, rate_per_s=10, stall_after_s=given)
    assert spec.stall_after_s == seconds
    assert spec.engine_config(0, 1, ()).stall_after_s == seconds
    assert RunSpec.parse(URL).stall_after_s == 0.05  # the default


@pytest.mark.parametrize("bad", ["0ms", "-1s", "soon", "nan", float("inf"), None])
def test_a_bad_stall_after_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="stall_after"):
        RunSpec.parse(URL, rate_per_s=10, stall_after_s=bad)
