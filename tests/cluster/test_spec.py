"""RunSpec: every bad input is a ValueError naming the value, before Ray or traffic."""

from __future__ import annotations

import math
import resource
import warnings
from pathlib import Path
from typing import Any

import pytest

from rafale.actors.config import ResolveEntry
from rafale.actors.pacing import Schedule
from rafale.cluster import placement
from rafale.cluster import run as run_module
from rafale.cluster.spec import ResourceRiskWarning, RunSpec, parse_duration, parse_stages

URL = "https://rafale.test:8443/"
PLAIN = "http://rafale.test:8080/"
RESOLVE = ("rafale.test:8443:127.0.0.2,127.0.0.3",)


@pytest.fixture
def not_pem(tmp_path: Path) -> str:
    path = tmp_path / "not-a-cert.pem"
    path.write_text("hello, not a certificate\n")
    return str(path)


@pytest.fixture
def a_file(tmp_path: Path) -> str:
    path = tmp_path / "file.txt"
    path.write_text("x")
    return str(path)


SOFT_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

# (case id, options, fragment the message must contain)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no url", {"urls": ()}, "no target URL"),
    ("malformed url port", {"urls": "https://rafale.test:99999/"}, "https://rafale.test:99999/"),
    ("malformed url ipv6", {"urls": "http://[::1/"}, "http://[::1/"),
    ("not a url", {"urls": "rafale.test"}, "'rafale.test'"),
    ("unsupported scheme", {"urls": "ftp://rafale.test/"}, "'ftp'"),
    ("http 2 with http://", {"urls": PLAIN, "http": "2"}, PLAIN),
    ("http 3 with http://", {"urls": PLAIN, "http": "3"}, PLAIN),
    ("2c with https://", {"urls": URL, "http": "2c"}, URL),
    ("unknown http", {"urls": URL, "http": "4"}, "'4'"),
    ("unknown dns", {"urls": URL, "dns": "magic"}, "'magic'"),
    ("rate zero", {"urls": URL, "rate_per_s": 0}, "rate 0"),
    ("rate negative", {"urls": URL, "rate_per_s": -5}, "rate -5"),
    ("rate nan", {"urls": URL, "rate_per_s": math.nan}, "rate nan"),
    ("rate inf", {"urls": URL, "rate_per_s": "inf"}, "rate 'inf'"),
    ("rate not a number", {"urls": URL, "rate_per_s": "abc"}, "rate 'abc'"),
    ("rate bool", {"urls": URL, "rate_per_s": True}, "rate True"),
    ("duration zero", {"urls": URL, "duration_s": 0}, "duration 0"),
    ("duration negative", {"urls": URL, "duration_s": "-3s"}, "'-3s'"),
    ("duration garbage", {"urls": URL, "duration_s": "10 parsecs"}, "'10 parsecs'"),
    ("ramp longer", {"urls": URL, "rate_per_s": 10, "ramp_s": "20s", "duration_s": 10},
     "ramp '20s'"),
    ("ramp without rate", {"urls": URL, "ramp_s": 5}, "ramp 5"),
    ("stages no colon", {"urls": URL, "stages": "10s100"}, "10s100"),
    ("stages bad rate", {"urls": URL, "stages": "10s:abc"}, "10s:abc"),
    ("stages zero duration", {"urls": URL, "stages": "0s:100"}, "0s:100"),
    ("stages negative rate", {"urls": URL, "stages": "10s:-5"}, "10s:-5"),
    ("stages and rate", {"urls": URL, "stages": "10s:100", "rate_per_s": 5}, "rate or stages"),
    ("max_in_flight zero", {"urls": URL, "max_in_flight": 0}, "max_in_flight"),
    ("in_flight_step zero", {"urls": URL, "in_flight_step": 0}, "in_flight_step"),
    ("actors zero", {"urls": URL, "actors": 0}, "actors 0"),
    ("actors word", {"urls": URL, "actors": "many"}, "'many'"),
    ("timeout zero", {"urls": URL, "timeout_s": 0}, "timeout 0"),
    # cases the engine config checked with its own messages before it only asserted
    ("timeout nan", {"urls": URL, "timeout_s": math.nan}, "timeout nan"),
    ("timeout garbage", {"urls": URL, "timeout_s": "soon"}, "timeout 'soon'"),
    ("ramp negative", {"urls": URL, "rate_per_s": 10, "ramp_s": -1}, "ramp -1"),
    ("streams zero", {"urls": URL, "streams_per_connection": 0}, "streams_per_connection 0"),
    ("max_connections zero", {"urls": URL, "max_connections": 0}, "max_connections 0"),
    ("max_in_flight fraction", {"urls": URL, "max_in_flight": 2.5}, "max_in_flight 2.5"),
    ("method empty", {"urls": URL, "method": ""}, "method ''"),
    ("url no host", {"urls": "https:///path"}, "'https:///path'"),
    ("method", {"urls": URL, "method": "G E T"}, "'G E T'"),
    ("header without colon", {"urls": URL, "headers": ["X-Token"]}, "'X-Token'"),
    ("resolve malformed", {"urls": URL, "resolve": "rafale.test"}, "'rafale.test'"),
    ("resolve bad port", {"urls": URL, "resolve": "rafale.test:https:127.0.0.2"},
     "rafale.test:https:127.0.0.2"),
    ("resolve bad address", {"urls": URL, "resolve": "rafale.test:8443:not-an-ip"},
     "'not-an-ip'"),
    ("pinned with no address", {"urls": URL, "dns": "pinned", "resolve": "rafale.test:8443:"},
     "rafale.test:8443"),
    ("cacert missing", {"urls": URL, "cacert": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"),
    ("out is a file", {"urls": URL, "out": "<file>"}, "<file>"),
    ("out under a file", {"urls": URL, "out": "<file>/sub"}, "<file>/sub"),
    ("open files certain", {"urls": URL, "http": "1.1", "max_in_flight": SOFT_NOFILE + 10},
     "ulimit -n"),
    ("lease too short", {"urls": URL, "lease_s": 1.5}, "lease_s 1.5 is too short"),
    ("lease not a duration", {"urls": URL, "lease_s": "soon"}, "lease_s 'soon'"),
    ("unknown gap mode", {"urls": URL, "gap": "fill"}, "gap 'fill' is not a gap mode"),
]


@pytest.mark.parametrize(("options", "fragment"), [(o, f) for _, o, f in BAD],
                         ids=[case for case, _, _ in BAD])
def test_bad_input_names_the_value(options: dict[str, Any], fragment: str, a_file: str) -> None:
    options = {k: (v.replace("<file>", a_file) if isinstance(v, str) else v)
               for k, v in options.items()}
    fragment = fragment.replace("<file>", a_file)
    with pytest.raises(ValueError) as info:
        RunSpec.parse(**options)
    assert fragment in str(info.value)


def test_cacert_not_pem(not_pem: str) -> None:
    with pytest.raises(ValueError, match="not a PEM certificate") as info:
        RunSpec.parse(URL, cacert=not_pem)
    assert not_pem in str(info.value)


def test_open_files_risk_warns() -> None:
    with pytest.warns(ResourceRiskWarning, match="ulimit -n"):
        RunSpec.parse(URL, http="1.1", max_in_flight=SOFT_NOFILE - 10)


@pytest.mark.parametrize(("options", "fragment"), [
    ({"urls": "ftp://x/"}, "ftp"),
    ({"urls": URL, "rate_per_s": -1}, "rate -1"),
    ({"urls": "https://nonexistent.invalid/", "rate_per_s": 10}, "nonexistent.invalid"),
    ({"urls": URL, "bogus_option": 1}, "bogus_option"),
])
def test_start_rejects_bad_input_before_ray(options: dict[str, Any], fragment: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    was_up = ray.is_initialized()

    def no_ray(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray must not start for bad input")

    monkeypatch.setattr(placement, "connect", no_ray)
    monkeypatch.setattr(placement, "place", no_ray)
    with pytest.raises(ValueError) as info:
        run_module.start(**options)
    assert fragment in str(info.value)
    assert ray.is_initialized() == was_up


def test_normalizes_convenient_inputs() -> None:
    spec = RunSpec.parse(URL, http=2.0, headers={"Authorization": "Bearer s3cret"}, body="hi",
                   resolve=RESOLVE, duration_s="2m", ramp_s="500ms", rate_per_s="100",
                   actors="3")
    assert spec.urls == (URL,)
    assert spec.http == "2"
    assert spec.headers == (("Authorization", "Bearer s3cret"),)
    assert spec.body == b"hi"
    assert spec.resolve == (ResolveEntry("rafale.test", 8443, ("127.0.0.2", "127.0.0.3")),)
    assert (spec.duration_s, spec.ramp_s, spec.rate_per_s, spec.actors) == (120, 0.5, 100, 3)


def test_repr_and_redacted_never_show_header_values() -> None:
    spec = RunSpec.parse("https://user:pw@rafale.test/", headers=["Authorization: Bearer s3cret",
                                                            "X-Plain: also-hidden"])
    assert "s3cret" not in repr(spec) and "also-hidden" not in repr(spec)
    redacted = str(spec.redacted())
    assert "s3cret" not in redacted and "also-hidden" not in redacted and "pw@" not in redacted
    assert "Authorization" in redacted


@pytest.mark.parametrize(("text", "seconds"), [
    (10, 10.0), ("10", 10.0), ("10s", 10.0), ("2m", 120.0), ("500ms", 0.5), ("1.5s", 1.5),
    ("1h", 3600.0),
])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_stages_and_schedules() -> None:
    assert parse_stages("10s:100,20s:500") == ((10.0, 100.0), (20.0, 500.0))
    staged = RunSpec.parse(URL, stages="10s:100,20s:500")
    assert staged.duration_s == 30
    schedule = staged.schedule()
    assert isinstance(schedule, Schedule)
    assert schedule.total() == Schedule.from_stages([(10, 100), (20, 500)]).total()
    ramped = RunSpec.parse(URL, rate_per_s=100, ramp_s=2, duration_s=10).schedule()
    assert ramped is not None and ramped.total() == 900  # 100 ramp + 800 constant
    assert RunSpec.parse(URL).schedule() is None  # closed model
    with pytest.raises(ValueError, match="differs from the stages"):
        RunSpec.parse(URL, stages="10s:100", duration_s=20)


def test_engine_config_stripes_and_offsets() -> None:
    spec = RunSpec.parse(URL, rate_per_s=100, dns="pinned", resolve=RESOLVE, max_in_flight=7)
    configs = [spec.engine_config(i, 3, spec.resolve) for i in range(3)]
    assert [(c.actor_index, c.actor_count) for c in configs] == [(0, 3), (1, 3), (2, 3)]
    assert all(c.max_in_flight == 7 and c.dns == "pinned" for c in configs)
    assert configs[0].schedule == spec.schedule()
    assert all(c.connect_rate_per_s is None for c in configs)  # no budget by default
    budget = RunSpec.parse(URL, rate_per_s=100, connect_rate_per_s="400")
    assert budget.connect_rate_per_s == 400.0  # over all actors: each opens its share
    assert {budget.engine_config(i, 4, ()).connect_rate_per_s for i in range(4)} == {100.0}
    for bad in ("0", "-5", "nan", "fast"):
        with pytest.raises(ValueError, match=f"connect_rate '{bad}' must be a finite number "
                                             r"> 0 \(new connections per second\)"):
            RunSpec.parse(URL, connect_rate_per_s=bad)


def test_no_warning_for_defaults() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RunSpec.parse(URL)


@pytest.mark.parametrize(("given", "meant"), [
    ("url", "urls"), ("rate", "rate_per_s"), ("duratoin_s", "duration_s"),
    ("max_inflight", "max_in_flight"), ("threshold", "thresholds"),
])
def test_an_unknown_start_option_names_the_closest_valid_one(given: str, meant: str) -> None:
    from rafale.cluster.run import start

    with pytest.raises(ValueError, match=f"unknown option {given}= \\(did you mean {meant}=\\?\\)"):
        start(**{given: 1})


def test_the_rate_held_after_a_ramp_is_summarized_beside_the_mean() -> None:
    """A 1 s ramp to 1,000 req/s then 3 s held: the mean over the run reads 875, the rate
    held reads 1,000 (the demo's latency table showed 875 for every cell)."""
    import pandas as pd

    from rafale.cluster.rate_summary import target_summary

    spec = RunSpec.parse(URL, rate_per_s=1000, ramp_s=1, duration_s=4)
    per_second = pd.DataFrame({"second": [0, 1, 2, 3], "sent": [500, 1000, 1000, 1000],
                               "completed": [500, 1000, 990, 1010]})
    target = target_summary(spec, {"requests": {"sent": 3500}}, per_second)
    assert target["mean_rate_per_s"] == pytest.approx(875, abs=1)
    assert target["held_per_s"] == 1000.0
    flat = target_summary(RunSpec.parse(URL, rate_per_s=1000, duration_s=4),
                          {"requests": {"sent": 4000}}, per_second)
    assert flat["held_per_s"] is None  # nothing to hold apart from the mean
