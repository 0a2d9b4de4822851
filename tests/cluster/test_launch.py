"""Reading a `ray up` file before `rafale cluster up` (cluster/launch.py): the shipped file
reads, and each bad file is refused naming what is wrong. The SSH check and `ray up`
itself run for real on the namespace testbed (tests/cluster/test_ray_up.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rafale.cluster import launch
from rafale.cluster.cli.main import main

ONPREM = Path(__file__).resolve().parents[2] / "cluster" / "configs" / "onprem.yaml"


def written(tmp_path: Path, **changes: object) -> Path:
    config = yaml.safe_load(ONPREM.read_text())
    config["provider"].update(head_ip="10.1.0.1", worker_ips=["10.1.0.2", "node3.lan"])
    for key, value in changes.items():
        config[key] = value
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_shipped_file_reads_once_its_addresses_are_filled_in(tmp_path: Path) -> None:
    cluster = launch.read_cluster_file(written(tmp_path))
    assert cluster.hosts == ("10.1.0.1", "10.1.0.2", "node3.lan")
    assert cluster.ssh_user == "rafale" and cluster.address == "10.1.0.1:6379"
    assert cluster.token_source == Path("~/.ray/auth_token").expanduser()
    argv = launch.ssh_argv(cluster, "10.1.0.2", "true")
    assert argv[-2:] == ["rafale@10.1.0.2", "true"] and "BatchMode=yes" in argv


@pytest.mark.parametrize(("change", "named"), [
    ({}, "192.0.2.10 is a documentation placeholder"),  # the file as shipped
    ({"provider": {"type": "aws", "region": "x"}}, "provider.type is 'aws'"),
    ({"provider": {"type": "local", "head_ip": "not an address!"}}, "'not an address!'"),
    ({"auth": {}}, "auth.ssh_user must name the SSH user"),
])
def test_a_bad_file_is_refused_naming_the_value(tmp_path: Path, change: dict[str, object],
                                                named: str) -> None:
    path = tmp_path / "bad.yaml"
    if change:
        written(tmp_path)
        config = yaml.safe_load((tmp_path / "cluster.yaml").read_text())
        config.update(change)
        path.write_text(yaml.safe_dump(config))
    else:
        path.write_text(ONPREM.read_text())
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        launch.read_cluster_file(path)


def test_the_cli_exits_2_on_a_bad_file_before_any_ssh(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["cluster", "up", str(missing)]) == 2
    assert f"cannot read the cluster file {missing}" in capsys.readouterr().err
    assert main(["cluster", "up", str(ONPREM)]) == 2
    assert "documentation placeholder" in capsys.readouterr().err


def test_a_missing_token_is_written_for_the_owner_only(tmp_path: Path) -> None:
    token = tmp_path / "home" / ".ray" / "auth_token"
    path = written(tmp_path, file_mounts={launch.TOKEN_MOUNT: str(token)})
    cluster = launch.read_cluster_file(path)
    assert launch.write_token(cluster) == token
    first = token.read_text()
    assert len(first) == 64 and token.stat().st_mode & 0o777 == 0o600
    assert launch.write_token(cluster) == token and token.read_text() == first  # kept


def test_the_file_installs_every_dependency_of_rafale() -> None:
    """The nodes run rafale's code (shipped with each run): they need what it imports."""
    import tomllib

    project = tomllib.loads((ONPREM.parents[2] / "pyproject.toml").read_text())
    wanted = {re.split(r"[<>=\[ ]", dep)[0].lower()
              for dep in project["project"]["dependencies"]}
    commands = " ".join(yaml.safe_load(ONPREM.read_text())["setup_commands"])
    installed = {re.split(r"[<>=\[]", word.strip('"'))[0].lower()
                 for word in commands.split("pip install", 2)[-1].split()}
    assert wanted <= installed, wanted - installed
