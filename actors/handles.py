"""libcurl handles for one engine: the multi handle's limits and a pool of easy handles.

Easy handles are created lazily, configured once, and reused for every request: only the
URL (when several) and the pinned address change per request, so connections and TLS
sessions are kept by the multi handle's connection cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pycurl

from rafale.actors.config import EngineConfig

CURL_HTTP_VERSION = {
    # auto: HTTP/2 by ALPN over TLS, HTTP/1.1 if the server picks it; HTTP/1.1 for http://.
    "auto": pycurl.CURL_HTTP_VERSION_2TLS,
    "1.1": pycurl.CURL_HTTP_VERSION_1_1,
    # 2 is strict: over TLS, libcurl >= 8.10 offers only h2 in ALPN with this value, so a
    # server without HTTP/2 fails the request instead of answering in HTTP/1.1.
    "2": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
    "2c": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
    "3": pycurl.CURL_HTTP_VERSION_3ONLY,
}
NEGOTIATED_VERSION = {
    pycurl.CURL_HTTP_VERSION_1_0: "1.0",
    pycurl.CURL_HTTP_VERSION_1_1: "1.1",
    pycurl.CURL_HTTP_VERSION_2_0: "2",
    pycurl.CURL_HTTP_VERSION_3: "3",
}


def connect_us(easy: pycurl.Curl) -> int | None:
    """The time a finished transfer spent opening its connection, in µs: from the end of its
    name lookup to the end of the TLS or QUIC handshake (libcurl's appconnect time; its
    connect time without TLS). None when the transfer reused a connection: the times are
    read only then (``NUM_CONNECTS``), so a reused connection costs one getinfo."""
    if easy.getinfo(pycurl.NUM_CONNECTS) == 0:
        return None
    done_us = easy.getinfo(pycurl.APPCONNECT_TIME_T) or easy.getinfo(pycurl.CONNECT_TIME_T)
    return max(0, int(done_us - easy.getinfo(pycurl.NAMELOOKUP_TIME_T)))


def libcurl_version() -> str:
    return str(pycurl.version_info()[1])


def new_multi(config: EngineConfig) -> pycurl.CurlMulti:
    """A multi handle with the connection limits of ``config`` (callbacks set by the engine)."""
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
    multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, config.streams_per_connection)
    # An idle connection is kept for every request in flight to each destination, so
    # that spreading requests over addresses (or URLs) never evicts a pool's connections.
    multi.setopt(pycurl.M_MAXCONNECTS, max(config.max_in_flight * config.destinations, 16))
    if config.max_connections is not None:
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, config.max_connections)
    return multi


ANSWER_BYTES = 200  # how much of a kept answer's body is kept


def new_easy(config: EngineConfig, answers: dict[int, bytes] | None = None) -> pycurl.Curl:
    """One easy handle with every option that does not change between requests.

    With ``answers`` (and ``config.keep_answers``), the first ANSWER_BYTES of the first
    body of each kept status are put there; other bodies are discarded as always."""
    easy = pycurl.Curl()
    easy.shape = None  # what apply_row last set (feeds)
    easy.setopt(pycurl.URL, config.urls[0])
    easy.setopt(pycurl.NOSIGNAL, 1)
    easy.setopt(pycurl.HTTP_VERSION, CURL_HTTP_VERSION[config.http])
    easy.setopt(pycurl.WRITEFUNCTION, len)  # discard the body; len() says "all consumed"
    if answers is not None and config.keep_answers:
        on_header, on_body = _answer_keeper(config.keep_answers, answers)
        easy.setopt(pycurl.HEADERFUNCTION, on_header)
        easy.setopt(pycurl.WRITEFUNCTION, on_body)
    easy.setopt(pycurl.TIMEOUT_MS, int(config.timeout_s * 1000))
    easy.setopt(pycurl.CONNECTTIMEOUT_MS, int(config.connect_timeout_s * 1000))
    if config.http != "1.1":
        easy.setopt(pycurl.PIPEWAIT, 1)
    if config.resolve:
        easy.setopt(pycurl.RESOLVE, [entry.curl_resolve() for entry in config.resolve])
    if config.cacert:
        easy.setopt(pycurl.CAINFO, config.cacert)
    if config.insecure:
        easy.setopt(pycurl.SSL_VERIFYPEER, 0)
        easy.setopt(pycurl.SSL_VERIFYHOST, 0)
    if config.headers:
        easy.setopt(pycurl.HTTPHEADER, config.header_lines)
    method = config.method.upper()
    if config.body:
        easy.setopt(pycurl.POSTFIELDS, config.body)
    if method != ("POST" if config.body else "GET"):
        easy.setopt(pycurl.CUSTOMREQUEST, method)
    return easy


_URL = pycurl.URL


def _answer_keeper(statuses: tuple[int, ...], answers: dict[int, bytes]
                   ) -> tuple[Callable[[bytes], None], Callable[[bytes], int]]:
    """Header and write callbacks that keep the first body of each status in ``statuses``.
    The status comes from the status line (pycurl refuses getinfo inside a callback)."""
    keep = frozenset(statuses)
    status = [0]

    def on_header(line: bytes) -> None:
        if line.startswith(b"HTTP/"):
            parts = line.split()
            status[0] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def on_body(data: bytes) -> int:
        code = status[0]
        if code in keep and code not in answers:
            answers[code] = bytes(data[:ANSWER_BYTES])
        return len(data)

    return on_header, on_body


def apply_row(easy: pycurl.Curl, config: EngineConfig, url: str, method: str | None,
              headers: list[str] | None, body: bytes | None) -> None:
    """Set one feed row's request on a reused easy handle (None: the run's own value).

    Only the URL is set every time; method, headers and body only when they differ from
    what this handle sent last (``easy.shape``; a row of the run's own values is the
    config's ``default_shape``, compared by identity).
    """
    easy.setopt(_URL, url)
    if method is None and headers is None and body is None:
        shape = config.default_shape
        if easy.shape is shape:
            return
    else:
        shape = (method or config.method, config.header_lines if headers is None else headers,
                 config.body if body is None else body)
        if easy.shape == shape:
            return
    easy.shape = shape
    method, lines, payload = shape
    easy.setopt(pycurl.HTTPHEADER, lines)
    if payload:
        easy.setopt(pycurl.POSTFIELDS, payload)
    else:
        easy.setopt(pycurl.HTTPGET, 1)
    easy.setopt(pycurl.NOBODY, 1 if method == "HEAD" else 0)  # after HTTPGET, which clears it
    if method != ("POST" if payload else "GET") and method != "HEAD":
        easy.setopt(pycurl.CUSTOMREQUEST, method)
    else:
        easy.unsetopt(pycurl.CUSTOMREQUEST)


class RowPins:
    """Pinned DNS for feed rows: each request to a host goes to its next address in turn."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._cycles: dict[str, Iterator[list[str]]] = {}

    def next_for(self, url: str) -> list[str] | None:
        """The CONNECT_TO list for the next request to ``url`` (None: not pinned)."""
        authority = url.split("/", 3)[2]
        cycle = self._cycles.get(authority)
        if cycle is None:
            entry = self.config.entry_for(url)
            if entry is None:
                cycle = itertools.repeat([])
            else:
                count = len(entry.addresses)
                start = self.config.actor_index % count
                order = entry.addresses[start:] + entry.addresses[:start]
                cycle = itertools.cycle([[entry.curl_connect_to(a)] for a in order])
            self._cycles[authority] = cycle
        return next(cycle)


def row_pins(config: EngineConfig) -> RowPins | None:
    """Per-row address pinning in pinned DNS mode, else None."""
    return RowPins(config) if config.dns == "pinned" else None


class Plans:
    """Each request's URL and, in pinned mode, address (set on its handle when they vary).
    Closed model, one URL: a handle keeps the address it was first pinned to, so the request
    that follows a finished one takes its idle connection (rotating addresses per request
    opened new connections wherever one address's connections finished later, e.g. behind
    a connection wall)."""

    def __init__(self, config: EngineConfig) -> None:
        self._cycle = pin_cycle(config)
        self.varies = len(config.urls) > 1 or config.dns == "pinned"  # else nothing to set
        self._sticky = len(config.urls) == 1

    def apply(self, easy: pycurl.Curl, closed: bool) -> None:
        if closed and self._sticky and getattr(easy, "pinned", False):
            return
        url, connect_to = next(self._cycle)
        easy.setopt(pycurl.URL, url)
        if connect_to is not None:
            easy.setopt(pycurl.CONNECT_TO, connect_to)
        easy.pinned = True


def pin_cycle(config: EngineConfig) -> Iterator[tuple[str, list[str] | None]]:
    """Endless (url, connect_to) pairs: URLs round-robin; in pinned mode each request is
    pinned to the next address of its host, starting at an actor-dependent offset."""
    plans: list[tuple[str, list[str] | None]] = []
    for url in config.urls:
        entry = config.entry_for(url)
        if config.dns != "pinned" or entry is None:
            plans.append((url, None))
            continue
        count = len(entry.addresses)
        start = config.actor_index % count
        order = entry.addresses[start:] + entry.addresses[:start]
        plans.extend((url, [entry.curl_connect_to(a)]) for a in order)
    return itertools.cycle(plans)
