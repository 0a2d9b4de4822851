"""EngineConfig only asserts invariants: user input is checked by RunSpec (tests/cluster/
test_spec.py), and a config built some other way with a broken value is a bug."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rafale.actors.config import EngineConfig, ResolveEntry
from rafale.cluster.spec import RunSpec

URL = "https://rafale.test:8443/"
PINS = (ResolveEntry("rafale.test", 8443, ("127.0.0.2", "127.0.0.3")),)


@pytest.mark.parametrize("overrides", [
    {},
    {"urls": URL},
    {"http": "1.1", "urls": ("http://rafale.test/",), "dns": "pinned",
     "resolve": (ResolveEntry("rafale.test", 80, ("127.0.0.2",)),)},
    {"max_connections": 4, "actor_index": 2, "actor_count": 3, "drain_s": 0.0},
])
def test_good_config_is_built(overrides: dict[str, Any]) -> None:
    config = EngineConfig(**{"urls": (URL,), **overrides})
    assert isinstance(config.urls, tuple) and config.urls


# (field, broken value, other fields it needs)
BROKEN: list[tuple[str, Any, dict[str, Any]]] = [
    ("urls", (), {}),
    ("urls", ("ftp://rafale.test/",), {}),
    ("http", "4", {}),
    ("dns", "magic", {}),
    ("method", "G E T", {}),
    ("timeout_s", math.nan, {}),
    ("connect_timeout_s", 0, {}),
    ("duration_s", -1.0, {}),
    ("max_in_flight", 0, {}),
    ("in_flight_step", 2.5, {}),
    ("streams_per_connection", "100", {}),
    ("max_connections", 0, {}),
    ("actor_count", 0, {"actor_index": 0}),
    ("actor_index", 2, {"actor_count": 2}),
    ("resolve", (), {"dns": "pinned"}),
    ("drain_s", -1.0, {}),
]


@pytest.mark.parametrize(("name", "value", "others"), BROKEN,
                         ids=[f"{name}={value!r}" for name, value, _ in BROKEN])
def test_broken_invariant_names_the_field(name: str, value: Any, others: dict[str, Any]) -> None:
    with pytest.raises(AssertionError) as info:
        EngineConfig(**{"urls": (URL,), **others, name: value})
    assert f"EngineConfig.{name}={value!r}" in str(info.value)
    assert "RunSpec.engine_config" in str(info.value)


@pytest.mark.parametrize("http", ["1.1", "2", "2c", "3"])
def test_configs_from_a_checked_spec_hold_the_invariants(http: str) -> None:
    port = 8080 if http == "2c" else 8443
    options: dict[str, Any] = {  # as text, the way the CLI gives them
        "urls": f"{'http' if http == '2c' else 'https'}://rafale.test:{port}/", "http": http,
        "dns": "pinned", "resolve": f"rafale.test:{port}:127.0.0.2", "rate_per_s": "50",
        "max_connections": "2", "timeout_s": "2s"}
    spec = RunSpec.parse(**options)
    configs = [spec.engine_config(i, 2, spec.resolve) for i in range(2)]
    assert [c.actor_index for c in configs] == [0, 1]
    assert all(c.http == http and c.max_connections == 2 and c.timeout_s == 2.0
               for c in configs)


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, 1),
    ({"dns": "pinned", "resolve": PINS}, 2),  # one pool per pinned address
    ({"urls": (URL, URL + "big", "https://other.test/")}, 2),  # one per host and port
    ({"urls": (URL, URL + "big", "https://other.test/"), "dns": "pinned",
      "resolve": (*PINS, ResolveEntry("other.test", 443, ("127.0.0.4",)))}, 3),
])
def test_destinations_count_the_connection_pools(overrides: dict[str, Any],
                                                 expected: int) -> None:
    assert EngineConfig(**{"urls": (URL,), **overrides}).destinations == expected
