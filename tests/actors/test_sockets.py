"""SocketWatch waits: never early, woken at once by a ready socket or the wake fd, and the
same in its fallback for an epoll fd too high for select()."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pycurl
import pytest

from rafale.actors import sockets
from rafale.actors.sockets import SocketWatch


@pytest.fixture(params=["select", "fallback"])
def watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[SocketWatch]:
    if request.param == "fallback":  # as if the process held 1,024 fds already
        monkeypatch.setattr(sockets, "SELECT_FD_LIMIT", 0)
    wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    w = SocketWatch(wake_fd)
    assert (w._select_fds is None) == (request.param == "fallback")
    yield w
    w.close()
    os.close(wake_fd)


def _wait(w: SocketWatch, until: float) -> list[tuple[int, int]]:
    """What the engine does: wait again until ``until`` unless something is ready."""
    while True:
        ready = w.poll(until - time.monotonic())
        if ready or time.monotonic() >= until:
            return ready


@pytest.mark.parametrize("timeout_s", [0.0003, 0.0017])
def test_a_timed_wait_never_ends_early(watch: SocketWatch, timeout_s: float) -> None:
    for _ in range(20):
        start = time.monotonic()
        assert _wait(watch, start + timeout_s) == []
        assert time.monotonic() - start >= timeout_s


def test_a_socket_that_becomes_ready_ends_the_wait_at_once(watch: SocketWatch) -> None:
    left, right = socket.socketpair()
    with left, right:
        watch.on_socket(pycurl.POLL_IN, left.fileno(), None, None)
        timer = threading.Timer(0.05, right.send, (b"x",))
        start = time.monotonic()
        timer.start()
        ready = _wait(watch, start + 5.0)
        timer.join()
        assert ready == [(left.fileno(), pycurl.CSELECT_IN)]
        assert time.monotonic() - start < 2.0  # woken by the data, not by the 5 s timeout


def test_the_wake_fd_ends_the_wait_and_is_consumed(watch: SocketWatch) -> None:
    timer = threading.Timer(0.05, os.eventfd_write, (watch.wake_fd, 1))
    start = time.monotonic()
    timer.start()
    assert watch.poll(5.0) == []
    timer.join()
    assert time.monotonic() - start < 2.0
    with pytest.raises(BlockingIOError):  # read by poll(): the next wait is not cut short
        os.eventfd_read(watch.wake_fd)
