"""The worker's event loop poller: ``select.epoll`` with each file's number (an int: a
local connection, or harness.wire.transport.TIMER) kept in a dict beside it.

``selectors.EpollSelector`` builds a ``SelectorKey`` lookup and a tuple per event; a round
of 100 ready sockets paid ~60 µs for that alone (issue 12). :meth:`Poller.ready` gives the
readable and the writable numbers as two lists straight from ``epoll.poll``. The other
methods the transports call (``register``, ``modify``, ``unregister``, and ``select`` in
the connect loop) keep the ``selectors`` names, event flags and errors.
"""

from __future__ import annotations

import contextlib
import math
import select
import selectors
from typing import Protocol

from harness.wire import hot
from harness.wire.timer import Timer

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
NOT_OUT, NOT_IN = hot.NOT_OUT, hot.NOT_IN  # (anything but "writable" wakes the reader)
MAX_EVENTS = 4096  # most events one poll returns (the rest wait for the next round)


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def _fd(f: HasFileno | int) -> int:
    return f if isinstance(f, int) else f.fileno()


def _mask(events: int) -> int:
    return (select.EPOLLIN if events & READ else 0) | (select.EPOLLOUT if events & WRITE else 0)


class Poller:
    """An epoll set whose entries carry an int."""

    __slots__ = ("ep", "data", "handle")

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.data: dict[int, int] = {}
        self.handle = hot.poll_handle(self.ep)

    def register(self, f: HasFileno | int, events: int, data: int) -> None:
        fd = _fd(f)
        self.ep.register(fd, _mask(events))
        self.data[fd] = data

    def modify(self, f: HasFileno | int, events: int, data: int) -> None:
        fd = _fd(f)
        if fd not in self.data:
            raise KeyError(f"{f!r} is not registered")
        self.ep.modify(fd, _mask(events))
        self.data[fd] = data

    def unregister(self, f: HasFileno | int) -> None:
        """Forget ``f``; KeyError when it was not registered (as selectors)."""
        fd = _fd(f)
        del self.data[fd]
        with contextlib.suppress(OSError):  # closed already: epoll dropped it itself
            self.ep.unregister(fd)

    def __contains__(self, f: HasFileno | int) -> bool:
        return _fd(f) in self.data

    def ready(self, timeout_s: float) -> tuple[list[int], list[int]]:
        """Wait up to ``timeout_s`` (rounded up to whole ms, as selectors does): the numbers
        of the readable and of the writable entries."""
        return hot.epoll_ready(self.handle, timeout_s, MAX_EVENTS, self.data)  # (C if built)

    def ready_timed(self, timeout_s: float, timer: Timer | None
                    ) -> tuple[list[int], list[int]]:
        """As :meth:`ready`, arming the wake-up the timer wants (``Timer.want``) only when
        no event is ready: arming costs more than a poll that does not wait (10-20 µs on a
        VM, docs/PERFORMANCE.md), and a busy loop finds events ready most rounds."""
        if timer is None or not timer.due:
            return self.ready(timeout_s)
        ready, writable = self.ready(0.0)
        if not ready and not writable and timeout_s > 0:
            timer.arm(timer.due)
            ready, writable = self.ready(timeout_s)
        timer.due = 0
        return ready, writable

    def select(self, timeout_s: float | None = None) -> list[tuple[Entry, int]]:
        """selectors-style events: (an object with ``.data``, READ/WRITE flags)."""
        t = -1.0 if timeout_s is None else math.ceil(max(timeout_s, 0) * 1e3) * 1e-3
        out = []
        for fd, ev in self.ep.poll(t, MAX_EVENTS):
            flags = (WRITE if ev & NOT_IN else 0) | (READ if ev & NOT_OUT else 0)
            out.append((Entry(fd, self.data[fd]), flags))
        return out

    def close(self) -> None:
        self.ep.close()
        self.data.clear()


class Entry:
    """One event's file (``fd``) and number (``data``), as a SelectorKey has them."""

    __slots__ = ("fd", "data")

    def __init__(self, fd: int, data: int) -> None:
        self.fd = fd
        self.data = data
