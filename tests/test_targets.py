"""The built-in targets over real loopback sockets: echo, chat, a chat cluster, shutdown."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.targets import TargetError, launch
from harness.targets.chat import ChatServer, hello
from harness.targets.loop import Stopper, listen
from harness.wire import framing as framing_mod

pytestmark = pytest.mark.e2e  # every test here starts a server or a subprocess

TIMEOUT = 5.0
ROOT = Path(__file__).resolve().parents[1]
FRAMINGS = ("newline", "len16", "len32")


# -- helpers ---------------------------------------------------------------------------


def connect(addr: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(addr, timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    deadline = time.monotonic() + TIMEOUT
    data = bytearray()
    while len(data) < n:
        assert time.monotonic() < deadline, f"got {len(data)} of {n} bytes"
        part = sock.recv(min(1 << 20, n - len(data)))
        assert part, f"EOF after {len(data)} of {n} bytes"
        data += part
    return bytes(data)


def closed_by_server(sock: socket.socket) -> bool:
    """True if the server closed ``sock`` (EOF or reset) within TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def assert_quiet(socks: list[socket.socket], seconds: float = 0.2) -> None:
    """Nothing more arrives on any of ``socks`` for ``seconds``."""
    ready, _, _ = select.select(socks, [], [], seconds)
    assert not ready, "unexpected extra data"


class Reader:
    """Reads whole frames (bodies) off a blocking socket."""

    def __init__(self, sock: socket.socket, framing: str) -> None:
        self.sock = sock
        self.framing = framing_mod.get(framing)
        self.buf = bytearray()

    def frames(self, count: int) -> list[bytes]:
        out: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            starts, cut = self.framing.cut(self.buf, 0, len(self.buf), 1 << 30)
            bounds = [*starts, cut]
            f = self.framing
            for a, b in zip(bounds, bounds[1:], strict=False):
                out.append(bytes(self.buf[a + f.header:b - f.trailer]))
            del self.buf[:cut]
            if len(out) >= count:
                assert len(out) == count, f"{len(out)} frames, expected {count}"
                return out
            assert time.monotonic() < deadline, f"got {len(out)} of {count} frames"
            part = self.sock.recv(1 << 16)
            assert part, f"EOF after {len(out)} of {count} frames"
            self.buf += part


def barrier(sender: Reader, everyone: list[Reader]) -> None:
    """Every client is in the room once all of them receive a frame sent after connecting."""
    sender.sock.sendall(sender.framing.encode(b"barrier"))
    for r in everyone:
        assert r.frames(1) == [b"barrier"]


def body(tag: str, n: int) -> bytes:
    text = f"{tag}:".encode()
    return text + b"x" * max(0, n - len(text))


def send_in_pieces(sock: socket.socket, data: bytes, rng: random.Random) -> None:
    """Send ``data`` in small uneven writes (the first one byte) to split frames."""
    pos, size = 0, 1
    while pos < len(data):
        sock.sendall(data[pos:pos + size])
        pos += size
        size = rng.randint(1, 50)


# -- echo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_addr():
    with launch("echo") as handle:
        yield handle.addresses[0]


def test_echo_returns_bytes_verbatim(echo_addr):
    with connect(echo_addr) as sock:
        for msg in (b"hello", bytes(range(256)), b"\n\x00\r\n" * 100):
            sock.sendall(msg)
            assert recv_exact(sock, len(msg)) == msg


def test_echo_one_mib_through_one_connection(echo_addr):
    data = random.Random(1).randbytes(1 << 20)
    with connect(echo_addr) as sock:
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        assert recv_exact(sock, len(data)) == data
        sender.join(TIMEOUT)


def test_echo_holds_back_a_client_that_does_not_read(echo_addr):
    """Push until the server stops taking bytes, then read: everything comes back once."""
    data = random.Random(2).randbytes(64 << 20)
    with connect(echo_addr) as sock:
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(data[sent:sent + (1 << 20)])
            except BlockingIOError:
                if not select.select([], [sock], [], 0.2)[1]:
                    break  # blocked: the server is holding back
        assert 0 < sent < len(data)
        sock.settimeout(TIMEOUT)
        assert recv_exact(sock, sent) == data[:sent]
        assert_quiet([sock])


def test_echo_200_concurrent_connections(echo_addr):
    socks = [connect(echo_addr) for _ in range(200)]
    try:
        msgs = [f"conn {i} ".encode() * (1 + i % 7) for i in range(len(socks))]
        for sock, msg in zip(socks, msgs, strict=True):
            sock.sendall(msg)
        for sock, msg in zip(socks, msgs, strict=True):
            assert recv_exact(sock, len(msg)) == msg
    finally:
        for sock in socks:
            sock.close()


# -- chat ------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS)
def test_chat_every_frame_reaches_every_client(framing):
    rng = random.Random(framing)
    with launch("chat", framing=framing) as handle:
        readers = [Reader(connect(handle.addresses[0]), framing) for _ in range(5)]
        try:
            barrier(readers[-1], readers)
            expected = Counter()
            for i, r in enumerate(readers):
                bodies = [body(f"c{i}m{j}", rng.randint(1, 300)) for j in range(20)]
                expected.update(bodies)
                stream = b"".join(r.framing.encode(b) for b in bodies)
                send_in_pieces(r.sock, stream, rng) if i == 0 else r.sock.sendall(stream)
            for r in readers:
                assert Counter(r.frames(100)) == expected
            assert_quiet([r.sock for r in readers])
        finally:
            for r in readers:
                r.sock.close()


@pytest.mark.parametrize("framing", FRAMINGS)
def test_chat_oversized_frame_closes_only_that_connection(framing):
    f = framing_mod.get(framing)
    oversized = {"newline": b"y" * 200, "len16": struct.pack(">H", 100) + b"y" * 100,
                 "len32": struct.pack(">I", 5000) + b"y" * 100}[framing]
    with launch("chat", framing=framing, max_frame=64) as handle:
        good, bad = (Reader(connect(handle.addresses[0]), framing) for _ in range(2))
        with good.sock, bad.sock:
            barrier(bad, [good, bad])
            bad.sock.sendall(oversized)
            assert closed_by_server(bad.sock)
            good.sock.sendall(f.encode(b"still here"))
            assert good.frames(1) == [b"still here"]
            with connect(handle.addresses[0]) as late:
                late.sendall(f.encode(b"late"))
                assert Reader(late, framing).frames(1) == [b"late"]
            assert good.frames(1) == [b"late"]


def test_chat_closes_a_client_that_falls_too_far_behind():
    lsock = listen("127.0.0.1", 0)
    server = ChatServer([lsock], framing_mod.LEN32, 1 << 20, out_limit=256 << 10)
    addr = server.addresses[0]
    stopper = Stopper()
    thread = threading.Thread(target=server.serve, args=(stopper,), daemon=True)
    thread.start()
    try:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)
        slow.settimeout(TIMEOUT)
        slow.connect(addr)
        sender = Reader(connect(addr), "len32")
        barrier(sender, [sender, Reader(slow, "len32")])
        frame = framing_mod.LEN32.encode(b"z" * (16 << 10))
        total = 8 << 20
        for _ in range(total // len(frame)):
            sender.sock.sendall(frame)
            assert len(sender.frames(1)[0]) == 16 << 10  # the sender keeps up
        got = 0
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            part = slow.recv(1 << 20)
            if not part:
                break
            got += len(part)
        assert got < total, "the slow client should have been cut off"
        assert not part
        slow.close()
        sender.sock.close()
    finally:
        stopper.stop()
        thread.join(TIMEOUT)
        stopper.close()
    assert not thread.is_alive()


# -- cluster ---------------------------------------------------------------------------


def test_cluster_delivers_once_everywhere_and_survives_a_dead_node():
    f = framing_mod.LEN32
    with launch("chat", nodes=3) as handle:
        ports = [port for _, port in handle.addresses]
        assert ports == [ports[0], ports[0] + 1, ports[0] + 2]
        readers = [[Reader(connect(addr), "len32") for _ in range(2)]
                   for addr in handle.addresses]
        everyone = [r for node in readers for r in node]
        try:
            barrier(readers[0][0], everyone)
            for src, count in ((readers[0][1], 10), (readers[2][0], 5)):
                bodies = [body(f"{src.sock.getsockname()[1]}m{j}", 40) for j in range(count)]
                src.sock.sendall(b"".join(f.encode(b) for b in bodies))
                for r in everyone:
                    assert r.frames(count) == bodies  # once each, in order
            assert_quiet([r.sock for r in everyone], 0.3)  # no loops, no duplicates

            handle.kill_node(2)
            for r in readers[2]:
                assert closed_by_server(r.sock)
            alive = readers[0] + readers[1]
            for src in (readers[0][0], readers[1][1]):
                bodies = [body(f"after{j}", 30) for j in range(5)]
                src.sock.sendall(b"".join(f.encode(b) for b in bodies))
                for r in alive:
                    assert r.frames(5) == bodies
            assert_quiet([r.sock for r in alive], 0.3)
        finally:
            for r in everyone:
                r.sock.close()
        assert handle.stop() == [0, 0, -signal.SIGKILL]


def test_a_client_frame_like_a_hello_prefix_is_still_a_client():
    """A first frame that starts like a link hello but differs is an ordinary message."""
    f = framing_mod.LEN32
    near_miss = hello(0)[:-1] + b"x" + b"padding"
    with launch("chat") as handle, connect(handle.addresses[0]) as a, \
            connect(handle.addresses[0]) as b:
        ra, rb = Reader(a, "len32"), Reader(b, "len32")
        barrier(rb, [ra, rb])
        wire = f.encode(near_miss)
        for i in range(len(wire)):  # byte by byte: the server must wait, then decide
            a.sendall(wire[i:i + 1])
        assert ra.frames(1) == [near_miss]
        assert rb.frames(1) == [near_miss]


# -- lifecycle -------------------------------------------------------------------------


def test_sigterm_stops_nodes_cleanly():
    handle = launch("chat", nodes=2)
    clients = [connect(addr) for addr in handle.addresses]
    assert handle.stop() == [0, 0]
    assert handle.stop() == [0, 0]  # idempotent
    for sock in clients:
        assert closed_by_server(sock)
        sock.close()
    for addr in handle.addresses:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(addr, timeout=TIMEOUT)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


RUN_SERVER = """
import json, sys
from harness.targets import run_server
run_server(sys.argv[1], bind=sys.argv[2], nodes=int(sys.argv[3]), framing="len32",
           on_ready=lambda addrs: print(json.dumps(addrs), flush=True))
print("returned", flush=True)
"""


@pytest.mark.parametrize(("kind", "bind", "nodes"),
                         [("echo", "127.0.0.1", 1), ("chat", "127.0.0.1", 1),
                          ("chat", "::1", 2)])
def test_run_server_serves_until_sigterm(kind, bind, nodes):
    if ":" in bind and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", RUN_SERVER, kind, bind, str(nodes)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        assert ready, "run_server did not report ready"
        addrs = [tuple(a) for a in json.loads(proc.stdout.readline())]
        assert len(addrs) == nodes and all(host == bind for host, _ in addrs)
        with connect(addrs[-1]) as sock:
            msg = framing_mod.LEN32.encode(b"ping")
            sock.sendall(msg)
            assert recv_exact(sock, len(msg)) == msg
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=TIMEOUT) == 0
            assert closed_by_server(sock)
        assert proc.stdout.read().strip() == "returned"
        for addr in addrs:  # child nodes are gone too
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(addr, timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_launch_pins_to_a_cpu():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    with launch("echo", cpu=cpu) as handle:
        assert os.sched_getaffinity(handle.pids[0]) == {cpu}


def test_launch_reports_a_node_that_cannot_start():
    with pytest.raises(TargetError, match="node 0 failed to start"):
        launch("echo", cpu=100_000)


def test_launch_reports_a_port_in_use():
    with listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(TargetError, match=str(port)):
            launch("echo", port=port)


def test_launch_rejects_bad_settings():
    with pytest.raises(ValueError, match="kind"):
        launch("http")
    with pytest.raises(ValueError, match="framing"):
        launch("chat", framing="len8")
    with pytest.raises(ValueError, match="nodes"):
        launch("chat", nodes=0)


LAUNCHER = """
import json, time
from harness.targets import launch
handle = launch("chat", nodes=2)
print(json.dumps(handle.pids), flush=True)
time.sleep(30)
"""


def test_nodes_stop_when_their_launcher_dies():
    psutil = pytest.importorskip("psutil")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert select.select([proc.stdout], [], [], 10.0)[0], "launch did not finish"
        pids = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + TIMEOUT
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _running(psutil, pid)]
        time.sleep(0.05)
    for pid in alive:  # do not leave them behind if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"orphaned nodes {alive}"


GROUP_LAUNCHER = """
import json, signal, time
from harness.targets import launch
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
handle = launch("echo")
print(json.dumps([handle.pids, handle.addresses]), flush=True)
time.sleep(30)
"""


def test_a_signal_to_the_launchers_process_group_does_not_reach_the_nodes():
    # a terminal's Ctrl-C (and `timeout`) signal the whole foreground process group: the
    # nodes must outlive it, until their launcher has stopped its clients and says so
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", GROUP_LAUNCHER], stdout=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        assert select.select([proc.stdout], [], [], 10.0)[0], "launch did not finish"
        (pid,), (addr,) = json.loads(proc.stdout.readline())
        assert os.getpgid(pid) != proc.pid
        for sig in (signal.SIGINT, signal.SIGTERM):
            os.killpg(proc.pid, sig)
        time.sleep(0.3)
        with connect(tuple(addr)) as sock:
            sock.sendall(b"still here")
            assert recv_exact(sock, 10) == b"still here"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _running(psutil, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


NODE_IMPORTS = """\
import socket, sys
from harness.targets import node
from harness.targets.serve import make_server
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
make_server("echo", [s]), make_server("chat", [s])
print(sorted(m for m in ("numpy", "harness.protocols.ws.wsframe", "websockets")
             if m in sys.modules))
make_server("ws-echo", [s])
print("numpy" in sys.modules)
"""


def test_an_echo_or_chat_node_starts_without_numpy():
    # every run against the embedded target waits for its node: numpy (for the WebSocket
    # servers) would add ~50 ms to each
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", NODE_IMPORTS], capture_output=True, text=True,
                         env=env, timeout=30, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
