"""The embedded target's options and its generated Caddy JSON config (routes, listeners,
internal CA, access log), plus a free-port probe for TCP and UDP on every address."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ADDRESSES = ("127.0.0.2", "127.0.0.3")
DEFAULT_HOST = "rafale.test"
BIG_BODY_BYTES = 16 * 1024
ACCESS_LOGGER = "rafale"


@dataclass(frozen=True)
class PushOptions:
    """The push-service mode (``cluster/target/push_emulator.py``): ids answered 410 (gone), the
    known ids (others 404; None: every id is known), the share of ids throttled once with
    429, its Retry-After, and how many delivered bodies the log keeps."""

    gone: tuple[str, ...] = ()
    known: tuple[str, ...] | None = None
    throttle_share: float = 0.0
    retry_after_s: int = 1
    keep_bodies: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= self.throttle_share <= 1.0:
            raise ValueError(f"throttle_share {self.throttle_share!r} must be in 0..1")
        if self.retry_after_s < 0 or self.keep_bodies < 0:
            raise ValueError("retry_after_s and keep_bodies must be >= 0")


@dataclass(frozen=True)
class TargetOptions:
    """What to serve and where. Ports are chosen at start (free on every address)."""

    addresses: tuple[str, ...] = DEFAULT_ADDRESSES
    host: str = DEFAULT_HOST
    access_log: bool = False
    keep_dir: bool = False
    start_timeout_s: float = 10.0
    stop_timeout_s: float = 5.0
    push: PushOptions | None = None
    # Also private addresses (10/8, 172.16/12, 192.168/16, fc00::/7): for a target inside a
    # network namespace whose subnet exists nowhere else (tests/testbed.py).
    private_ok: bool = False
    # What the TLS port speaks (h1, h2, h3): ("h1",) is a server without HTTP/2, to try
    # --http auto (falls back) and --http 2 (refused) against.
    tls_protocols: tuple[str, ...] = ("h1", "h2", "h3")
    # Serve /delay/<ms> (answered after <ms>) through a small upstream on loopback
    # (``cluster/target/delay_upstream.py``): a target that got slower, for comparisons.
    delay: bool = False

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("addresses must name at least one loopback address")
        for address in self.addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"address {address!r} is not an IP address") from None
            if not ip.is_loopback and not (self.private_ok and ip.is_private):
                raise ValueError(f"address {address!r} is not loopback (127.0.0.0/8 or ::1)"
                                 + (" or private" if self.private_ok else ""))
        if not self.host or any(c in self.host for c in ":/ []"):
            raise ValueError(f"host {self.host!r} must be a plain DNS name like 'rafale.test'")
        if self.start_timeout_s <= 0 or self.stop_timeout_s <= 0:
            raise ValueError("start_timeout_s and stop_timeout_s must be > 0")
        if not self.tls_protocols or not set(self.tls_protocols) <= {"h1", "h2", "h3"}:
            raise ValueError(f"tls_protocols {self.tls_protocols!r}: expected some of h1, h2, "
                             "h3")


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _port_is_free(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(family, kind) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return False
    return True


def free_port(addresses: tuple[str, ...], exclude: tuple[int, ...] = ()) -> int:
    """A port free for TCP and UDP on every address (racy, like every free-port probe)."""
    family = socket.AF_INET6 if ":" in addresses[0] else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((addresses[0], 0))
            port = int(sock.getsockname()[1])
        if port not in exclude and all(_port_is_free(a, port) for a in addresses):
            return port
    raise RuntimeError(f"no port free for TCP and UDP on all of {addresses}")


def _respond(status: int | str, body: str) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "body": body,
        "headers": {
            "Content-Type": ["text/plain; charset=utf-8"],
            "X-Rafale-Proto": ["{http.request.proto}"],
        },
    }


RETRY_AFTER_S = 1  # what /status/429 and /status/503 ask clients to wait
ECHO_BODY_FIELD = "request_body"  # access-log field holding an /echo/ request's body
LOCAL_IP_FIELD = "local_ip"  # access-log field: the target address the request came in on


def _routes() -> list[dict[str, Any]]:
    big = ("rafale " * (BIG_BODY_BYTES // 7 + 1))[: BIG_BODY_BYTES - 1] + "\n"
    status_match = {"path_regexp": {"name": "code", "pattern": "^/status/([1-5][0-9][0-9])$"}}
    retry_match = {"path": ["/status/429", "/status/503"]}
    retry_after = {"handler": "headers",
                   "response": {"set": {"Retry-After": [str(RETRY_AFTER_S)]}}}
    # /echo/...: answers with the request's path; the body goes to the access log (which
    # already holds the method, URI and headers), so tests see what arrived.
    echo = {"handler": "log_append", "key": ECHO_BODY_FIELD, "value": "{http.request.body}"}
    local = {"handler": "log_append", "key": LOCAL_IP_FIELD,
             "value": "{http.request.local.host}"}
    return [
        {"handle": [local]},
        {"match": [{"path": ["/"]}], "handle": [_respond(200, "ok\n")], "terminal": True},
        {"match": [{"path": ["/big"]}], "handle": [_respond(200, big)], "terminal": True},
        {"match": [{"path": ["/echo/*"]}],
         "handle": [echo, _respond(200, "{http.request.uri.path}\n")], "terminal": True},
        {"match": [retry_match], "handle": [retry_after]},
        {
            "match": [status_match],
            "handle": [_respond("{http.regexp.code.1}", "status {http.regexp.code.1}\n")],
            "terminal": True,
        },
        {"handle": [_respond(404, "not found\n")], "terminal": True},
    ]


def _proxy_route(paths: str, upstream: str) -> dict[str, Any]:
    return {"match": [{"path": [paths]}],
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}],
            "terminal": True}


def caddy_config(
    options: TargetOptions, https_port: int, http_port: int, access_log_path: Path,
    push_upstream: str | None = None, delay_upstream: str | None = None,
) -> dict[str, Any]:
    """The adapter-free Caddy JSON config: no admin, no ACME, no redirects, no trust store.
    With ``push_upstream``, /push/* goes to the push emulator there; with
    ``delay_upstream``, /delay/* to the delaying upstream there."""
    push = [_proxy_route("/push/*", push_upstream)] if push_upstream else []
    if delay_upstream:
        push.append(_proxy_route("/delay/*", delay_upstream))
    logs = {"logs": {"default_logger_name": ACCESS_LOGGER}} if options.access_log else {}
    tls_server = {
        "listen": [_hostport(a, https_port) for a in options.addresses],
        "protocols": list(options.tls_protocols),  # h3: Caddy also binds UDP on each address
        "tls_connection_policies": [{}],
        "automatic_https": {"disable_redirects": True},
        **logs,
    }
    plain_server = {
        "listen": [_hostport(a, http_port) for a in options.addresses],
        "protocols": ["h1", "h2c"],
        "automatic_https": {"disable": True},
        **logs,
    }
    config: dict[str, Any] = {
        "admin": {"disabled": True, "config": {"persist": False}},
        "apps": {
            "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
            "tls": {
                "certificates": {"automate": [options.host]},
                "automation": {
                    "policies": [{"subjects": [options.host], "issuers": [{"module": "internal"}]}]
                },
            },
            "http": {
                "grace_period": "1s",
                "servers": {
                    "tls": {**tls_server, "routes": push + _routes()},
                    "plain": {**plain_server, "routes": push + _routes()},
                },
            },
        },
    }
    if options.access_log:
        name = f"http.log.access.{ACCESS_LOGGER}"
        config["logging"] = {
            "logs": {
                "default": {"exclude": [name]},
                ACCESS_LOGGER: {
                    # No rolling: Caddy's file writer rolls at 100 MiB by default, and the
                    # counts taken from this log (``access_log.AccessLogTally``) must never
                    # go down.
                    "writer": {"output": "file", "filename": str(access_log_path),
                               "roll": False},
                    "encoder": {"format": "json"},
                    "include": [name],
                },
            }
        }
    return config
