"""Opening a step's connections: the connect loop over a transport, at a rate, bounded by a
deadline, each connect timed when it completes."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.core.units import SEC
from harness.wire.transport import TIMER, Transport

LAUNCH_BATCH = 16  # connects begun per pass of the connect loop before settling the done
EXPIRE_EVERY_NS = 100_000_000  # the connect loop looks for expired connects this often


def open_all(tp: Transport, want: int, rate: float, timeout_ns: int, deadline_ns: int,
             stop: Callable[[], bool] | None) -> bool:
    """Open the first ``want`` connections, ``rate`` per second (0: at once), bounded by
    a deadline. True when ``stop()`` (polled each pass) abandoned the attempt.

    Each pass launches at most LAUNCH_BATCH connects, then settles those that completed
    (a poll without waiting while more are to launch), so a connect's time is taken when
    it completes, not after every other launch. Expired connects are looked for every
    EXPIRE_EVERY_NS, not on every pass."""
    launched = done = 0
    t0 = time.monotonic_ns()
    next_expire = t0 + EXPIRE_EVERY_NS
    mono = time.monotonic_ns
    while done < want:
        now = mono()
        allowed = want if rate <= 0 else min(want, int((now - t0) / SEC * rate) + 1)
        batch = min(allowed, launched + LAUNCH_BATCH)
        while launched < batch:
            done += not tp.start_connect(launched)
            launched += 1
        wait = 0.0 if launched < allowed else 0.005 if launched < want else 0.05
        for key, _ev in tp.sel.select(wait):
            if key.data != TIMER:
                done += tp.finish_connect(key.data)
        if stop is not None and stop():
            return True
        now = mono()
        if now >= next_expire:
            next_expire = now + EXPIRE_EVERY_NS
            done += tp.expire_connects(now, timeout_ns, launched)
        if now > deadline_ns:
            give_up(tp, want, launched)
            break
    return False


def give_up(tp: Transport, want: int, launched: int) -> None:
    """The connect deadline passed: every connect not done (or not begun) timed out."""
    for i in range(want):
        if i >= launched or (tp.socks[i] is not None and not tp.alive[i]):
            tp.fail(i, tp.late_kind(i))
