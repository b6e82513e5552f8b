"""A Linux timerfd on CLOCK_MONOTONIC, for waking a selectors loop at an exact ns time.

``epoll.poll`` rounds its timeout *up* to whole milliseconds, so an open-loop schedule
driven by select timeouts sends up to 1 ms late (and latency from the intended time shows
it). A timerfd registered in the same selector fires within tens of µs. Python gains
``os.timerfd_create`` only in 3.13, so this uses libc through ctypes; where that fails,
``Timer.create()`` returns None and the caller falls back to select timeouts.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import time

from harness import accel
from harness.core.units import SEC

_native = accel.native()[0]  # harness._hot's timer calls, when built

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class Timer:
    """One-shot absolute timer; ``fileno()`` becomes readable when it fires."""

    def __init__(self, libc: ctypes.CDLL, fd: int) -> None:
        self._libc = libc
        self._fd = fd
        self._spec = _Itimerspec()
        self.armed_at = 0
        self.due = 0  # the wake-up the loop wants, armed only if the poll has to sleep

    @classmethod
    def create(cls) -> Timer | None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        timer = cls(libc, fd)
        timer.arm(time.monotonic_ns() + 1)  # prove the clocks agree: it must fire at once
        return timer

    def fileno(self) -> int:
        return self._fd

    def arm(self, at_ns: int) -> None:
        """Fire at ``at_ns`` (``time.monotonic_ns`` clock); re-arming replaces the old time."""
        if at_ns == self.armed_at:
            return
        self.armed_at = at_ns
        if _native is not None:  # the same call, without ctypes' ~2 µs (harness._hot)
            _native.timer_arm(self._fd, at_ns)
            return
        v = self._spec.it_value
        v.tv_sec, v.tv_nsec = divmod(max(at_ns, 1), SEC)
        self._libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)

    def want(self, at_ns: int) -> None:
        """Wake at ``at_ns`` if the next poll would otherwise sleep past it. Arming costs
        10-20 µs on a VM (``timerfd_settime`` reprograms the hardware timer; docs/
        PERFORMANCE.md), so ``Poller.ready_timed`` arms it only when no event is ready."""
        self.due = at_ns

    def sleep_until(self, at_ns: int) -> None:
        """Block until ``at_ns`` with no other wake-up: the fd alone is waited on (socket
        events in the selector wait for the next poll). As precise as :meth:`want`."""
        now = time.monotonic_ns()
        if at_ns <= now:
            return
        self.arm(at_ns)
        select.select([self._fd], [], [], (at_ns - now) / SEC + 0.01)
        self.clear()

    def clear(self) -> None:
        """Consume the expiry so the fd stops being readable."""
        if _native is not None:
            _native.timer_clear(self._fd)
        else:
            with contextlib.suppress(BlockingIOError):
                os.read(self._fd, 8)
        self.armed_at = 0

    def close(self) -> None:
        os.close(self._fd)
