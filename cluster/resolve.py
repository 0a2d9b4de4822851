"""Name resolution, once, on the driver, before any actor starts.

Every (host, port) of the spec's URLs gets a :class:`ResolveEntry` with every A/AAAA
address of the host: from the spec's static ``resolve`` entries (they win), else from the
given ``nameserver`` (dnspython), else from the system resolver (``socket.getaddrinfo``).
Literal IP hosts need no entry (IPv4 literals get one in ``pinned`` mode, where every URL
needs its addresses). A host that does not resolve is a ``ValueError`` naming it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from rafale.actors.config import ResolveEntry
from rafale.cluster.spec import RunSpec

__all__ = ["engine_entries", "resolve", "resolve_nameserver", "resolve_system"]

NAMESERVER_TIMEOUT_S = 5.0


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _unique(addresses: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(addresses))


def resolve_system(host: str, port: int) -> tuple[str, ...]:
    """Every A/AAAA address of ``host`` from the system resolver (getaddrinfo order)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(
            f"host {host!r} does not resolve with the system resolver ({exc}); check the name "
            f"or give a static entry --resolve {host}:{port}:ADDR[,ADDR]"
        ) from None
    addresses = _unique([str(info[4][0]) for info in infos
                         if info[0] in (socket.AF_INET, socket.AF_INET6)])
    if not addresses:
        raise ValueError(f"host {host!r} has no IPv4/IPv6 address (system resolver)")
    return addresses


def _nameserver_address(nameserver: str) -> tuple[str, int]:
    text = nameserver.strip()
    if _is_ip(text):
        return text, 53
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if sep and port.isdigit() and _is_ip(host):
        return host, int(port)
    raise ValueError(f"nameserver {nameserver!r} is not an IP address; expected e.g. "
                     "127.0.0.53, 127.0.0.53:5353 or [::1]:53")


def resolve_nameserver(host: str, nameserver: str) -> tuple[str, ...]:
    """Every A and AAAA address of ``host`` asked directly from ``nameserver`` (dnspython)."""
    import dns.exception
    import dns.resolver

    server, port = _nameserver_address(nameserver)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.port = port
    resolver.lifetime = NAMESERVER_TIMEOUT_S
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(host, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            continue
        except dns.exception.Timeout:
            raise ValueError(f"nameserver {nameserver!r} did not answer for host {host!r} "
                             f"within {NAMESERVER_TIMEOUT_S:g} s") from None
        addresses.extend(sorted((str(r) for r in answer), key=ipaddress.ip_address))
    if not addresses:
        raise ValueError(f"host {host!r} does not resolve at nameserver {nameserver!r} (no A or "
                         f"AAAA record); check the name or give --resolve {host}:PORT:ADDR")
    return _unique(addresses)


def resolve(spec: RunSpec) -> tuple[ResolveEntry, ...]:
    """One entry per (host, port) of the URLs, static entries first; raises ValueError for
    a host that does not resolve or, in pinned mode, a URL left without any address."""
    static = {(e.host, e.port): e for e in spec.resolve}
    lookup: Callable[[str, int], tuple[str, ...]]
    if spec.nameserver:
        nameserver = spec.nameserver
        lookup = lambda host, _port: resolve_nameserver(host, nameserver)  # noqa: E731
    else:
        lookup = resolve_system
    by_host: dict[str, tuple[str, ...]] = {}
    entries: list[ResolveEntry] = list(static.values())
    for host, port in spec.host_ports():
        if (host, port) in static:
            continue
        if _is_ip(host):
            if spec.dns == "pinned" and ":" not in host:
                entries.append(ResolveEntry(host, port, (host,)))
            continue
        if host not in by_host:
            by_host[host] = lookup(host, port)
        entries.append(ResolveEntry(host, port, by_host[host]))
    if spec.dns == "pinned":
        known = {(e.host, e.port) for e in entries}
        missing = [f"{h}:{p}" for h, p in spec.host_ports() if (h, p) not in known]
        if missing:
            raise ValueError(f"dns pinned has no address for {missing[0]}; give "
                             f"--resolve {missing[0]}:ADDR[,ADDR] or use dns system")
    return tuple(entries)


def engine_entries(spec: RunSpec, entries: tuple[ResolveEntry, ...]) -> tuple[ResolveEntry, ...]:
    """The entries handed to the engines. ``pinned``: all of them. ``system``: only the
    ones libcurl could not find itself (static entries, or all when a nameserver was
    given), so that libcurl resolves and chooses an address as it normally does."""
    if spec.dns == "pinned" or spec.nameserver:
        return entries
    static = {(e.host, e.port) for e in spec.resolve}
    return tuple(e for e in entries if (e.host, e.port) in static)
