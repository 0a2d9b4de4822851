"""One definition of every option: each RunSpec field has exactly one `rafale run` option,
their defaults agree, every option reaches its field, and the spec holds parsed values only.
Pure: the command line is parsed by click without running anything."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer.main

from rafale.cluster.cli import app
from rafale.cluster.cli.options import RUN_FIELDS, RUN_ONLY, repeat_outs, spec_options
from rafale.cluster.spec import RunSpec

URL = "https://rafale.test/"
FIELDS = [f.name for f in fields(RunSpec)]


def run_command() -> Any:
    """The click command typer builds for `rafale run` (typer ships its own click)."""
    return typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]


def parsed(args: list[str]) -> RunSpec:
    """The spec `rafale run ARGS` would run, from click's parse of the command line."""
    context = run_command().make_context("run", list(args))
    return RunSpec.parse(**spec_options(context.params))


def test_every_field_has_exactly_one_option_and_every_option_a_field() -> None:
    assert sorted(RUN_FIELDS.values()) == sorted(FIELDS), "a RunSpec field without an option"
    params = [p.name for p in run_command().params]
    assert sorted(params) == sorted([*RUN_FIELDS, *RUN_ONLY]), "an option without a field"


def test_the_options_defaults_are_the_fields_defaults() -> None:
    """`rafale run URL` and `RunSpec.parse(URL)` are the same spec, field by field."""
    from_cli, from_api = parsed([URL]), RunSpec.parse(URL)
    differ = {name: (getattr(from_cli, name), getattr(from_api, name)) for name in FIELDS
              if getattr(from_cli, name) != getattr(from_api, name)}
    assert not differ


def test_units_are_in_the_field_names_and_the_option_metavars() -> None:
    """A field in seconds takes a DURATION ("10s", "500ms"), a rate REQ/S (CONN/S); every option
    explains itself in --help."""
    for param in run_command().params:
        field = RUN_FIELDS.get(str(param.name))
        assert getattr(param, "help", None) or param.name == "urls", param.name
        if field is None or param.param_type_name == "argument":
            continue
        metavar = param.metavar or ""
        if field == "connect_rate_per_s":
            assert metavar == "CONN/S", (param.name, metavar)  # connections, not requests
        elif field.endswith("_per_s"):
            assert metavar == "REQ/S", (param.name, metavar)
        elif field.endswith("_s"):
            assert metavar == "DURATION", (param.name, metavar)


def every_option(tmp_path: Path) -> tuple[list[str], dict[str, Any]]:
    """`rafale run` with every option away from its default, and the field values the
    spec must then hold (all different from the defaults)."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    body = tmp_path / "body.json"
    body.write_bytes(b'{"hello": 1}')
    other = URL + "other?q=1"
    args = [other, "--rate", "250", "--ramp", "2s", "--duration", "30s", "--http", "3",
            "--dns", "pinned", "--resolve", "rafale.test:443:127.0.0.2",
            "--nameserver", "127.0.0.53", "--actors", "3", "--reserve-driver-cpu",
            "--max-in-flight", "40", "--in-flight-step", "5", "--max-connections", "8",
            "--streams", "20", "--connect-rate", "300", "--cacert", str(ca), "--insecure",
            "--timeout", "1500ms",
            "--late-after", "5ms", "--stall-after", "80ms", "-H", "X-Test: 1", "-X", "post",
            "-d", f"@{body}",
            "--address", "127.0.0.1:6379", "--out", str(tmp_path / "out"), "--label", "lbl",
            "--show-query", "--keep-answer", "503", "--keep-answer", "429",
            "--threshold", "p99<250ms", "--abort-on-fail", "--lease", "4s", "--gap", "skip",
            "--aggregation", "tree",
            "--metrics", "0.0.0.0:9464", "--metrics-allow-remote",
            "--otlp", "http://127.0.0.1:4318"]
    expected = {"urls": (other,), "rate_per_s": 250.0, "ramp_s": 2.0, "duration_s": 30.0,
                "http": "3", "dns": "pinned", "nameserver": "127.0.0.53", "actors": 3,
                "reserve_driver_cpu": True, "max_in_flight": 40, "in_flight_step": 5,
                "max_connections": 8, "streams_per_connection": 20, "connect_rate_per_s": 300.0,
                "cacert": str(ca),
                "insecure": True, "timeout_s": 1.5, "late_after_s": 0.005, "stall_after_s": 0.08,
                "headers": (("X-Test", "1"),), "method": "POST", "body": b'{"hello": 1}',
                "address": "127.0.0.1:6379", "out": str(tmp_path / "out"), "label": "lbl",
                "show_query": True, "keep_answers": (503, 429), "abort_on_fail": True,
                "lease_s": 4.0, "gap": "skip", "aggregation": "tree", "metrics": "0.0.0.0:9464",
                "metrics_allow_remote": True, "otlp": "http://127.0.0.1:4318/v1/metrics"}
    return args, expected


def test_every_option_reaches_its_field(tmp_path: Path) -> None:
    args, expected = every_option(tmp_path)
    spec, default = parsed(args), RunSpec.parse(URL)
    for name, value in expected.items():
        assert getattr(spec, name) == value, name
        assert getattr(default, name) != value, f"{name}: pick a value off the default"
    assert [str(e) for e in spec.resolve] == ["rafale.test:443:127.0.0.2"]
    [threshold] = spec.thresholds
    assert str(threshold).startswith("p99<250ms") and threshold.abort
    # The options a plain URL run cannot take: stages, and the feed's own.
    staged = parsed([URL, "--stages", "5s:100,5s:300"])
    assert staged.stages == ((5.0, 100.0), (5.0, 300.0)) and staged.duration_s == 10.0
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(f'{{"url": "{URL}{i}"}}\n' for i in range(20)))
    once = parsed(["--feed", str(feed), "--feed-format", "jsonl", "--feed-mode", "once",
                   "--rate", "10", "--retry", "2", "--resend-unknown"])
    assert (once.feed.rows, once.feed_format, once.feed_mode) == (20, "jsonl", "once")
    assert (once.retry, once.resend_unknown) == (2, True)
    covered = {*expected, "resolve", "thresholds", "stages", "feed", "feed_format",
               "feed_mode", "retry", "resend_unknown", "only"}
    assert covered == set(FIELDS), "give every field a value here"


def test_repeat_is_not_a_field_but_where_each_run_saves(tmp_path: Path) -> None:
    """--repeat N runs one spec N times: the spec keeps --out, each run saves in DIR/k."""
    context = run_command().make_context("run", [URL, "--repeat", "3", "--out", str(tmp_path)])
    assert context.params["repeat"] == 3
    assert RunSpec.parse(**spec_options(context.params)).out == str(tmp_path)
    assert repeat_outs(3, str(tmp_path)) == [str(tmp_path / k) for k in ("1", "2", "3")]


def test_only_reaches_its_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only needs an outcomes file path"):
        RunSpec.parse(feed=[{"url": URL}], only="failed")
    with pytest.raises(ValueError, match="does not exist|No such file|cannot"):
        parsed(["--feed", str(tmp_path / "none" / "outcomes.parquet"), "--only", "failed"])


@pytest.mark.parametrize(("field", "raw"), [
    ("duration_s", "10s"), ("rate_per_s", 100), ("headers", ["X: 1"]), ("body", "text"),
    ("urls", URL), ("actors", "2"), ("keep_answers", 503), ("timeout_s", 5),
])
def test_the_dataclass_holds_parsed_values_only(field: str, raw: Any) -> None:
    """Raw input goes through RunSpec.parse; handing it to the dataclass is a bug, named."""
    spec = RunSpec.parse(URL)
    values = {name: getattr(spec, name) for name in FIELDS}
    with pytest.raises(TypeError, match=f"RunSpec.{field} = .* RunSpec.parse"):
        RunSpec(**{**values, field: raw})
    assert RunSpec(**values) == spec, "parsed values are accepted as they are"


def test_parse_names_an_unknown_option() -> None:
    with pytest.raises(TypeError, match="unexpected options rate"):
        RunSpec.parse(URL, rate=10)
    with pytest.raises(ValueError, match="keep_answers 'abc' is not an HTTP status"):
        RunSpec.parse(URL, keep_answers=("abc",))
    with pytest.raises(ValueError, match="insecure 'yes' is not a boolean"):
        RunSpec.parse(URL, insecure="yes")


def test_help_groups_every_option_in_one_panel_in_a_readers_order() -> None:
    """Each option of a RunSpec field sits in exactly one of the named panels (target and
    request first, output last); flags show as flags, URL by its name, never `<bool>`."""
    from rafale.cluster.cli.options import PANELS

    command = run_command()
    options = [p for p in command.params if p.param_type_name == "option"]
    assert {p.name: p.rich_help_panel for p in options if p.rich_help_panel not in PANELS} == {}
    order = list(dict.fromkeys(p.rich_help_panel for p in options))
    assert order == list(PANELS), "run()'s parameters follow the panels' order"
    context = command.make_context("run", [URL])
    shown = {p.name: p.display_type_rich(context) for p in command.params}
    assert all(not (t or "").startswith("<") for t in shown.values()), shown
    assert shown["insecure"] is None and shown["rate"] == "REQ/S"


def test_help_text_keeps_its_square_brackets() -> None:
    """Help texts go through rich markup: a threshold's '[tag=api]' must be escaped to show."""
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert "p99[tag=api][10s]<400ms" in shown and "share[address=IP]>=40%" in shown


def test_the_default_http_is_auto_and_fits_both_schemes() -> None:
    """The first command a newcomer types, a plain http:// URL, is accepted as it is."""
    from rafale.cluster.options import planned_connections

    assert parsed(["http://127.0.0.1:8080/"]).http == "auto"
    assert RunSpec.parse(URL).http == "auto"
    # auto may fall back to HTTP/1.1: the open-files check plans one connection a request.
    assert planned_connections("auto", 100, 100, None) == planned_connections("1.1", 100, 100,
                                                                               None) == 100
