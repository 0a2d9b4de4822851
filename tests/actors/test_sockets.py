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


def _wait(w: SocketWatch, until: float) -> tuple[list[tuple[int, int]], int]:
    """What the engine does: wait again until ``until`` unless something is ready; what was
    ready, and how many waits it took."""
    waits = 0
    while True:
        waits += 1
        ready = w.poll(until - time.monotonic())
        if ready or time.monotonic() >= until:
            return ready, waits


@pytest.mark.parametrize("timeout_s", [0.0003, 0.0017])
def test_a_timed_wait_takes_one_wake_up_and_never_ends_early(
        watch: SocketWatch, timeout_s: float) -> None:
    for _ in range(20):
        start = time.monotonic()
        assert watch.poll(timeout_s) == []
        # one call waits it all (the fallback: its whole ms, or the sub-ms wait asleep)
        whole_s = timeout_s if watch._select_fds is not None or timeout_s < 0.001 else 0.001
        assert time.monotonic() - start >= whole_s
        ready, waits = _wait(watch, time.monotonic() + timeout_s)
        assert ready == []
        # select() waits the whole time at once; the fallback may need a second wait for
        # the sub-ms rest of a wait over 1 ms (whole ms in epoll, then a sleep)
        assert waits == 1 if watch._select_fds is not None else waits <= 2


def test_a_socket_that_becomes_ready_ends_the_wait_at_once(watch: SocketWatch) -> None:
    left, right = socket.socketpair()
    with left, right:
        watch.on_socket(pycurl.POLL_IN, left.fileno(), None, None)
        timer = threading.Timer(0.05, right.send, (b"x",))
        start = time.monotonic()
        timer.start()
        ready, _ = _wait(watch, start + 5.0)
        timer.join()
        assert ready == [(left.fileno(), pycurl.CSELECT_IN)]
        assert time.monotonic() - start < 2.0  # woken by the data, not by the 5 s timeout


def test_the_wake_fd_ends_the_wait_and_is_consumed(watch: SocketWatch) -> None:
    timer = threading.Timer(0.05, os.eventfd_write, (watch.wake_fd, 1))
    start = time.monotonic()
    timer.start()
    assert watch.poll(5.0) == []
    timer.join()
    assert watch.poll(float("nan")) == []  # not a wait at all
    assert time.monotonic() - start < 2.0
    with pytest.raises(BlockingIOError):  # read by poll(): the next wait is not cut short
        os.eventfd_read(watch.wake_fd)
