"""A small HTTP/1.1 server on loopback that misbehaves on demand, for fault tests.

The request path chooses the behaviour (one thread per connection, keep-alive):

- ``/``                 200 ``ok``
- ``/status/<code>``    that status (e.g. 429 with ``Retry-After: 1``, 503)
- ``/delay/<ms>``       wait ``ms`` milliseconds, then 200 (keep-alive: a slow target)
- ``/reset``            read the request, then reset the connection (SO_LINGER 0 → RST)
- ``/close``            read the request, then close cleanly without a reply
- ``/garbage``          answer bytes that are not HTTP at all, then close
- ``/bad-status``       answer a malformed status line (``HTTP/1.1 abc``), then close
- ``/partial``          promise 1,000 body bytes, send 10, then close
- ``/hang``             read the request and never answer (until the server stops)

``on_accept`` overrides every path before any byte is read: ``"reset"`` resets each
connection right after accept, ``"hang"`` accepts and never reads. The server binds
127.0.0.1 on a free port only. ``requests`` counts the requests read, by path, and
``headers`` keeps the headers of every request read (for tests that check what was sent).
With ``tls`` (a server-side ``ssl.SSLContext``) every connection is TLS first (ALPN
http/1.1), for tests of certificate verification; ``url(..., host=...)`` then names the
host to ask for (resolve it to 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Literal

OnAccept = Literal["reset", "hang"] | None
LOOPBACK = "127.0.0.1"
_MAX_HEAD_BYTES = 64 * 1024
_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}
GARBAGE = b"\x00\x17 this is not HTTP \xff\xfe\r\n\r\n"


def _reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _response(status: int, body: bytes, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
    return head.encode("ascii") + body


class Misbehaving:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, on_accept: OnAccept = None, tls: ssl.SSLContext | None = None) -> None:
        self.on_accept = on_accept
        self.tls = tls
        self.port = 0
        self.requests: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()

    def __repr__(self) -> str:
        return f"Misbehaving(port={self.port}, on_accept={self.on_accept!r})"

    def url(self, path: str = "/", host: str = LOOPBACK) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}/{path.lstrip('/')}"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Misbehaving:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(512)
        listener.settimeout(0.05)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        """Stop accepting, wake every waiting handler, close every connection, join."""
        self._stopping.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(timeout=5.0)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Misbehaving:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _spawn(self, func: object, *args: object) -> None:
        thread = threading.Thread(target=func, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, _peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            if self.on_accept == "reset":
                _reset(conn)
                continue
            conn.settimeout(None)
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.on_accept == "hang":
                self._stopping.wait()
                return
            if self.tls is not None:
                conn = self._wrap(conn)
            for path in self._requests(conn):
                if not self._answer(conn, path):
                    return
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _wrap(self, conn: socket.socket) -> socket.socket:
        """TLS handshake on the connection (raises ssl.SSLError, an OSError, on failure)."""
        assert self.tls is not None
        with self._lock:
            self._conns.discard(conn)
            wrapped = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            self._conns.add(wrapped)
        try:
            wrapped.do_handshake()
        except OSError:
            with self._lock:
                self._conns.discard(wrapped)
            wrapped.close()
            raise
        return wrapped

    def _requests(self, conn: socket.socket) -> Iterator[str]:
        """The path of each request on the connection (bodies read and dropped)."""
        buffer = b""
        while not self._stopping.is_set():
            while b"\r\n\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk or len(buffer) > _MAX_HEAD_BYTES:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            path = parts[1] if len(parts) == 3 else "?"
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            while len(buffer) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            buffer = buffer[length:]
            with self._lock:
                self.requests[path] += 1
                self.headers.append(headers)
            yield path

    def _answer(self, conn: socket.socket, path: str) -> bool:
        """Answer one request; False when the connection is done with."""
        _, _, rest = path.partition("/")
        route, _, arg = rest.partition("/")
        if route == "" and not arg:
            conn.sendall(_response(200, b"ok\n"))
        elif route == "status" and arg.isdigit():
            code = int(arg)
            extra = "Retry-After: 1\r\n" if code in (429, 503) else ""
            conn.sendall(_response(code, f"status {code}\n".encode(), extra))
        elif route == "delay" and arg.isdigit():
            if self._stopping.wait(int(arg) / 1000):
                return False
            conn.sendall(_response(200, b"ok\n"))
        elif route == "reset":
            _reset(conn)
            return False
        elif route == "close":
            return False
        elif route == "garbage":
            conn.sendall(GARBAGE)
            return False
        elif route == "bad-status":
            conn.sendall(b"HTTP/1.1 abc\r\nContent-Length: 0\r\n\r\n")
            return False
        elif route == "partial":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            return False
        elif route == "hang":
            self._stopping.wait()
            return False
        else:
            conn.sendall(_response(404, b"not found\n"))
        return True
