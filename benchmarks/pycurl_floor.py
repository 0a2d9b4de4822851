"""The pycurl floor: the least a Python program driving pycurl can spend per request.

``libcurl-c`` (``benchmarks/curl_ref.c``) is libcurl's own ceiling. Between it and rafale
sits the cost of driving libcurl from Python at all: pycurl's wrapping of every call, the
GIL it releases and takes back around each one, and the Python callbacks libcurl makes
(the write callback once per body, the timer callback once per added transfer). This
client measures that floor: rafale's own multi and easy handles (``actors.handles``, the
same options), driven by the smallest loop that can drive them — closed model, one epoll
updated at once from the socket callback, curl's timer, one ``getinfo`` per transfer to
count successes, no pacing, no stats. What rafale spends above this client is its own
engine's work; what this client spends above ``libcurl-c`` is the binding's.

It runs in the harness process and measures its main phase like ``curl_ref.c``: the
transfers completed after the warm-up, the process CPU (user+system) and the wall time
over the same span, sampled at the top of the loop.
"""

from __future__ import annotations

import contextlib
import math
import select
import time
from typing import Any

import pycurl

from benchmarks.shapes import Measurement, Shape, rafale_config
from rafale.actors.handles import NEGOTIATED_VERSION, new_easy, new_multi
from rafale.actors.sockets import EPOLL_ERR, EPOLL_FOR_CURL
from rafale.cluster.target import Target

__all__ = ["CLIENT", "run_pycurl_floor"]

CLIENT = "pycurl-floor"


def run_pycurl_floor(
    shape: Shape, target: Target, round_: int = 0, *, warmup_s: float = 1,
    duration_s: float = 5,
) -> Measurement:
    """Drive rafale's handles on ``shape`` with the smallest loop; measure the main phase."""
    config = rafale_config(shape, target, float(warmup_s + duration_s))
    multi = new_multi(config)
    epoll = select.epoll()
    watched: set[int] = set()
    deadline = [0.0]

    def on_socket(what: int, fd: int, _multi: Any, _data: Any) -> None:
        if what == pycurl.POLL_REMOVE:
            if fd in watched:
                watched.discard(fd)
                with contextlib.suppress(OSError):  # closed: it left the epoll by itself
                    epoll.unregister(fd)
            return
        if fd in watched:
            epoll.modify(fd, EPOLL_FOR_CURL[what])
        else:
            epoll.register(fd, EPOLL_FOR_CURL[what])
            watched.add(fd)

    def on_timer(timeout_ms: int) -> None:
        deadline[0] = math.inf if timeout_ms < 0 else time.monotonic() + timeout_ms / 1e3

    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    handles = [new_easy(config) for _ in range(shape.in_flight)]
    for easy in handles:
        multi.add_handle(easy)
    unseen = set(handles)  # handles whose protocol is not known yet (first answer tells)
    counting = False
    succeeded = failed = 0
    versions: dict[str, int] = {}
    start = time.monotonic()
    main_at, end_at = start + warmup_s, start + warmup_s + duration_s
    cpu0 = wall0 = 0.0
    socket_action, info_read, poll = multi.socket_action, multi.info_read, epoll.poll
    try:
        while True:
            now = time.monotonic()
            if not counting and now >= main_at:
                counting, cpu0, wall0 = True, time.process_time(), now
                succeeded = failed = 0
            if now >= end_at:
                break
            for fd, events in poll(max(0.0, min(deadline[0], end_at) - now)):
                mask = ((pycurl.CSELECT_IN if events & select.EPOLLIN else 0)
                        | (pycurl.CSELECT_OUT if events & select.EPOLLOUT else 0)
                        | (pycurl.CSELECT_ERR if events & EPOLL_ERR else 0))
                socket_action(fd, mask)
            if deadline[0] <= time.monotonic():
                deadline[0] = math.inf
                socket_action(pycurl.SOCKET_TIMEOUT, 0)
            while True:
                queued, ok, bad = info_read()
                for easy in ok:
                    multi.remove_handle(easy)
                    status = easy.getinfo(pycurl.RESPONSE_CODE)
                    if unseen and easy in unseen:
                        unseen.discard(easy)
                        version = NEGOTIATED_VERSION.get(
                            easy.getinfo(pycurl.INFO_HTTP_VERSION), "?")
                        versions[version] = versions.get(version, 0) + 1
                    if 200 <= status < 400:
                        succeeded += 1
                    else:
                        failed += 1
                    multi.add_handle(easy)
                for easy, _code, _message in bad:
                    multi.remove_handle(easy)
                    failed += 1
                    multi.add_handle(easy)
                if not queued:
                    break
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
    finally:
        for easy in handles:
            with contextlib.suppress(pycurl.error):  # one not on the multi (after an error)
                multi.remove_handle(easy)
            easy.close()
        multi.close()
        epoll.close()
    return Measurement(
        client=CLIENT,
        shape=shape.name,
        round=round_,
        duration_s=wall_s,
        succeeded=succeeded,
        failed=failed,
        cpu_s=cpu_s,
        extra={"version": versions},  # handles by the protocol of their first answer
    )
