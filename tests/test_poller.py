"""harness.wire.poller: the worker's epoll set, each entry carrying its connection number."""

from __future__ import annotations

import socket

import pytest

from harness.wire.poller import READ, WRITE, Poller


def test_readable_and_writable_entries_come_back_as_their_numbers() -> None:
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    p = Poller()
    try:
        p.register(a, READ, 7)
        p.register(c, WRITE, 9)
        assert p.ready(0) == ([], [9])  # c's buffer has room; nothing to read on a yet
        b.send(b"x")
        readable, writable = p.ready(0.1)
        assert readable == [7] and writable == [9]
        p.modify(c, READ, 11)
        d.send(b"y")
        assert sorted(p.ready(0.1)[0]) == [7, 11]
        assert a in p and c in p and b not in p
        events = {e.data: flags for e, flags in p.select(0)}
        assert events == {7: READ, 11: READ}
    finally:
        p.close()
        for s in (a, b, c, d):
            s.close()


def test_a_peer_closing_wakes_the_reader_and_unregister_forgets() -> None:
    a, b = socket.socketpair()
    p = Poller()
    try:
        p.register(a, READ, 3)
        b.close()  # EOF (and HUP) is readable: the reader finds the close
        assert p.ready(0.1)[0] == [3]
        p.unregister(a)
        assert a not in p and p.ready(0) == ([], [])
        with pytest.raises(KeyError):
            p.unregister(a)
        with pytest.raises(KeyError):
            p.modify(a, READ, 3)
    finally:
        p.close()
        a.close()


def test_a_wanted_wake_up_is_armed_only_when_the_poll_would_sleep() -> None:
    """Timer.want + Poller.ready_timed: with an event ready, the timer is left alone (arming
    it costs more than the poll); with none, it is armed and wakes the poll at its time."""
    import time

    from harness.wire.timer import Timer
    t = Timer.create()
    assert t is not None
    a, b = socket.socketpair()
    p = Poller()
    try:
        t.clear()
        p.register(t, READ, -1)
        p.register(a, READ, 4)
        b.send(b"x")
        t.want(time.monotonic_ns() + 20_000_000)
        armed = t.armed_at
        assert p.ready_timed(1.0, t) == ([4], [])
        assert t.armed_at == armed and t.due == 0  # not armed, and the wish forgotten
        a.recv(1)
        at = time.monotonic_ns() + 20_000_000
        t.want(at)
        t0 = time.monotonic_ns()
        assert p.ready_timed(1.0, t) == ([-1], [])  # nothing else: the timer wakes it
        assert at <= time.monotonic_ns() < t0 + 500_000_000 and t.armed_at == at
        t.clear()
        t.want(time.monotonic_ns() + 20_000_000)
        assert p.ready_timed(0.0, t) == ([], []) and t.due == 0  # a poll that never waits
    finally:
        p.close()
        t.close()
        for s in (a, b):
            s.close()
