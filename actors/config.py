"""Frozen configuration of one sender engine.

User input is checked once, by ``RunSpec`` (cluster/spec.py) with the helpers of
:mod:`rafale.actors.checks`; an ``EngineConfig`` is built from a checked spec
(``RunSpec.engine_config``), so ``__post_init__`` only asserts its invariants: a broken
one is a bug in the caller, raised as ``AssertionError``. ``ResolveEntry`` still parses
and checks the text it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from rafale.actors.checks import (
    DNS_MODES,
    HTTP_VERSIONS,
    check_address,
    number_ok,
)
from rafale.actors.feed import FeedPlan
from rafale.actors.health import STALL_AFTER_S
from rafale.actors.pacing import Schedule
from rafale.actors.priority import ENGINE_SLICE_US
from rafale.actors.rows import RetryPolicy

GRACE_MARGIN_S = 0.2


def _bracket(address: str) -> str:
    """An address as it appears in a curl host:port:address option."""
    return f"[{address}]" if ":" in address else address


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
    # New connections per second this engine may open (its share of --connect-rate); None:
    # no budget. Counted as in-flight requests: one per connection in HTTP/1.1, up to
    # streams_per_connection on a multiplexed one.
    connect_rate_per_s: float | None = None
    actor_index: int = 0
    actor_count: int = 1
    drain_s: float | None = None
    late_after_s: float = 0.001
    # A loop gap longer than this stalls the second (actors/health.py).
    stall_after_s: float = STALL_AFTER_S
    feed: FeedPlan | None = None
    retry: RetryPolicy = RetryPolicy()
    keep_answers: tuple[int, ...] = ()  # statuses whose first answer body is kept
    # Not drained for this long: the engine stops sending (fenced), as the driver will have
    # given its stripe to the others by then. None: no lease (an engine run in-process).
    lease_s: float | None = None
    # The loop thread's scheduler slice (actors/priority.py request_slice); None keeps the
    # kernel's (benchmarks compare both).
    slice_us: int | None = ENGINE_SLICE_US

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            object.__setattr__(self, "urls", (self.urls,))
        self._invariant(bool(self.urls) and all(
            isinstance(u, str) and u.startswith(("http://", "https://")) for u in self.urls),
            "urls")
        self._invariant(self.http in HTTP_VERSIONS, "http")
        self._invariant(self.dns in DNS_MODES, "dns")
        self._invariant(isinstance(self.method, str) and self.method.isalpha(), "method")
        for name in ("timeout_s", "connect_timeout_s", "duration_s"):
            self._invariant(number_ok(getattr(self, name)), name)
        for name in ("max_in_flight", "in_flight_step", "streams_per_connection",
                     "actor_count"):
            self._invariant(number_ok(getattr(self, name), integer=True), name)
        self._invariant(self.max_connections is None
                        or number_ok(self.max_connections, integer=True), "max_connections")
        self._invariant(self.connect_rate_per_s is None or number_ok(self.connect_rate_per_s),
                        "connect_rate_per_s")
        self._invariant(isinstance(self.actor_index, int)
                        and 0 <= self.actor_index < self.actor_count, "actor_index")
        self._invariant(self.dns != "pinned" or all(self.pins_for(u) for u in self.urls),
                        "resolve")
        self._invariant(self.drain_s is None or number_ok(self.drain_s, zero_ok=True),
                        "drain_s")
        self._invariant(number_ok(self.late_after_s, zero_ok=True), "late_after_s")
        self._invariant(number_ok(self.stall_after_s), "stall_after_s")
        self._invariant(self.lease_s is None or number_ok(self.lease_s), "lease_s")
        self._invariant(self.slice_us is None or number_ok(self.slice_us, integer=True),
                        "slice_us")
        self._invariant(self.feed is None or isinstance(self.feed, FeedPlan), "feed")

    def _invariant(self, ok: bool, name: str) -> None:
        """Raise AssertionError naming the field if an invariant does not hold."""
        if not ok:
            raise AssertionError(
                f"EngineConfig.{name}={getattr(self, name)!r} breaks an invariant; build "
                "configs from a checked spec (RunSpec.engine_config)")

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

    @cached_property
    def destinations(self) -> int:
        """How many places this engine opens connections to: one per host and port of its
        URLs, or in pinned DNS mode one per address of each. libcurl keeps a pool of
        connections for each (its connection cache holds ``max_in_flight`` per destination:
        with one cache of ``max_in_flight`` for two pinned addresses, a request whose
        address has no idle connection evicts the other's, and a closed model re-opened
        connections without end: 383 opened for 40 in flight in one second, measured)."""
        pins = {url_host_port(url): len(self.pins_for(url)) for url in self.urls}
        return sum(count if self.dns == "pinned" else 1 for count in pins.values())

    @property
    def requests_per_connection(self) -> int:
        """How many requests one connection carries at once: 1 in HTTP/1.1 (and ``auto``
        over cleartext), ``streams_per_connection`` when multiplexed (h2, h2c, h3, and
        ``auto`` over TLS, which negotiates h2 with a server that has it)."""
        multiplexed = self.http in ("2", "2c", "3") or (
            self.http == "auto" and all(u.startswith("https://") for u in self.urls))
        return self.streams_per_connection if multiplexed else 1

    @cached_property
    def default_shape(self) -> tuple[str, list[str], bytes]:
        """(method, header lines, body) of a feed row that sets none of them."""
        return (self.method, self.header_lines, self.body)

    @cached_property
    def header_lines(self) -> list[str]:
        """The run's headers as libcurl wants them: "Name: value"."""
        return [f"{name}: {value}" for name, value in self.headers]

    @property
    def grace_s(self) -> float:
        """How long in-flight requests may finish after the last send: by default a little
        longer than the timeout, so a request that times out is counted as a timeout."""
        return self.timeout_s + GRACE_MARGIN_S if self.drain_s is None else self.drain_s
