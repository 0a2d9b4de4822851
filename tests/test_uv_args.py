"""tests/uv_args.py: pip's configured indexes become uv's arguments (the Makefile installs
with uv what pip would install)."""

from __future__ import annotations

from tests.uv_args import uv_args


def test_pips_indexes_links_and_constraints_pass_to_uv_the_env_scope_winning() -> None:
    listed = "\n".join([
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/a/simple file:///opt/b/simple'",
        "global.find-links='/opt/old'",
        ":env:.find-links='/opt/wheels'",
        ":env:.default-timeout='180'",
    ])
    assert uv_args(listed) == [
        "--index-strategy", "unsafe-best-match",
        "--extra-index-url", "file:///opt/a/simple", "--extra-index-url", "file:///opt/b/simple",
        "--find-links", "/opt/wheels", "--constraint", "/etc/xdg/pip/constraints.txt"]


def test_no_configuration_leaves_uv_on_its_defaults_with_pips_choice_of_versions() -> None:
    assert uv_args("") == ["--index-strategy", "unsafe-best-match"]
