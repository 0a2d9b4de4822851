"""A push service for tests and demos: the embedded target's ``--push`` mode.

Caddy terminates TLS and HTTP/2 (or 3) and proxies ``/push/*`` to this small aiohttp
server on loopback, which answers as a push service does (RFC 8030):

- 400 unless the request has ``Content-Encoding: aes128gcm``, a ``TTL`` and a ``vapid``
  Authorization (``vapid t=...,k=...``); the body says what is missing;
- 413 above 4,096 bytes;
- 410 for the ids listed as gone; 404 for an id outside ``known`` when a list is given;
- 429 with ``Retry-After`` the first time it sees an id of the throttled share (chosen by
  a hash of the id, so the same ids every run); 201 otherwise.

Every request is logged as one JSON line (id, status, bytes, time; the body in base64 for
the first ``keep_bodies`` delivered ones, so a test or notebook can decrypt what arrived).

    python -m rafale.cluster.target.push_emulator --listen 127.0.0.2:PORT --log FILE
        [--gone FILE] [--known FILE] [--throttle-share 0.05] [--retry-after-s 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

MAX_BODY_BYTES = 4096
_VAPID = re.compile(r"^vapid\s+t=[\w.-]+\s*,\s*k=[\w-]+$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


@dataclass
class PushService:
    """The answers of the emulated push service, and its log."""

    log: TextIO
    gone: frozenset[str] = frozenset()
    known: frozenset[str] | None = None
    throttle_share: float = 0.0
    retry_after_s: int = 1
    keep_bodies: int = 100
    seen: set[str] = field(default_factory=set)
    kept: int = 0

    def throttled(self, push_id: str) -> bool:
        digest = hashlib.blake2b(push_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.throttle_share

    def answer(self, push_id: str, headers: Any, body: bytes) -> tuple[int, str, dict[str, str]]:
        if not _ID.match(push_id):
            return 404, "no such subscription\n", {}
        if headers.get("Content-Encoding", "").lower() != "aes128gcm":
            return 400, "Content-Encoding must be aes128gcm\n", {}
        if not headers.get("TTL", "").strip().isdigit():
            return 400, "missing or bad TTL header\n", {}
        if not _VAPID.match(headers.get("Authorization", "").strip()):
            return 400, "Authorization must be vapid t=<JWT>,k=<key>\n", {}
        if len(body) > MAX_BODY_BYTES:
            return 413, "payload too large\n", {}
        if push_id in self.gone:
            return 410, "push subscription has unsubscribed or expired\n", {}
        if self.known is not None and push_id not in self.known:
            return 404, "no such subscription\n", {}
        first = push_id not in self.seen
        self.seen.add(push_id)
        if first and self.throttle_share and self.throttled(push_id):
            return 429, "too many requests\n", {"Retry-After": str(self.retry_after_s)}
        return 201, "", {"Location": f"/message/{push_id}"}

    async def handle(self, request: web.Request) -> web.Response:
        push_id = request.match_info["id"]
        body = await request.read()
        status, text, headers = self.answer(push_id, request.headers, body)
        entry: dict[str, Any] = {"id": push_id, "status": status, "bytes": len(body),
                                 "t": time.time()}
        if status == 201 and self.kept < self.keep_bodies:
            self.kept += 1
            entry["body_b64"] = base64.b64encode(body).decode()
        self.log.write(json.dumps(entry) + "\n")
        return web.Response(status=status, text=text or None, headers=headers)


def _ids(path: str | None) -> frozenset[str] | None:
    if path is None:
        return None
    return frozenset(line.strip() for line in Path(path).read_text().splitlines()
                     if line.strip())


def app(service: PushService) -> web.Application:
    application = web.Application(client_max_size=MAX_BODY_BYTES * 4)
    application.router.add_post("/push/{id}", service.handle)
    return application


async def _serve(service: PushService, host: str, port: int) -> None:
    runner = web.AppRunner(app(service), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"push emulator on {host}:{port}", flush=True)
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rafale.cluster.target.push_emulator")
    parser.add_argument("--listen", required=True, help="HOST:PORT on loopback")
    parser.add_argument("--log", required=True, help="JSON Lines log of every request")
    parser.add_argument("--gone", help="file of ids answered 410 (one per line)")
    parser.add_argument("--known", help="file of known ids (others: 404)")
    parser.add_argument("--throttle-share", type=float, default=0.0)
    parser.add_argument("--retry-after-s", type=int, default=1)
    parser.add_argument("--keep-bodies", type=int, default=100)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    with open(args.log, "a", buffering=1, encoding="utf-8") as log:
        service = PushService(log, _ids(args.gone) or frozenset(), _ids(args.known),
                              args.throttle_share, args.retry_after_s, args.keep_bodies)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(service, host.strip("[]"), int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
