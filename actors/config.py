"""Frozen, validated configuration of one sender engine.

Everything here is checked in ``__post_init__`` so that a bad value fails before any
traffic, with a message naming the value and what would be valid.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import urlsplit

from actors.pacing import Schedule

HttpVersion = Literal["1.1", "2", "2c", "3"]
DnsMode = Literal["system", "pinned"]
HTTP_VERSIONS: tuple[str, ...] = get_args(HttpVersion)
DNS_MODES: tuple[str, ...] = get_args(DnsMode)
_TLS_ONLY = {"2", "3"}
GRACE_MARGIN_S = 0.2
_CLEARTEXT_ONLY = {"2c"}


def _bracket(address: str) -> str:
    """An address as it appears in a curl host:port:address option."""
    return f"[{address}]" if ":" in address else address


def check_address(address: str) -> str:
    """Return ``address`` if it is a literal IPv4/IPv6 address, else raise ValueError."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"address {address!r} is not an IP address; expected e.g. 127.0.0.2 or ::1"
        ) from None
    return address


@dataclass(frozen=True)
class ResolveEntry:
    """A static name mapping like curl's ``--resolve host:port:addr1,addr2``."""

    host: str
    port: int
    addresses: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.host or any(c in self.host for c in " /:"):
            raise ValueError(f"resolve host {self.host!r} is not a host name")
        if not 0 < self.port < 65536:
            raise ValueError(f"resolve port {self.port!r} is out of range 1..65535")
        if not self.addresses:
            raise ValueError(f"resolve entry for {self.host}:{self.port} has no address")
        for address in self.addresses:
            check_address(address)

    @classmethod
    def parse(cls, text: str) -> ResolveEntry:
        """Parse ``host:port:addr[,addr...]`` (IPv6 addresses in brackets)."""
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise ValueError(
                f"resolve entry {text!r} is malformed; expected HOST:PORT:ADDR[,ADDR...] "
                "e.g. rafale.test:8443:127.0.0.2,127.0.0.3"
            )
        addresses = tuple(a.strip().strip("[]") for a in parts[2].split(",") if a.strip())
        return cls(parts[0], int(parts[1]), addresses)

    def curl_resolve(self) -> str:
        """The entry in ``CURLOPT_RESOLVE`` form."""
        return f"{self.host}:{self.port}:" + ",".join(_bracket(a) for a in self.addresses)

    def curl_connect_to(self, address: str) -> str:
        """A ``CURLOPT_CONNECT_TO`` entry pinning host:port to one address."""
        return f"{self.host}:{self.port}:{_bracket(address)}:{self.port}"

    def __str__(self) -> str:
        return self.curl_resolve()


def url_host_port(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL, with the scheme's default port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def check_url(url: str, http: str) -> None:
    """Raise ValueError if ``url`` is malformed or its scheme does not fit ``http``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL {url!r} has scheme {parts.scheme!r}; expected http or https")
    if not parts.hostname:
        raise ValueError(f"URL {url!r} has no host; expected e.g. https://example.test/")
    if http in _TLS_ONLY and parts.scheme != "https":
        raise ValueError(f"http {http} needs an https:// URL, got {url!r} (use 1.1 or 2c)")
    if http in _CLEARTEXT_ONLY and parts.scheme != "http":
        raise ValueError(f"http 2c is cleartext and needs an http:// URL, got {url!r}")


def _positive(name: str, value: float, *, integer: bool = False) -> None:
    bad = not isinstance(value, int | float) or isinstance(value, bool)
    if bad or not math.isfinite(value) or value <= 0 or (integer and int(value) != value):
        kind = "a positive integer" if integer else "a positive finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


@dataclass(frozen=True)
class EngineConfig:
    """What one sender engine does. ``schedule=None`` is the closed model."""

    urls: tuple[str, ...]
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    body: bytes = field(default=b"", repr=False)
    http: str = "2"
    dns: str = "system"
    resolve: tuple[ResolveEntry, ...] = ()
    cacert: str | None = None
    insecure: bool = False
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    schedule: Schedule | None = None
    duration_s: float = 10.0
    max_in_flight: int = 100
    in_flight_step: int = 50
    max_connections: int | None = None
    streams_per_connection: int = 100
    actor_index: int = 0
    actor_count: int = 1
    drain_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            object.__setattr__(self, "urls", (self.urls,))
        if not self.urls:
            raise ValueError("no target URL given; expected at least one http(s) URL")
        if self.http not in HTTP_VERSIONS:
            raise ValueError(f"http {self.http!r} is not supported; expected one of "
                             f"{', '.join(HTTP_VERSIONS)}")
        if self.dns not in DNS_MODES:
            raise ValueError(f"dns {self.dns!r} is not supported; expected one of "
                             f"{', '.join(DNS_MODES)}")
        for url in self.urls:
            check_url(url, self.http)
        if not self.method or not self.method.isalpha():
            raise ValueError(f"method {self.method!r} is not an HTTP method, e.g. GET or POST")
        for name, value in (("timeout_s", self.timeout_s),
                            ("connect_timeout_s", self.connect_timeout_s),
                            ("duration_s", self.duration_s)):
            _positive(name, value)
        for name, ivalue in (("max_in_flight", self.max_in_flight),
                             ("in_flight_step", self.in_flight_step),
                             ("streams_per_connection", self.streams_per_connection),
                             ("actor_count", self.actor_count)):
            _positive(name, ivalue, integer=True)
        if self.max_connections is not None:
            _positive("max_connections", self.max_connections, integer=True)
        if not 0 <= self.actor_index < self.actor_count:
            raise ValueError(f"actor_index {self.actor_index} must be in 0..{self.actor_count - 1}")
        if self.dns == "pinned":
            missing = [u for u in self.urls if not self.pins_for(u)]
            if missing:
                raise ValueError(f"dns pinned needs addresses for {missing[0]!r}; give a "
                                 "resolve entry HOST:PORT:ADDR[,ADDR] for its host and port")
        if self.drain_s is not None and (self.drain_s < 0 or not math.isfinite(self.drain_s)):
            raise ValueError(f"drain_s must be >= 0, got {self.drain_s!r}")

    def pins_for(self, url: str) -> tuple[str, ...]:
        """Addresses known for the URL's host and port (from ``resolve``)."""
        host, port = url_host_port(url)
        for entry in self.resolve:
            if entry.host == host and entry.port == port:
                return entry.addresses
        return ()

    def entry_for(self, url: str) -> ResolveEntry | None:
        host, port = url_host_port(url)
        return next((e for e in self.resolve if (e.host, e.port) == (host, port)), None)

    @property
    def grace_s(self) -> float:
        """How long in-flight requests may finish after the last send: by default a little
        longer than the timeout, so a request that times out is counted as a timeout."""
        return self.timeout_s + GRACE_MARGIN_S if self.drain_s is None else self.drain_s
