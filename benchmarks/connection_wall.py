"""The connection wall, on the several-hosts testbed (root; tests/testbed.py).

Thousands of connects at once overflow a server's accept queue: the kernel drops the SYNs
(or the handshake's last ACK) it has no room for, and the client waits for a retransmit
(1 s, then 3 s) before it gets its connection. Here the target's namespace has a small
accept backlog (``net.core.somaxconn`` and ``net.ipv4.tcp_max_syn_backlog`` = 64, both
per namespace), and two client hosts open 1,000 HTTP/1.1 TLS connections each (closed
model, ``--max-in-flight 1000``, one actor per client host): once all at once (no connect
rate, the in-flight cap open from the first loop turn), once with ``--connect-rate 400``.
Each request asks for ``/delay/1000`` (the target answers it after 1 s), so every connection
carries one request a second: 2,000 req/s in all, which leaves the senders' loops free to
turn (a request that is answered at once keeps a closed model's loop busy without end, and
then a handshake also waits for that loop: the connect times measure the sender).

The witnesses: the target namespace's own kernel counters (``TcpExt.ListenOverflows``,
``TcpExt.ListenDrops`` in /proc/net/netstat, as ``nstat`` shows them), read before and
after each run, and what rafale measured (``connect_us``: the connect time of every new
connection; ``new_connections`` per second).

``python -m benchmarks.connection_wall [--out docs/results/connection_wall.json]``
(about a minute); the README's "The connection wall" section is rendered from that file.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import driver_scale
from rafale.analysis import store
from tests.testbed import HEAD, TARGET, Testbed, testbed_available

BACKLOG = {"net.core.somaxconn": 64, "net.ipv4.tcp_max_syn_backlog": 64}
CONNECTIONS_PER_CLIENT = 1000
CLIENTS = 2
DURATION_S = 8
PATH = "/delay/1000"  # each request holds its connection 1 s
CONNECT_RATE_PER_S = 400.0
COUNTERS = ("TcpExt.ListenOverflows", "TcpExt.ListenDrops")
DEFAULT_OUT = Path("docs/results/connection_wall.json")


def run_once(bed: Testbed, out: Path, connect_rate_per_s: float | None, *,
             connections: int = CONNECTIONS_PER_CLIENT, duration_s: float = DURATION_S
             ) -> dict[str, Any]:
    """One closed-model run from the head namespace (``connections`` per client host); the
    kernel's counters around it and what rafale measured."""
    info = bed.target_info
    argv = [sys.executable, "-m", "rafale.cluster.cli", "run", bed.target_url(PATH),
            "--address", bed.head_address, "--http", "1.1", "--dns", "pinned",
            *bed.resolve_args(), "--cacert", info.ca_file, "--out", str(out), "--no-charts",
            "--actors", str(CLIENTS), "--duration", f"{duration_s:g}s",
            "--max-in-flight", str(connections), "--in-flight-step", str(connections),
            "--timeout", "10s"]
    if connect_rate_per_s is not None:
        argv += ["--connect-rate", f"{connect_rate_per_s:g}"]
    before = bed.netstat(TARGET)
    done = bed.check_in(HEAD, argv, timeout_s=180)
    after = bed.netstat(TARGET)
    if done.returncode != 0:
        raise RuntimeError(f"rafale run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = store.load(out)
    summary = result.summary
    connect = summary.get("connect_us") or {}
    per_second = result.windows.groupby("second")["new_connections"].sum()
    return {
        "connect_rate_per_s": connect_rate_per_s,
        **{name.split(".")[1]: after.get(name, 0) - before.get(name, 0) for name in COUNTERS},
        "new_connections": int(summary.get("new_connections", 0)),
        "new_connections_per_second": [int(per_second.get(s, 0))
                                       for s in range(int(per_second.index.max()) + 1)],
        "connect_p50_us": connect.get("p50"), "connect_p99_us": connect.get("p99"),
        "connect_max_us": connect.get("max"),
        "completed": int(summary["requests"]["completed"]),
        "failed": int(summary["requests"]["failed"]),
        "errors": summary.get("errors", {}),
        "late_connect": int(summary["requests"].get("late_connect", 0)),
        # seconds in which a sender was stalled (its loop or its CPU: actors/health.py)
        "stalled_seconds": int((result.windows.groupby("second")["stalled"].max() > 0).sum()),
        "seconds": int(per_second.index.max()) + 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.connection_wall",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"({DEFAULT_OUT})")
    args = parser.parse_args(argv)
    reason = testbed_available()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    # 1,000 connections per actor: the driver checks its open-file limit, and the Ray nodes
    # (and so the senders) inherit it from here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    info, began = driver_scale.machine(), time.monotonic()
    runs = []
    with Testbed(target_sysctls=BACKLOG, target_delay=True) as bed, \
            tempfile.TemporaryDirectory(prefix="connection_wall-") as tmp:
        for rate in (None, CONNECT_RATE_PER_S):
            name = "at-once" if rate is None else f"rate-{rate:g}"
            runs.append(run_once(bed, Path(tmp) / name, rate))
            print(json.dumps(runs[-1]), flush=True)
    data = {"machine": info, "backlog": BACKLOG, "clients": CLIENTS, "path": PATH,
            "connections_per_client": CONNECTIONS_PER_CLIENT, "duration_s": DURATION_S,
            "runs": runs, "took_s": round(time.monotonic() - began, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def markdown(data: dict[str, Any]) -> str:
    """The README's table: per run, what the target's kernel counted and what rafale
    measured."""
    backlog = ", ".join(f"`{k}` = {v}" for k, v in data["backlog"].items())
    lines = [f"Target namespace: {backlog}; {data['clients']} client hosts x "
             f"{data['connections_per_client']:,} HTTP/1.1 TLS connections (closed model, "
             f"each request `{data['path']}`: answered after "
             f"{float(data['path'].rsplit('/', 1)[1]) / 1000:g} s), "
             f"{data['duration_s']} s a run.", "",
             "| connects | target kernel: ListenOverflows | ListenDrops | connections opened "
             "| connect p50 | p99 | max | opened per second | failed | sender stalled |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for run in data["runs"]:
        rate = run["connect_rate_per_s"]
        name = "all at once" if rate is None else f"`--connect-rate {rate:g}`"
        per_second = ", ".join(str(n) for n in run["new_connections_per_second"])
        lines.append(f"| {name} | {run['ListenOverflows']:,} | {run['ListenDrops']:,} | "
                     f"{run['new_connections']:,} | {_ms(run['connect_p50_us'])} | "
                     f"{_ms(run['connect_p99_us'])} | {_ms(run['connect_max_us'])} | "
                     f"{per_second} | {_failed(run)} | "
                     f"{run['stalled_seconds']} of {run['seconds']} s |")
    return "\n".join(lines) + "\n"


def _failed(run: dict[str, Any]) -> str:
    kinds = ", ".join(f"{kind} x {count:,}" for kind, count in sorted(run["errors"].items()))
    return f"{run['failed']:,}" + (f" ({kinds})" if kinds else "")


def _ms(value_us: Any) -> str:
    return "-" if value_us is None else f"{float(value_us) / 1000:,.1f} ms"


if __name__ == "__main__":
    sys.exit(main())
