"""Each misbehaving server does exactly what its docstring says (plain blocking sockets)."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from harness.wire import framing, stamp
from harness.wire.framing import FrameError
from tests import servers

pytestmark = pytest.mark.e2e  # every test here starts a server or a subprocess

KEY = 0x5EED
FRAMINGS = ["newline", "len16", "len32"]


def make_frames(name: str, n: int, size: int = 64, seq0: int = 0) -> list[bytes]:
    """n stamped frames of ``size`` bytes on the wire, seq numbers seq0, seq0+1, ..."""
    fr = framing.get(name)
    ascii_ = name == "newline"
    seq = np.arange(seq0, seq0 + n, dtype=np.uint32)
    st = stamp.make(7, seq, 0, 0, 0, np.full(n, time.monotonic_ns(), dtype=np.uint64), KEY)
    raw = stamp.to_bytes(st, ascii_)
    pad = b"." * (size - fr.overhead() - raw.shape[1])
    return [fr.encode(bytes(raw[i]) + pad) for i in range(n)]


def decode(name: str, frames: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(seq numbers, check ok) of the stamps in ``frames``."""
    fr = framing.get(name)
    ascii_ = name == "newline"
    width = stamp.stamp_size(ascii_)
    raw = np.array([np.frombuffer(f[fr.header:fr.header + width], dtype=np.uint8)
                    for f in frames])
    st, ok = stamp.from_bytes(raw, ascii_, KEY)
    return st["seq"].astype(int), ok


class Client:
    """A blocking client socket that cuts what it reads into frames."""

    def __init__(self, handle: servers.Handle, name: str | None = None) -> None:
        self.fr = framing.get(name or handle.framing)
        self.sock = socket.create_connection(handle.address, timeout=3)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, frames: list[bytes]) -> None:
        self.sock.sendall(b"".join(frames))

    def read(self, count: int, timeout: float = 3.0) -> list[bytes]:
        """Exactly ``count`` frames (fewer only if the peer closes: then it raises)."""
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            starts, cut = self.fr.cut(self.buf, 0, len(self.buf), 1 << 20)
            take = min(len(starts), count - len(out))
            if take:
                ends = [*starts[1:], cut]
                out += [self.buf[s:e] for s, e in zip(starts[:take], ends[:take], strict=True)]
                self.buf = self.buf[ends[take - 1]:]
                continue
            left = deadline - time.monotonic()
            assert left > 0, f"only {len(out)} of {count} frames within {timeout} s"
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError(f"EOF after {len(out)} of {count} frames")
            self.buf += data
        return out

    def silent(self, wait: float = 0.1) -> bool:
        """True when nothing more (not even EOF) arrives within ``wait`` s."""
        if self.buf:
            return False
        self.sock.settimeout(wait)
        try:
            self.buf = self.sock.recv(1 << 16)
        except TimeoutError:
            return True
        return False

    def rtt(self, frame: bytes) -> float:
        t = time.monotonic()
        self.send([frame])
        assert self.read(1) == [frame]
        return time.monotonic() - t

    def close(self) -> None:
        self.sock.close()


# --- framework ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", FRAMINGS)
def test_echo_buffers_partial_frames(name: str) -> None:
    frames = make_frames(name, 20, size=100)
    with servers.start("echo", framing=name) as srv:
        c = Client(srv)
        blob = b"".join(frames)
        for a, b in ((0, 37), (37, 150), (150, 151), (151, len(blob))):
            c.sock.sendall(blob[a:b])
            time.sleep(0.005)
        assert c.read(20) == frames
        assert c.silent()
        c.close()


def test_handle_lifecycle() -> None:
    srv = servers.start("echo")
    assert srv.address == ("127.0.0.1", srv.port) and srv.alive()
    assert abs(srv.started - time.monotonic()) < 5
    srv.stop()
    srv.stop()  # idempotent
    assert not srv.alive() and not psutil.pid_exists(srv.pid)
    assert srv.exit_status == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(srv.address, timeout=1)


def test_children_do_not_hold_inherited_sockets() -> None:
    a = servers.start("echo")
    c = Client(a)
    with servers.start("echo") as b:  # forked while a's listener and c were open here
        c.close()
        a.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(a.address, timeout=1)
        assert b.alive()


def test_server_exits_when_its_starter_dies() -> None:
    code = ("import os; from tests import servers; h = servers.start('echo'); "
            "print(h.pid, h.port, flush=True); os._exit(0)")  # no stop(), no atexit
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=20, check=True, cwd=Path(__file__).parent.parent).stdout
    pid, port = map(int, out.split())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"server {pid} outlived the process that started it")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_bad_arguments_fail_in_the_caller() -> None:
    with pytest.raises(ValueError, match="unknown server behaviour"):
        servers.start("nope")
    with pytest.raises(ValueError, match="unknown framing"):
        servers.start("echo", framing="xml")
    with pytest.raises(TypeError, match="delay"):
        servers.start("delay")
    with pytest.raises(TypeError, match="unexpected keyword"):
        servers.start("drop", every=2, bogus=1)
    with pytest.raises(ValueError, match="pause < period"):
        servers.start("stall", period=0.1, pause=0.5)


def test_child_failure_is_reported() -> None:
    with pytest.raises(RuntimeError, match="did not start"):
        servers.start("echo", cpu=10_000)


def test_cpu_pinning() -> None:
    with servers.start("echo", cpu=0) as srv:
        assert psutil.Process(srv.pid).cpu_affinity() == [0]


def test_refuse() -> None:
    with servers.closed_port() as h:
        for _ in range(3):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(h.address, timeout=1)
    with servers.start("refuse") as h, pytest.raises(ConnectionRefusedError):
        socket.create_connection(h.address, timeout=1)


# --- timing behaviours ---------------------------------------------------------------------


def test_delay_is_precise() -> None:
    d = 0.04
    with servers.start("delay", framing="len32", delay=d) as srv:
        c = Client(srv)
        # Other jobs share this machine's cores, so a reply may now and then be a few ms
        # late for scheduling reasons: ask for 5 replies within 3 ms out of at most 15,
        # and none early or wildly late.
        late: list[float] = []
        for f in make_frames("len32", 15):
            late.append(c.rtt(f) - d)
            if sum(x <= 0.003 for x in late) == 5:
                break
        assert sum(x <= 0.003 for x in late) == 5, late
        assert min(late) >= 0 and max(late) < 0.05, late
        c.close()


def test_delay_with_thousands_in_flight() -> None:
    d = 0.1
    with servers.start("delay", framing="len16", delay=d) as srv:
        clients = [Client(srv) for _ in range(4)]
        sent = [make_frames("len16", 1000, size=40, seq0=1000 * i) for i in range(4)]
        t0 = time.monotonic()
        for c, frames in zip(clients, sent, strict=True):
            c.send(frames)
        t_sent = time.monotonic()
        first = clients[0].read(1)
        assert time.monotonic() - t0 >= d - 0.001
        got = [first + clients[0].read(999)] + [c.read(1000) for c in clients[1:]]
        assert time.monotonic() - t_sent < d + 0.2
        assert got == sent  # every frame, once, in order per connection
        for c in clients:
            c.close()


@pytest.mark.alone  # its windows are 5 ms wide: other tests' load moved a reply past one
def test_stall_windows() -> None:
    period, pause = 0.5, 0.2
    with servers.start("stall", period=period, pause=pause) as srv:
        c = Client(srv)
        frame = make_frames("len32", 1)[0]
        log = []  # (sent, replied)
        for _ in range(3000):
            if time.monotonic() > srv.started + 1.25:
                break
            t = time.monotonic()
            c.rtt(frame)
            log.append((t, time.monotonic()))
            time.sleep(0.005)
        c.close()
    for k in (1, 2):
        w0 = srv.started + k * period
        w1 = w0 + pause
        assert not [r for _s, r in log if w0 + 0.005 < r < w1]  # nothing during a stall
        held = [(s - w0, r - w1) for s, r in log if s < w1 <= r]  # the request caught
        assert len(held) == 1 and held[0][0] > -0.05 and 0 <= held[0][1] < 0.03, held
    normal = [r - s for s, r in log if not any(
        srv.started + k * period - 0.01 < r < srv.started + k * period + pause + 0.01
        for k in (1, 2))]
    assert len(normal) > 50 and np.median(normal) < 0.003 and max(normal) < 0.05


def arrivals(clients: list[Client], size: int, total: int) -> list[tuple[float, int]]:
    """(time, frames received so far over all clients) after each recv; bounded."""
    sel = selectors.DefaultSelector()
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)
    got, log = 0, []
    deadline = time.monotonic() + 5
    while got < total * size and time.monotonic() < deadline:
        for key, _mask in sel.select(0.5):
            data = key.data.sock.recv(1 << 16)
            assert data
            got += len(data)
            log.append((time.monotonic(), got // size))
    sel.close()
    assert got == total * size
    return log


def test_token_bucket_rate() -> None:
    rate = 2000
    with servers.start("token_bucket", rate=rate) as srv:
        a, b = Client(srv), Client(srv)
        a.send(make_frames("len32", 1300, size=32))
        b.send(make_frames("len32", 1300, size=32, seq0=5000))
        log = arrivals([a, b], 32, 2600)
        t_first = next(t for t, n in log if n >= 300)
        t_last = next(t for t, n in log if n >= 2300)
        assert abs(2000 / (t_last - t_first) - rate) <= 0.1 * rate
        a.close()
        b.close()


def test_slow_start_and_recovery() -> None:
    with servers.start("slow_start", threshold=2, delay=0.005, slow_delay=0.1,
                       recovery=0.3) as srv:
        c = Client(srv)
        f = make_frames("len32", 1)[0]
        assert 0.005 <= c.rtt(f) < 0.05
        extra = [Client(srv), Client(srv)]  # 3 connections > 2
        assert 0.1 <= c.rtt(f) < 0.15
        for e in extra:
            e.close()
        time.sleep(0.02)
        assert 0.1 <= c.rtt(f) < 0.15  # still slow while recovering
        time.sleep(0.3)
        assert 0.005 <= c.rtt(f) < 0.05
        c.close()


def test_grow_memory() -> None:
    step = 32 << 20
    with servers.start("grow_memory", step=step, interval=0.25, cap=2 * step) as srv:
        proc = psutil.Process(srv.pid)
        base = proc.memory_full_info().uss
        time.sleep(max(0.0, srv.started + 0.4 - time.monotonic()))
        assert 0.9 * step < proc.memory_full_info().uss - base < 1.5 * step  # one step
        time.sleep(max(0.0, srv.started + 0.75 - time.monotonic()))
        assert proc.memory_full_info().uss - base > 1.9 * step  # two steps
        time.sleep(0.3)
        assert proc.memory_full_info().uss - base < 2.2 * step  # capped
        c = Client(srv)
        c.rtt(make_frames("len32", 1)[0])  # still an echo server
        c.close()


# --- counting behaviours ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["newline", "len32"])
def test_drop_every_kth(name: str) -> None:
    with servers.start("drop", framing=name, every=3) as srv:
        for _ in range(2):  # numbering is per connection
            c = Client(srv)
            frames = make_frames(name, 10)
            c.send(frames)
            got = c.read(10 - 10 // 3)
            assert got == [f for i, f in enumerate(frames, 1) if i % 3]
            assert c.silent()
            c.close()


def test_dup_every_kth() -> None:
    with servers.start("dup", framing="len16", every=4) as srv:
        c = Client(srv)
        frames = make_frames("len16", 10)
        c.send(frames)
        seqs, _ok = decode("len16", c.read(10 + 10 // 4))
        assert list(seqs) == [0, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 9]
        assert c.silent()
        c.close()


@pytest.mark.parametrize("name", FRAMINGS)
def test_reset_after(name: str) -> None:
    with servers.start("reset_after", framing=name, n=5) as srv:
        c = Client(srv)
        frames = make_frames(name, 8)
        c.send(frames)
        assert c.read(5) == frames[:5]
        with pytest.raises(ConnectionResetError):
            c.read(1)
        c.close()


def test_reset_after_zero() -> None:
    with servers.start("reset_after", n=0) as srv:
        for _ in range(3):  # the reset may even beat connect() to report
            with pytest.raises(ConnectionResetError):
                Client(srv).read(1)


@pytest.mark.parametrize("n", [0, 3])
def test_close_after(n: int) -> None:
    with servers.start("close_after", framing="newline", n=n) as srv:
        c = Client(srv)
        frames = make_frames("newline", 6)
        c.send(frames[:4])
        assert c.read(n) == frames[:n]
        with pytest.raises(EOFError, match="EOF after 0"):
            c.read(1)
        c.send(frames[4:])  # half-closed: the server still reads (and discards)
        c.close()


@pytest.mark.parametrize("name", FRAMINGS)
def test_garbage_after(name: str) -> None:
    with servers.start("garbage_after", framing=name, n=2) as srv:
        c = Client(srv)
        frames = make_frames(name, 4)
        c.send(frames)
        junk = servers.garbage_bytes(name)
        want = len(frames[0]) * 2 + len(junk)
        c.sock.settimeout(2)
        deadline = time.monotonic() + 2
        while len(c.buf) < want and time.monotonic() < deadline:
            c.buf += c.sock.recv(1 << 17)
        assert c.buf == frames[0] + frames[1] + junk
        c.buf = b""
        assert c.silent()  # open, nothing more
        if name == "newline":
            assert not decode(name, [junk])[1][0]
        else:
            with pytest.raises(FrameError):
                c.fr.cut(junk, 0, len(junk), 65536)
        c.close()


@pytest.mark.parametrize("name", FRAMINGS)
def test_mangle(name: str) -> None:
    with servers.start("mangle", framing=name, every=2) as srv:
        c = Client(srv)
        frames = make_frames(name, 6)
        c.send(frames)
        got = c.read(6)
        assert [len(g) for g in got] == [len(f) for f in frames]
        seqs, ok = decode(name, got)
        assert list(seqs) == list(range(6))
        assert list(ok) == [True, False] * 3
        assert [g == f for g, f in zip(got, frames, strict=True)] == [True, False] * 3
        c.close()


def _chat_room(fault: str) -> tuple[list[list[int]], list[bool]]:
    with servers.start("chat_faulty", framing="len32", every=2, victim=1,
                       fault=fault) as srv:
        clients = [Client(srv) for _ in range(3)]
        clients[0].send(make_frames("len32", 5))
        expect = [5, 5 - 2 if fault == "drop" else 5 + 2, 5]
        seqs = [list(decode("len32", c.read(n))[0]) for c, n in zip(clients, expect,
                                                                        strict=True)]
        quiet = [c.silent() for c in clients]
        for c in clients:
            c.close()
    return seqs, quiet


def test_chat_drop_to_victim() -> None:
    seqs, quiet = _chat_room("drop")
    assert seqs == [[0, 1, 2, 3, 4], [0, 2, 4], [0, 1, 2, 3, 4]]
    assert all(quiet)


def test_chat_dup_to_victim() -> None:
    seqs, quiet = _chat_room("dup")
    assert seqs == [[0, 1, 2, 3, 4], [0, 1, 1, 2, 3, 3, 4], [0, 1, 2, 3, 4]]
    assert all(quiet)


def test_plain_chat_counts_from_every_sender() -> None:
    with servers.start("chat", framing="newline") as srv:
        a, b = Client(srv), Client(srv)
        a.send(make_frames("newline", 3))
        assert len(b.read(3)) == 3 and len(a.read(3)) == 3
        b.send(make_frames("newline", 2, seq0=10))
        assert list(decode("newline", a.read(2))[0]) == [10, 11]
        assert list(decode("newline", b.read(2))[0]) == [10, 11]
        a.close()
        b.close()


def test_no_leftover_handles() -> None:
    assert not servers._live
