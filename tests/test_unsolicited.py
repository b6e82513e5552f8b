"""Replies nobody asked for, on protocols matched in order (HTTP/1.1, RESP, memcached): a
server that answers every request twice puts each connection out of step at its first extra
reply. That is one protocol error for the connection, which closes (later replies could
answer other requests than FIFO says), not one error per extra reply on a connection kept
open. The server here is a thread on a free loopback port, answering each request (told
apart by its last bytes) with its reply twice."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from tests.support import plan_for, run_plan

SERVE_S = 20.0  # the server thread's life at most, whatever the test does


@contextmanager
def doubling(ends_with: bytes, reply: bytes) -> Iterator[int]:
    """A server that answers every request (bytes up to ``ends_with``) with ``reply``
    twice; yields its port."""
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.setblocking(False)
    done = threading.Event()
    thread = threading.Thread(target=_serve, args=(lsock, ends_with, reply, done))
    thread.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        lsock.close()


def _serve(lsock: socket.socket, ends_with: bytes, reply: bytes,
           done: threading.Event) -> None:
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    pending: dict[socket.socket, bytes] = {}
    waited = 0.0
    while not done.is_set() and waited < SERVE_S:
        waited += 0.05
        for key, _ in sel.select(0.05):
            if key.data is None:
                conn, _ = lsock.accept()
                conn.setblocking(True)
                sel.register(conn, selectors.EVENT_READ, "conn")
                pending[conn] = b""
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                got = conn.recv(65536)
            except OSError:
                got = b""
            if not got:
                sel.unregister(conn)
                conn.close()
                continue
            data = pending[conn] + got
            n = data.count(ends_with)
            pending[conn] = data[data.rfind(ends_with) + len(ends_with):] if n else data
            with suppress(OSError):
                conn.sendall(reply * 2 * n)
    for key in list(sel.get_map().values()):
        if key.data is not None:
            key.fileobj.close()  # type: ignore[union-attr]
    sel.close()


HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.e2e
@pytest.mark.parametrize(("scheme", "run", "ends_with", "reply"), [
    ("http", {}, b"\r\n\r\n", HTTP_OK),
    ("tcp", {"workload": "redis", "redis_cmd": "ping"}, b"PING\r\n", b"+PONG\r\n"),
    ("tcp", {"workload": "memcached", "mc_cmd": "get"}, b"\r\n", b"END\r\n"),
])
def test_replies_nobody_asked_for_are_one_protocol_error_per_connection(
        scheme: str, run: dict, ends_with: bytes, reply: bytes) -> None:
    with doubling(ends_with, reply) as port:
        host = f"http://127.0.0.1:{port}/" if scheme == "http" else f"127.0.0.1:{port}"
        (s,) = run_plan(plan_for(host, messages="400", warmup=0.0, inflight=1,
                                 timeout=0.5, **run))
    assert s["errors"]["protocol"] == 4, s["errors"]  # 4 connections: one error each
    assert s["received"] <= 4 * 2, s  # each connection closed at its first extra reply
