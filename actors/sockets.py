"""curl's sockets in one epoll, with interest changes applied lazily, just before a wait.

libcurl tells the engine which sockets to watch through ``CURLMOPT_SOCKETFUNCTION``. It
changes its mind often: with HTTP/2 it asks for IN+OUT around every request it sends and
then for IN again; with HTTP/1.1 it drops a connection's socket after every response and
adds it back for the next request. Applying each change at once costs an ``epoll_ctl``
(and often two per request); here the callback only records what curl wants, and
:meth:`SocketWatch.poll` brings epoll in line once, so a change undone before the next
wait costs nothing.

A dropped socket stays registered until it fires (then it is removed), so re-adding it
is one ``modify``. A closed fd leaves epoll by itself: its entry is marked stale, and the
next registration of that number tries ``modify`` and falls back to ``register``.

Waits are to the microsecond, within the kernel's timer slack (50 µs, or 0.1 % of a long
wait): ``epoll_wait`` counts whole milliseconds (Python rounds a 0.3 ms wait up to 1 ms),
so :meth:`SocketWatch.poll` waits in ``select()`` on the epoll's own fd, which is readable
as soon as any watched socket is, with a microsecond timeout, then collects the events with
a zero-timeout ``epoll_wait``. One wake-up per wait, never late by the rounding, and never
blind to a socket that becomes ready meanwhile. select() takes only fds below
``FD_SETSIZE`` (1,024): a process that already holds that many when the engine starts gets
the epoll's whole milliseconds and a sleep for the sub-ms rest (two wake-ups per wait, and
deaf during the sleep, but never early and never late).
"""

from __future__ import annotations

import contextlib
import os
import select
import time

import pycurl

# curl's socket interest (CURLMOPT_SOCKETFUNCTION's ``what``) as epoll events; events that
# mean an error or hang-up, which curl is told as CSELECT_ERR
EPOLL_FOR_CURL = {
    pycurl.POLL_IN: select.EPOLLIN,
    pycurl.POLL_OUT: select.EPOLLOUT,
    pycurl.POLL_INOUT: select.EPOLLIN | select.EPOLLOUT,
}
EPOLL_ERR = select.EPOLLERR | select.EPOLLHUP
_STALE = -1  # registered once, but the fd may have been closed since
SELECT_FD_LIMIT = 1024  # FD_SETSIZE: select() refuses higher fds


class SocketWatch:
    """An epoll of curl's sockets plus one wake-up fd (for control calls)."""

    def __init__(self, wake_fd: int) -> None:
        self.epoll = select.epoll()
        fd = self.epoll.fileno()
        # select() waits on the epoll itself, when its fd is low enough for select()
        self._select_fds = [fd] if fd < SELECT_FD_LIMIT else None
        self.wake_fd = wake_fd
        self.epoll.register(wake_fd, select.EPOLLIN)
        self._want: dict[int, int] = {}  # what curl wants now; 0 = dropped
        self._have: dict[int, int] = {}  # what epoll has
        self._dirty: set[int] = set()

    def on_socket(self, what: int, fd: int, _multi: object, _data: object) -> None:
        """``CURLMOPT_SOCKETFUNCTION``: only record what curl wants."""
        if what == pycurl.POLL_REMOVE:
            self._want[fd] = 0
            if fd in self._have:
                self._have[fd] = _STALE
            return
        self._want[fd] = EPOLL_FOR_CURL[what]
        self._dirty.add(fd)

    def _sync(self) -> None:
        epoll, want, have = self.epoll, self._want, self._have
        for fd in self._dirty:
            mask = want.get(fd, 0)
            if not mask or have.get(fd) == mask:
                continue
            if fd in have:
                try:
                    epoll.modify(fd, mask)
                except FileNotFoundError:
                    epoll.register(fd, mask)
            else:
                epoll.register(fd, mask)
            have[fd] = mask
        self._dirty.clear()

    def poll(self, timeout_s: float) -> list[tuple[int, int]]:
        """Wait up to ``timeout_s`` (to the microsecond; 0: do not wait); return (fd, curl
        CSELECT mask) for curl's ready sockets.

        A wake-up on the wake fd is consumed and not returned."""
        if self._dirty:
            self._sync()
        if not timeout_s > 0:  # also NaN
            polled = self.epoll.poll(0)
        elif self._select_fds is not None:
            select.select(self._select_fds, (), (), timeout_s)
            polled = self.epoll.poll(0)
        elif timeout_s >= 0.001:  # whole ms in epoll; the caller waits again for the rest
            # Python rounds the timeout up to whole ms (0.067 s is 67.00000001 ms: 68): ask
            # for half a ms less than the whole ms wanted.
            polled = self.epoll.poll((int(timeout_s * 1000) - 0.5) / 1000)
        else:
            time.sleep(timeout_s)
            polled = self.epoll.poll(0)
        ready: list[tuple[int, int]] = []
        for fd, events in polled:
            if fd == self.wake_fd:
                os.eventfd_read(fd)
                continue
            if not self._want.get(fd):  # curl dropped it: stop watching it now
                self._have.pop(fd, None)
                with contextlib.suppress(OSError):
                    self.epoll.unregister(fd)
                continue
            mask = 0
            if events & select.EPOLLIN:
                mask |= pycurl.CSELECT_IN
            if events & select.EPOLLOUT:
                mask |= pycurl.CSELECT_OUT
            if events & EPOLL_ERR:
                mask |= pycurl.CSELECT_ERR
            ready.append((fd, mask))
        return ready

    def close(self) -> None:
        self.epoll.close()
