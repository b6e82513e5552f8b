"""The transport against real loopback sockets whose other end the test holds: connect
failures, whole frames only into the round, the one fail path, queue and flush."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from harness.core.result import Share
from harness.protocols.redis.resp import Resp
from harness.wire import framing
from harness.wire.batch import Outbound
from harness.wire.connects import LAUNCH_BATCH, open_all
from harness.wire.poller import Poller
from harness.wire.protocol import Stamped
from harness.wire.rounds import Early, RoundBuffer
from harness.wire.transport import Transport
from workloads.base import Kind

pytestmark = pytest.mark.e2e  # real loopback sockets

SIZE = 64
FRAME = (SIZE - 4).to_bytes(4, "big") + b"s" * (SIZE - 4)  # a whole len32 frame of SIZE
PING, PONG = b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"


class Events:
    """The sink: what the transport reported, in order."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.closed_: list[int] = []
        self.connected_: list[int] = []
        self.backlog: list[int] = []
        self.rounds: list[dict[int, bytes]] = []
        self.unparsed_: list[bytes] = []
        self.elapsed: list[int] = []  # connect times, ns, in the order reported
        self.launched_at_connect: list[int] = []  # connects begun when each was reported
        self.tp: Transport | None = None
        self.walks: list[list[int] | None] = []  # each round's frame starts
        self.early: list[tuple[list[int], list[int], list[int]]] = []
        self.peers: list[socket.socket] = []  # server ends: what each got by a round's end
        self.peer_got: list[list[bytes]] = []

    def error(self, kind: str, count: int, now: int) -> None:
        self.errors += [kind] * count

    def closed(self, i: int) -> None:
        self.closed_.append(i)

    def connected(self, i: int, elapsed_ns: int) -> None:
        assert elapsed_ns >= 0
        self.connected_.append(i)
        self.elapsed.append(elapsed_ns)
        if self.tp is not None:
            self.launched_at_connect.append(int(np.count_nonzero(self.tp.started)))

    def backlogged(self, i: int) -> None:
        self.backlog.append(i)

    def unparsed(self, data: memoryview) -> None:
        self.unparsed_.append(bytes(data))

    def frames(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
               seg_t: list[int], walk: list[int] | None) -> None:
        starts = [0, *seg_end[:-1]]
        self.rounds.append({c: bytes(buf[a:b]) for c, a, b in
                            zip(seg_conn, starts, seg_end, strict=True)})
        self.walks.append(None if walk is None else list(walk))
        self.peer_got.append([_drain(p) for p in self.peers])

    def sent_early(self, conns: list[int], counts: list[int], times: list[int]) -> None:
        self.early.append((list(conns), list(counts), list(times)))


def _drain(s: socket.socket) -> bytes:
    """What the server end ``s`` has received so far (without waiting)."""
    got = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := s.recv(65536, socket.MSG_DONTWAIT):
            got += chunk
    return got


def transport(port: int, n: int, events: Events, resp: bool = False) -> Transport:
    share = Share(worker=0, gids=np.arange(n), node=np.zeros(n, dtype=np.int64),
                  sends=np.ones(n, dtype=bool), budget=None, rate=0.0,
                  expect_deliveries=None, key=1)
    out = Outbound(framing.LEN32, [Kind("msg", 1.0, SIZE)], [b"x" * SIZE], 1, 0, 1)
    proto = Resp([(PING,)], framing.LEN32, out, 1 << 20, 1, n, 0) if resp else \
        Stamped(framing.LEN32, out, SIZE, 1 << 20, 1)
    return Transport(share, [(socket.AF_INET, ("127.0.0.1", port))], (),
                     Poller(), RoundBuffer(1 << 20), proto, events)


@contextlib.contextmanager
def connected(n: int, resp: bool = False
              ) -> Iterator[tuple[Transport, Events, list[socket.socket]]]:
    """``n`` connections to a listener the test holds; the server ends, by local number
    (``resp``: the protocol is redis RESP, else stamped len32 frames)."""
    lsock = socket.create_server(("127.0.0.1", 0))
    events = Events()
    tp = transport(lsock.getsockname()[1], n, events, resp)
    peers: list[socket.socket] = []
    try:
        assert not open_all(tp, n, 0.0, 5 * 10**9, time.monotonic_ns() + 5 * 10**9, None)
        by_port = {}
        for _ in range(n):
            s, addr = lsock.accept()
            by_port[addr[1]] = s
        peers = [by_port[tp.socks[i].getsockname()[1]] for i in range(n)]
        yield tp, events, peers
    finally:
        tp.close_all()
        for s in peers:
            s.close()
        lsock.close()


def read_until(tp: Transport, events: Events, rounds: int = 1) -> None:
    deadline = time.monotonic() + 5
    while len(events.rounds) < rounds and time.monotonic() < deadline:
        ready = tp.poll(0.05, None)
        if ready:
            tp.read_round(ready)


def test_connects_succeed_and_are_reported_once_each() -> None:
    with connected(3) as (tp, events, _):
        assert sorted(events.connected_) == [0, 1, 2] and tp.alive.all()
        assert events.errors == []


def test_connect_time_runs_from_the_connect_call_of_each_connection() -> None:
    lsock = socket.create_server(("127.0.0.1", 0))
    events = Events()
    tp = transport(lsock.getsockname()[1], 1, events)
    try:
        t0 = time.monotonic_ns()
        assert tp.start_connect(0)  # the caller sets no start time: the transport does
        deadline = time.monotonic() + 5
        while not events.connected_ and time.monotonic() < deadline:
            for key, _ in tp.sel.select(0.05):
                tp.finish_connect(key.data)
        spent = time.monotonic_ns() - t0
    finally:
        tp.close_all()
        lsock.close()
    assert events.connected_ == [0] and 0 < events.elapsed[0] <= spent


def test_connects_settle_while_later_ones_are_still_being_launched() -> None:
    """Opening many at once: the first connects are reported done after a batch of
    launches, not after all of them (their times would include every later launch)."""
    n = 8 * LAUNCH_BATCH
    lsock = socket.create_server(("127.0.0.1", 0), backlog=2 * n)
    events = Events()
    tp = transport(lsock.getsockname()[1], n, events)
    events.tp = tp
    try:
        assert not open_all(tp, n, 0.0, 5 * 10**9, time.monotonic_ns() + 10 * 10**9, None)
    finally:
        tp.close_all()
        lsock.close()
    assert len(events.connected_) == n and events.errors == []
    assert events.launched_at_connect[0] <= 2 * LAUNCH_BATCH < n


def test_a_refused_connect_is_counted_once_and_closed() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    events = Events()
    tp = transport(s.getsockname()[1], 2, events)
    try:
        open_all(tp, 2, 0.0, 5 * 10**9, time.monotonic_ns() + 5 * 10**9, None)
    finally:
        s.close()
    assert events.errors == ["connect_refused"] * 2
    assert sorted(events.closed_) == [0, 1] and tp.socks == [None, None]
    assert not tp.alive.any()


def test_only_whole_frames_reach_the_round_and_a_partial_tail_waits() -> None:
    with connected(2) as (tp, events, peers):
        peers[0].sendall(FRAME + FRAME[:20])
        peers[1].sendall(FRAME * 2)
        read_until(tp, events)
        while len(events.rounds[0]) < 2:  # the two reads may come in separate rounds
            read_until(tp, events, len(events.rounds) + 1)
        got = {c: b for r in events.rounds for c, b in r.items()}
        assert got == {0: FRAME, 1: FRAME * 2}
        assert tp.pend_in[0] == FRAME[:20]
        peers[0].sendall(FRAME[20:])
        read_until(tp, events, len(events.rounds) + 1)
        assert events.rounds[-1] == {0: FRAME} and tp.pend_in[0] == b""
        assert events.errors == []


def test_a_prefix_that_is_not_ours_keeps_the_frames_before_it_and_fails_once() -> None:
    with connected(1) as (tp, events, peers):
        peers[0].sendall(FRAME + b"\x7f\x00\x00\x00junk")
        read_until(tp, events)
        deadline = time.monotonic() + 5
        while tp.alive[0] and time.monotonic() < deadline:
            read_until(tp, events, len(events.rounds) + 1)
        assert events.rounds[0] == {0: FRAME}
        assert events.errors == ["protocol"] and events.closed_ == [0]
        assert events.unparsed_ == [b"\x7f\x00\x00\x00junk"]  # what broke it, for a diagnosis


@pytest.mark.parametrize(("tail", "kind"), [(b"", "closed"), (FRAME[:10], "protocol")])
def test_eof_is_a_close_after_whole_frames_and_junk_after_a_partial_one(tail: bytes,
                                                                       kind: str) -> None:
    with connected(1) as (tp, events, peers):
        peers[0].sendall(FRAME + tail)
        peers[0].shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 5
        while tp.alive[0] and time.monotonic() < deadline:
            ready = tp.poll(0.05, None)
            if ready:
                tp.read_round(ready)
        assert events.rounds == [{0: FRAME}]
        assert events.errors == [kind] and tp.socks[0] is None


def test_a_full_socket_queues_the_rest_and_flushes_when_writable() -> None:
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than the kernel buffers hold
    with connected(1) as (tp, events, peers):
        tp.send(0, memoryview(payload))
        assert tp.blocked[0] and events.backlog == [0] and tp.pend_out[0]
        got = bytearray()
        peers[0].settimeout(0.05)
        deadline = time.monotonic() + 10
        while len(got) < len(payload) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                got += peers[0].recv(1 << 20)
            tp.poll(0, None)
        assert bytes(got) == payload
        assert not tp.blocked[0] and tp.pend_out[0] is None and events.errors == []


def test_a_send_to_a_reset_connection_goes_through_the_one_fail_path() -> None:
    with connected(1) as (tp, events, peers):
        peers[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        peers[0].close()  # RST
        deadline = time.monotonic() + 5
        while tp.alive[0] and time.monotonic() < deadline:
            tp.send_round(np.array([0]), [SIZE], memoryview(FRAME))
            time.sleep(0.01)
        # ECONNRESET or EPIPE, by when the RST landed: counted once, by its own kind
        assert events.errors in (["reset"], ["closed"]) and events.closed_ == [0]
        assert tp.socks[0] is None


def test_reads_equal_to_copies_of_the_last_reply_are_that_many_replies_others_are_cut(
) -> None:
    with connected(1, resp=True) as (tp, events, peers):
        codes = tp.protocol.round_codes
        for k, (sent, walk, got) in enumerate([
                (PONG, [0], [0]),  # cut, and learnt as the template
                (PONG * 3, [0, 7, 14], [0, 0, 0]),  # three copies: three replies
                (b"-OOPS\r\n", [0], [2]),  # as long as +PONG, not equal: an error reply
                (b"+PONG\r\n+PONG\r\n-OOPS\r\n+PON", [0, 7, 14], [0, 0, 2])]):
            peers[0].sendall(sent)
            read_until(tp, events, k + 1)
            assert events.walks[-1] == walk and codes == got
            codes.clear()
        assert tp.protocol.names[2] == "redis_OOPS" and tp.pend_in[0] == b"+PON"


def test_a_connection_sends_its_next_requests_within_the_round_when_owed_replies_come(
) -> None:
    """Early sending: a read of k whole replies on a connection that owes k sends k
    requests before the round is handed over; not for replies nobody asked for, nor at or
    after ``until``."""
    with connected(2, resp=True) as (tp, events, peers):
        events.peers = peers
        for p in peers:
            p.sendall(PONG)  # the template is learnt (no early send without one)
        read_until(tp, events, 1)
        tp.early = early = Early(PING, np.array([2, 0], dtype=np.int64))
        early.until = time.monotonic_ns() + 60 * 10**9
        before = time.monotonic_ns()
        peers[0].sendall(PONG * 2)
        peers[1].sendall(PONG)  # owes nothing: no request for it
        while len(events.rounds) < 2 or len(events.rounds[-1]) < 2:
            read_until(tp, events, len(events.rounds) + 1)
        assert [b"".join(g[0] for g in events.peer_got), events.peer_got[-1][1]] == \
            [PING * 2, b""]  # the requests were at the server before the round's end
        ((conns, counts, (t,)),) = events.early
        assert (conns, counts) == ([0], [2]) and before <= t <= time.monotonic_ns()
        early.until = time.monotonic_ns()  # sending is over
        peers[0].sendall(PONG)
        read_until(tp, events, len(events.rounds) + 1)
        assert len(events.early) == 1 and _drain(peers[0]) == b""
