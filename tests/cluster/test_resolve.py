"""Name resolution on the driver: static entries, the system resolver, a nameserver."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rrset
import pytest

from rafale.actors.config import ResolveEntry
from rafale.cluster import resolve as resolve_module
from rafale.cluster.resolve import engine_entries, resolve
from rafale.cluster.spec import RunSpec

ZONE = {("rafale.test.", "A"): ["127.0.0.2", "127.0.0.3"], ("v6.rafale.test.", "AAAA"): ["::1"]}


@pytest.fixture(scope="module")
def nameserver() -> Iterator[str]:
    """A tiny authoritative DNS server on loopback (UDP) answering from ZONE."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            name, rdtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            addresses = ZONE.get((name, rdtype))
            if addresses:
                reply.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, *addresses))
            elif not any(key[0] == name for key in ZONE):
                reply.set_rcode(dns.rcode.NXDOMAIN)
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    sock.close()


def test_static_entries_win_and_need_no_dns() -> None:
    spec = RunSpec.parse("https://rafale.test:8443/",
                         resolve="rafale.test:8443:127.0.0.2,127.0.0.3")
    assert resolve(spec) == (ResolveEntry("rafale.test", 8443, ("127.0.0.2", "127.0.0.3")),)


def test_system_resolver_for_localhost() -> None:
    entries = resolve(RunSpec.parse("http://localhost:8080/", http="1.1"))
    assert [(e.host, e.port) for e in entries] == [("localhost", 8080)]
    assert "127.0.0.1" in entries[0].addresses or "::1" in entries[0].addresses


def test_unresolvable_host_is_named() -> None:
    with pytest.raises(ValueError, match="nonexistent.invalid"):
        resolve(RunSpec.parse("https://nonexistent.invalid/"))


@pytest.mark.parametrize(("dns_mode", "expected"), [
    ("system", ()),
    ("pinned", (ResolveEntry("127.0.0.2", 8080, ("127.0.0.2",)),)),
])
def test_literal_ip_needs_no_entry(dns_mode: str, expected: tuple[ResolveEntry, ...]) -> None:
    assert resolve(RunSpec.parse("http://127.0.0.2:8080/", http="1.1", dns=dns_mode)) == expected


def test_one_entry_per_host_and_port() -> None:
    spec = RunSpec.parse(["http://localhost:8080/a", "http://localhost:8080/b", "http://localhost:9090/"],
                   http="1.1")
    assert [(e.host, e.port) for e in resolve(spec)] == [("localhost", 8080), ("localhost", 9090)]


def test_engine_entries_per_dns_mode() -> None:
    static = "rafale.test:8443:127.0.0.2"
    urls = ["https://rafale.test:8443/", "https://localhost:8443/"]
    system = RunSpec.parse(urls, resolve=static)
    pinned = RunSpec.parse(urls, resolve=static, dns="pinned")
    # system mode: libcurl resolves what it can itself; only the static entry is handed over
    assert [e.host for e in engine_entries(system, resolve(system))] == ["rafale.test"]
    assert [e.host for e in engine_entries(pinned, resolve(pinned))] == ["rafale.test",
                                                                         "localhost"]


def test_nameserver_gives_every_address(nameserver: str) -> None:
    spec = RunSpec.parse(["https://rafale.test:8443/", "https://v6.rafale.test/"],
                         nameserver=nameserver)
    assert resolve(spec) == (ResolveEntry("rafale.test", 8443, ("127.0.0.2", "127.0.0.3")),
                             ResolveEntry("v6.rafale.test", 443, ("::1",)))
    assert engine_entries(spec, resolve(spec)) == resolve(spec)  # libcurl can't ask it


def test_nameserver_unknown_host_is_named(nameserver: str) -> None:
    with pytest.raises(ValueError, match="nowhere.rafale.test") as info:
        resolve(RunSpec.parse("https://nowhere.rafale.test/", nameserver=nameserver))
    assert nameserver in str(info.value)


@pytest.mark.parametrize("bad", ["not-an-ip", "example.com:53"])
def test_nameserver_must_be_an_address(bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        resolve(RunSpec.parse("https://rafale.test/", nameserver=bad))


def test_silent_nameserver_fails_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve_module, "NAMESERVER_TIMEOUT_S", 0.5)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        with pytest.raises(ValueError, match="did not answer"):
            resolve(RunSpec.parse("https://rafale.test/", nameserver=address))
    finally:
        silent.close()
