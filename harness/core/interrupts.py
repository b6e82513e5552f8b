"""SIGINT and SIGTERM for a run: one handler for both, in the coordinator's process only.
(:func:`handled` installs it; a built-in server's stopper goes through it too.)

A terminal's Ctrl-C and ``timeout`` signal the whole foreground process group. Workers
ignore both (the coordinator stops them over their pipes) and the embedded server runs in
a session of its own, so only the coordinator decides what a signal means:

- *raising* (the default): the signal raises KeyboardInterrupt at once, as Ctrl-C does.
  Used while setting up (starting the server, probing): everything started is stopped.
- *deferred* (while the workers measure, and until the results are written): the signal is
  only recorded, and the socket :meth:`fileno` becomes readable, so the coordinator can
  stop the workers between two pipe messages instead of in the middle of one. A signal
  never tears a pipe message in half, and never interrupts the writing of results.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self) -> None:
        self.owner = os.getpid()
        self.received: list[int] = []  # signal numbers, in order
        self.deferring = False
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    @property
    def requested(self) -> bool:
        return bool(self.received)

    def fileno(self) -> int:
        """Readable once a signal was recorded (for ``multiprocessing.connection.wait``)."""
        return self._r.fileno()

    def handler(self, signum: int, frame: Any) -> None:
        if os.getpid() != self.owner:
            return  # a forked worker before it set its own dispositions: the pipe stops it
        self.received.append(signum)
        if not self.deferring:
            raise KeyboardInterrupt
        with contextlib.suppress(OSError):
            self._w.send(b"\0")

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT and SIGTERM in this process while the block runs."""
        try:
            with handled(self.handler):
                yield self
        finally:
            self._r.close()
            self._w.close()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[Interrupts]:
        """Inside the block a signal is recorded, not raised."""
        before, self.deferring = self.deferring, True
        try:
            yield self
        finally:
            self.deferring = before


@contextlib.contextmanager
def handled(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM while the block runs, the previous ones after:
    the one place harness sets them (the coordinator's :class:`Interrupts`, a built-in
    server's stopper)."""
    old = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, signal.SIG_DFL if previous is None else previous)


def ignore_in_worker() -> None:
    """A worker leaves SIGINT and SIGTERM to its coordinator, which stops it by pipe."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> bool:
    """In a forked worker: SIGKILL when the process that forked it dies (a coordinator
    killed with SIGKILL cannot stop its workers by pipe, and they ignore SIGTERM). False
    when ``parent`` died before this call (the race after fork): the worker then returns."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    return os.getppid() == parent
