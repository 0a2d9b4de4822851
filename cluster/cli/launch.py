"""``rafale cluster up FILE`` and ``rafale cluster down FILE``: the CLI of cluster/launch.py."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from rafale.cluster import launch
from rafale.cluster.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, fail

app = typer.Typer(
    name="cluster", no_args_is_help=True, add_completion=False,
    help="Start or end a Ray cluster on your own hosts over SSH (`ray up` with the local "
         "provider, a file like cluster/configs/onprem.yaml), every host checked first.")

ClusterPath = Annotated[str, typer.Argument(
    metavar="FILE", help="A Ray cluster file with `provider: type: local` (head_ip, "
                         "worker_ips) and `auth: ssh_user`, e.g. cluster/configs/onprem.yaml.")]
SshTimeout = Annotated[float, typer.Option(
    "--ssh-timeout", metavar="SECONDS", min=1.0,
    help="How long one SSH login to a host may take before it counts as unreachable.")]


def _checked(path: str, ssh_timeout_s: float) -> launch.ClusterFile:
    """The file read and every host reached over SSH, or exit 2 naming what is not."""
    try:
        cluster = launch.read_cluster_file(path)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"checking SSH to {len(cluster.hosts)} hosts as {cluster.ssh_user}...",
               err=True)
    bad = launch.unreachable(cluster, ssh_timeout_s)
    for host, why in bad.items():
        typer.echo(f"rafale: error: cannot reach host {host} over SSH as {cluster.ssh_user}:"
                   f" {why}", err=True)
    if bad:
        raise typer.Exit(EXIT_BAD_INPUT)
    return cluster


@app.command()
def up(path: ClusterPath, ssh_timeout: SshTimeout = 5.0) -> None:
    """Check SSH to every host, write the cluster's Ray token if missing, then `ray up`:
    the head, then every worker (started by the head). Prints the address for `rafale run
    --address`."""
    cluster = _checked(path, ssh_timeout)
    token = launch.write_token(cluster)
    code = subprocess.call(launch.ray_command("up", cluster, ["--no-config-cache"]),
                           env=launch.ray_up_env())
    if code != 0:
        fail(f"`ray up {cluster.path}` failed (exit {code}): its output is above",
             EXIT_FAILED)
    typer.echo(f"cluster {cluster.name}: head {cluster.head_ip}, "
               f"{len(cluster.worker_ips)} workers (started by the head: `ray status` on "
               "it lists them as they join)")
    where = f" (token: {token}, found by Ray there)" if token else ""
    typer.echo(f"run from here: rafale run URL --address {cluster.address}{where}")


@app.command()
def down(path: ClusterPath, ssh_timeout: SshTimeout = 5.0) -> None:
    """End Ray on every host of the file: `ray stop` on each worker, then `ray down` (which
    stops the head; alone, it leaves the workers' Ray running)."""
    cluster = _checked(path, ssh_timeout)
    failed = launch.stop_workers(cluster)
    for host, why in failed.items():
        typer.echo(f"rafale: warning: `ray stop` on worker {host} failed: {why}", err=True)
    code = subprocess.call(launch.ray_command("down", cluster), env=launch.ray_up_env())
    if code != 0:
        fail(f"`ray down {cluster.path}` failed (exit {code}): its output is above",
             EXIT_FAILED)
    if failed:
        fail(f"Ray may still run on {', '.join(failed)}", EXIT_FAILED)
    typer.echo(f"cluster {cluster.name}: Ray stopped on {len(cluster.hosts)} hosts")
