"""The embedded target: real Caddy, real libcurl requests, loopback only."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import psutil
import pycurl
import pytest

from rafale.analysis import store
from rafale.cluster.target import BIG_BODY_BYTES, Target, TargetOptions
from rafale.cluster.target import server as target_module
from rafale.cluster.target.config import DEFAULT_ADDRESSES, free_port
from tests.helpers import RAFALE, ROOT, default_sigint, rafale
from tests.rayhead import RayHead

H1, H2, H2C, H3 = "1.1", "2", "2c", "3"
CURL_VERSION = {
    H1: pycurl.CURL_HTTP_VERSION_1_1,
    H2: pycurl.CURL_HTTP_VERSION_2_0,
    H2C: pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
    H3: pycurl.CURL_HTTP_VERSION_3ONLY,
}
SERVER_PROTO = {H1: "HTTP/1.1", H2: "HTTP/2.0", H2C: "HTTP/2.0", H3: "HTTP/3.0"}
# INFO_HTTP_VERSION reports CURL_HTTP_VERSION_1_1 / _2_0 / _3 (2, 3, 30).
NEGOTIATED = {H1: 2, H2: 3, H2C: 3, H3: 30}


@dataclass(frozen=True)
class Reply:
    status: int
    version: int
    body: bytes
    headers: dict[str, str]
    primary_ip: str


def get(
    target: Target,
    path: str = "/",
    http: str = H2,
    cacert: bool = True,
    resolve: tuple[str, ...] | None = None,
) -> Reply:
    """One request with a fresh easy handle; raises pycurl.error on transport failure."""
    body, headers = BytesIO(), {}

    def header(line: bytes) -> None:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()

    curl = pycurl.Curl()
    try:
        curl.setopt(pycurl.URL, target.url(path, tls=http != H2C))
        curl.setopt(pycurl.HTTP_VERSION, CURL_VERSION[http])
        curl.setopt(pycurl.RESOLVE, list(resolve or target.resolve))
        if cacert:
            curl.setopt(pycurl.CAINFO, str(target.ca_file))
        curl.setopt(pycurl.WRITEDATA, body)
        curl.setopt(pycurl.HEADERFUNCTION, header)
        curl.setopt(pycurl.TIMEOUT, 5)
        curl.perform()
        return Reply(
            curl.getinfo(pycurl.RESPONSE_CODE),
            curl.getinfo(pycurl.INFO_HTTP_VERSION),
            body.getvalue(),
            headers,
            curl.getinfo(pycurl.PRIMARY_IP),
        )
    finally:
        curl.close()


@pytest.mark.parametrize("http", [H1, H2, H2C, H3])
def test_each_protocol_answers_and_negotiates(target: Target, http: str) -> None:
    reply = get(target, "/", http)
    assert (reply.status, reply.body) == (200, b"ok\n")
    assert reply.version == NEGOTIATED[http]
    assert reply.headers["x-rafale-proto"] == SERVER_PROTO[http]


@pytest.mark.parametrize(
    ("path", "status", "size"),
    [
        ("/", 200, 3),
        ("/big", 200, BIG_BODY_BYTES),
        ("/status/503", 503, len(b"status 503\n")),
        ("/status/429", 429, len(b"status 429\n")),
        ("/status/204", 204, 0),
        ("/status/42", 404, len(b"not found\n")),
        ("/nowhere", 404, len(b"not found\n")),
    ],
)
@pytest.mark.parametrize("http", [H2, H2C])
def test_routes(target: Target, http: str, path: str, status: int, size: int) -> None:
    reply = get(target, path, http)
    assert (reply.status, len(reply.body)) == (status, size)


@pytest.mark.parametrize(
    ("cacert", "error"),
    [(True, None), (False, pycurl.E_PEER_FAILED_VERIFICATION)],  # 60
)
@pytest.mark.parametrize("http", [H1, H2, H3])
def test_tls_verifies_only_with_the_ca(
    target: Target, http: str, cacert: bool, error: int | None
) -> None:
    if error is None:
        assert get(target, "/", http, cacert=cacert).status == 200
        return
    with pytest.raises(pycurl.error) as failure:
        get(target, "/", http, cacert=cacert)
    assert failure.value.args[0] == error


@pytest.mark.parametrize("http", [H1, H2, H2C, H3])
@pytest.mark.parametrize("address", ["127.0.0.2", "127.0.0.3"])
def test_every_address_answers(target: Target, address: str, http: str) -> None:
    port = target.http_port if http == H2C else target.https_port
    reply = get(target, "/", http, resolve=(f"{target.host}:{port}:{address}",))
    assert (reply.status, reply.primary_ip) == (200, address)


def test_urls_and_resolve(target: Target) -> None:
    https, plain = target.https_port, target.http_port
    assert target.https_url == f"https://rafale.test:{https}/"
    assert target.http_url == f"http://rafale.test:{plain}/"
    assert target.url("big", tls=False) == f"http://rafale.test:{plain}/big"
    assert target.resolve == (
        f"rafale.test:{https}:127.0.0.2,127.0.0.3",
        f"rafale.test:{plain}:127.0.0.2,127.0.0.3",
    )
    assert target.resolve_map() == {
        ("rafale.test", https): ("127.0.0.2", "127.0.0.3"),
        ("rafale.test", plain): ("127.0.0.2", "127.0.0.3"),
    }


def test_listens_on_loopback_only(target: Target) -> None:
    assert target.pid is not None
    conns = psutil.Process(target.pid).net_connections(kind="inet")
    bound = {(c.type, c.laddr.ip, c.laddr.port) for c in conns if c.laddr}
    assert bound, "caddy has no sockets"
    assert all(
        ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8") for _, ip, _ in bound
    )
    tcp, udp = socket.SOCK_STREAM, socket.SOCK_DGRAM
    ports = {target.https_port, target.http_port}
    assert {(t, ip, p) for t, ip, p in bound if t == tcp} == {
        (tcp, a, p) for a in target.addresses for p in ports
    }
    assert {(t, ip, p) for t, ip, p in bound if t == udp} == {
        (udp, a, target.https_port) for a in target.addresses
    }


def test_access_log_counts_every_request(target: Target) -> None:
    plan = {H1: 3, H2: 4, H2C: 2, H3: 5}
    before = {proto: target.count_access_log(proto) for proto in SERVER_PROTO.values()}
    total_before, mark = target.count_access_log(), target.access_log_mark()
    for http, count in plan.items():
        for _ in range(count):
            assert get(target, "/status/503", http).status == 503
    total = sum(plan.values())
    assert target.wait_access_log(total_before + total) == total_before + total
    time.sleep(0.05)  # nothing extra arrives late
    assert target.count_access_log() == total_before + total
    assert target.count_access_log("HTTP/1.1") - before["HTTP/1.1"] == plan[H1]
    assert target.count_access_log("HTTP/2.0") - before["HTTP/2.0"] == plan[H2] + plan[H2C]
    assert target.count_access_log("HTTP/3.0") - before["HTTP/3.0"] == plan[H3]
    # From a mark, only what was logged after it is read (not the session's whole log).
    assert [e["status"] for e in target.access_log_entries(mark)] == [503] * total
    assert list(target.access_log_entries(target.access_log_mark())) == []


def test_access_log_is_complete_after_stop(target_factory: Any) -> None:
    target = target_factory(access_log=True, keep_dir=True)
    for _ in range(20):
        get(target, "/", H2)
    target.kill()  # even a SIGKILL loses nothing: each line is written before the next
    lines = target.access_log_path.read_text().splitlines()
    assert len(lines) == 20
    assert {json.loads(line)["status"] for line in lines} == {200}
    target.stop()
    assert target.access_log_path.exists()  # keep_dir: still there for a post-mortem
    shutil.rmtree(target.dir)


def test_access_log_never_rolls_so_counts_never_go_down(target_factory: Any) -> None:
    """Caddy's file writer rolls a log at 100 MiB by default, and a count read after the
    roll restarted from zero (CI: ``assert -110360 == 12040``). Grow the log past that size,
    restart Caddy on it (the roll check runs when the file is opened and on every write),
    and count on."""
    target = target_factory(access_log=True, keep_dir=True)
    for _ in range(2):
        get(target, "/", H2)
    assert target.wait_access_log(2) == 2
    line = target.access_log_path.read_bytes().splitlines(keepends=True)[0]
    target.kill()
    filler = 101 * 2**20 // len(line) + 1  # just past Caddy's default roll size
    with target.access_log_path.open("ab") as log:
        log.write(line * filler)
    target.start()
    for _ in range(3):
        get(target, "/", H2)
    assert target.wait_access_log(2 + filler + 3) == 2 + filler + 3
    assert sorted(p.name for p in target.dir.iterdir() if p.name.startswith("access")) == [
        "access.log"]  # no rolled (renamed, gzipped) file beside it
    target.stop()
    shutil.rmtree(target.dir)


def test_a_cut_or_replaced_access_log_is_an_error_not_a_smaller_count(target_factory: Any) -> None:
    target = target_factory(access_log=True)
    for _ in range(3):
        get(target, "/", H1)
    assert target.wait_access_log(3) == 3
    os.truncate(target.access_log_path, 0)
    with pytest.raises(RuntimeError, match="truncated after [0-9]+ bytes .now 0 bytes"):
        target.count_access_log()
    # What a roll does: the file is renamed and a new one grows at the path, here past the
    # bytes counted so far, so its size alone would not tell.
    rolled = target.access_log_path.rename(target.dir / "access-rolled.log")
    target.access_log_path.write_bytes(b"{}\n" * 1000)
    assert rolled.exists()
    with pytest.raises(RuntimeError, match="replaced after"):
        target.count_access_log()


def test_stop_leaves_no_process_port_or_dir(target_factory: Any) -> None:
    target = target_factory()
    pid, directory, port = target.pid, target.dir, target.https_port
    assert psutil.pid_exists(pid) and directory.exists()
    target.stop()
    target.stop()  # idempotent
    assert not psutil.pid_exists(pid)
    assert not directory.exists()
    assert all(rebindable(address, port) for address in ("127.0.0.2", "127.0.0.3"))
    assert not target.running


def rebindable(address: str, port: int) -> bool:
    """A server could bind the port again (SO_REUSEADDR, as Caddy does: TIME_WAIT is fine)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def test_kill_then_start_keeps_ports_and_ca(target_factory: Any) -> None:
    target = target_factory()
    ports, ca = (target.https_port, target.http_port), target.ca_file.read_bytes()
    target.kill()
    assert not target.running
    with pytest.raises(pycurl.error):
        get(target, "/", H2)
    target.start()
    assert (target.https_port, target.http_port) == ports
    assert target.ca_file.read_bytes() == ca
    assert get(target, "/", H3).status == 200
    target.restart()
    assert (target.https_port, target.http_port) == ports
    assert get(target, "/", H2).status == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"addresses": ("10.0.0.1",)}, "not loopback"),
        ({"addresses": ("rafale.test",)}, "not an IP address"),
        ({"addresses": ()}, "at least one"),
        ({"host": "rafale.test:443"}, "plain DNS name"),
        ({"start_timeout_s": 0}, "> 0"),
    ],
)
def test_options_reject_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TargetOptions(**kwargs)


@pytest.mark.real
def test_start_failure_reports_caddy_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_module, "caddy_config", lambda *a: {"apps": {"http": {"no": 1}}})
    target = Target()
    with pytest.raises(RuntimeError, match="caddy exited") as failure:
        target.start()
    assert "unknown field" in str(failure.value)
    assert not target.running and target.dir is None


@pytest.mark.real
def test_main_foreground_prints_and_stops_on_sigint() -> None:
    code = "from rafale.cluster.target import main_foreground; raise SystemExit(main_foreground())"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        preexec_fn=default_sigint,
        cwd=Path(target_module.__file__).parents[2],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    lines = []
    while not lines or not lines[-1].startswith("Ctrl-C"):
        lines.append(child.stdout.readline())
        assert lines[-1], "main_foreground ended early:\n" + "".join(lines)
    caddy_pids = [p.pid for p in psutil.Process(child.pid).children()]
    child.send_signal(signal.SIGINT)
    child.wait(timeout=10)
    text = "".join(lines)
    assert child.returncode == 0, text
    assert "https://rafale.test:" in text and "--cacert" in text and "--resolve" in text
    assert caddy_pids and not any(psutil.pid_exists(pid) for pid in caddy_pids)


@pytest.mark.real
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_target_in_the_background_stops_on_a_signal_and_removes_its_dir(
        sig: signal.Signals) -> None:
    def as_background_job() -> None:  # what a shell does for `rafale target &`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, "-m", "rafale.cluster.cli", "target"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, preexec_fn=as_background_job)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C to stop"):
                break
        ca = next(line.split("CA file: ", 1)[1].strip() for line in lines if "CA file" in line)
        home = Path(ca).parents[5]
        assert home.name.startswith("rafale-target-") and home.exists(), lines
        process.send_signal(sig)
        assert process.wait(timeout=20) == 0
        assert not home.exists()  # the temporary directory is gone
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize(("options", "fragment"), [
    ({"https_port": 70000}, "https_port 70000 is not a port"),
    ({"https_port": 18443, "http_port": 18443}, "both 18443"),
    ({"tls_protocols": ("h4",)}, "tls_protocols ('h4',)"),
])
def test_bad_ports_and_protocols_are_refused_before_anything_starts(
        options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Target(**options)


@pytest.mark.slow
def test_rafale_target_on_fixed_ports_prints_run_lines_that_work_as_printed(
        ray_head: RayHead, tmp_path: Path) -> None:
    """`rafale target --port P --http-port Q` serves on P and Q and prints a `rafale run`
    line for each URL; the https one, run as printed (joined to the session's Ray head),
    completes every request over HTTP/2."""
    https_port = free_port(DEFAULT_ADDRESSES)
    http_port = free_port(DEFAULT_ADDRESSES, exclude=(https_port,))
    process = subprocess.Popen(
        [*RAFALE, "target", "--port", str(https_port), "--http-port", str(http_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C to stop"):
                break
        runs = [line.strip() for line in lines if line.strip().startswith("rafale run ")]
        assert [run.split()[2] for run in runs] == [
            f"https://rafale.test:{https_port}/", f"http://rafale.test:{http_port}/"], lines
        # The https line (with its --resolve and --cacert), run as printed; the plain
        # http:// one is README's first example, run as written by tests/test_readme.py.
        out = tmp_path / "https"
        done = rafale(*shlex.split(runs[0])[1:], "--out", str(out), "--no-charts",
                      head=ray_head)
        assert done.returncode == 0, (runs[0], done.stderr)
        summary = store.load(out).summary
        assert summary["requests"]["completed"] == summary["requests"]["sent"] == 300
        assert summary["version"] == {"2": 300}
        assert "auto (negotiated: 2 300 (100.0%))" in done.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
