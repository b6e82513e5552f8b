"""WebSocket servers built on the ``websockets`` library (asyncio), a real third-party
implementation for tests/test_ws.py. Run as a script; it prints ``PORTS p1 [p2 ...]`` on
stdout once listening, and serves until terminated.

    python -m tests.ws_servers echo [--ping-interval S] [--close-after N --close-code C]
                                    [--fragment K] [--refuse STATUS] [--token T]
                                    [--subprotocol NAME]
    python -m tests.ws_servers chat --nodes 3 [--drop-node K --drop-every N]
    python -m tests.ws_servers bad --bad KIND [--after N]
    python -m tests.ws_servers junk --seed S --log FILE

* echo: every message back to its sender (as ``--fragment K`` fragments when asked); with
  ``--ping-interval`` the library pings each client and closes (1011) one that does not
  answer; ``--close-after N`` closes each connection with ``--close-code`` after N
  messages; ``--refuse STATUS`` refuses every handshake with that HTTP status;
  ``--token T`` refuses (401) a handshake without ``Authorization: Bearer T``.
* chat: ``--nodes`` nodes, each linked to every other over WebSocket (path ``/peer``): a
  message from a client goes to every client of its node (the sender included) and to
  every other node, which gives it to its own clients. ``--drop-node K --drop-every N``:
  node K drops every N-th message relayed to it by another node (counted from 1).
* bad: websockets' sans-I/O ServerProtocol over raw asyncio streams, echoing, that breaks
  RFC 6455 on purpose: ``--bad accept`` answers the handshake with a wrong
  Sec-WebSocket-Accept; ``masked``, ``len63`` (a 2^63 length), ``control126`` (a ping of
  126 bytes), ``opcode`` (opcode 3) or ``close<code>`` (a close frame with a code RFC 6455
  forbids on the wire: 999, 1004, 1005, 1006, 1015, 2000, 5000) sends that frame after
  ``--after N`` echoes.
* junk: an echo server (websockets' sans-I/O ServerProtocol over raw asyncio streams) that
  puts well-framed WebSocket messages whose payload is not a stamped frame (text, invalid
  UTF-8, 3 bytes, empty, random bytes of the echo's size, 200 bytes) before, between and
  after its echoes, on connect too, and writes each batch in random pieces (0-3 cuts, a
  short pause between pieces) so the client's reads split anywhere; seeded per
  connection (``--seed``). Each junk payload but the empty one begins with ``J``. ``--log``:
  per connection, as it ends, ``junk trailing`` (junk messages sent, and how many of them
  came after its last echo).
* ``--chatter`` (echo): a welcome (``{"type": "welcome"}``) on connect and an ack
  (``{"type": "ack"}``) before each echo; ``--rejson``: each text message echoed
  re-serialised (keys sorted, other spacing).
* ``--compress`` (echo): permessage-deflate offered to clients that ask.
* ``--log FILE`` (echo): each connection's close code, one line each, as it ends; (bad)
  the pings each connection received.
* ``--cert PEM --key PEM`` (echo, chat): wss:// (TLS with that certificate); chat nodes
  link to each other over wss:// too (without verifying: the links are the test's own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol


def _echo_handler(args: argparse.Namespace):  # noqa: ANN202 - a closure for serve()
    async def handler(ws: ServerConnection) -> None:
        n = 0
        with contextlib.suppress(ConnectionClosed):
            if args.chatter:
                await ws.send(json.dumps({"type": "welcome", "users": 1}))
            async for msg in ws:
                n += 1
                if args.chatter:
                    await ws.send(json.dumps({"type": "ack", "n": n}))
                if args.rejson:  # the same JSON, keys sorted, other spacing
                    msg = json.dumps(json.loads(msg), sort_keys=True, indent=1)
                if args.fragment > 1 and len(msg) >= args.fragment:
                    k = args.fragment
                    cuts = [len(msg) * j // k for j in range(k + 1)]
                    await ws.send([msg[cuts[j]:cuts[j + 1]] for j in range(k)])
                else:
                    await ws.send(msg)
                if args.close_after and n >= args.close_after:
                    await ws.close(args.close_code, "test close")
                    return
        if args.log:
            with open(args.log, "a") as f:
                f.write(f"{ws.close_code}\n")
    return handler


BAD_FRAMES = {
    "masked": Frame(Opcode.BINARY, b"m" * 40).serialize(mask=True),
    "len63": bytes((0x82, 127)) + (1 << 63).to_bytes(8, "big"),
    "control126": bytes((0x89, 126)) + (126).to_bytes(2, "big") + b"p" * 126,
    "opcode": bytes((0x83, 3)) + b"abc",
    **{f"close{c}": bytes((0x88, 2)) + c.to_bytes(2, "big")  # codes RFC 6455 forbids
       for c in (999, 1004, 1005, 1006, 1015, 2000, 5000)},
}


class _Bad:
    """One connection of the misbehaving server: its protocol and what it has seen."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.proto = ServerProtocol(max_size=None)
        self.echoed = self.pings = 0
        self.opened = self.sent_bad = False

    def feed(self, data: bytes) -> bytes:
        """The bytes to write after ``data`` came in."""
        proto = self.proto
        proto.receive_data(data)
        for ev in proto.events_received():
            if not self.opened:
                response = proto.accept(ev)
                if self.args.bad == "accept":
                    response.headers["Sec-WebSocket-Accept"] = "d3Jvbmcgd3Jvbmcgd3Jvbmc="
                proto.send_response(response)
                self.opened = True
            elif ev.opcode == Opcode.BINARY:
                proto.send_binary(ev.data)
                self.echoed += 1
            elif ev.opcode == Opcode.PING:
                self.pings += 1  # the library queues the pong itself
        out = b"".join(proto.data_to_send())
        if self.args.bad in BAD_FRAMES and self.echoed >= self.args.after and not self.sent_bad:
            self.sent_bad = True
            out += BAD_FRAMES[self.args.bad]
        return out


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 answer: Callable[[bytes], Awaitable[None]], log: str | None,
                 line: Callable[[], str]) -> None:
    """One test connection: ``answer`` each read until the client goes, then close and
    append ``line()`` to the ``log`` file (when given)."""
    try:
        while data := await reader.read(65536):
            await answer(data)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        if log:
            with open(log, "a") as f:
                f.write(f"{line()}\n")


def _bad_handler(args: argparse.Namespace):  # noqa: ANN202
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Bad(args)

        async def answer(data: bytes) -> None:
            writer.write(conn.feed(data))
            await writer.drain()
        await _serve(reader, writer, answer, args.log, lambda: f"{conn.pings}")
    return handler


async def bad(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(_bad_handler(args), "127.0.0.1", 0)
    print("PORTS", server.sockets[0].getsockname()[1], flush=True)
    await _forever()


JUNK = [(0x81, b"Jtext, not a stamped frame"), (0x81, b"J\xff\xfe\xfd"), (0x82, b"J\x00\x01"),
        (0x82, b""), (0x82, b"J" * 200)]


class _Junk:
    """One connection of the junk server: echoes with junk messages around them."""

    def __init__(self, seed: int, index: int) -> None:
        self.proto = ServerProtocol(max_size=None)
        self.rng = random.Random(seed * 1000 + index)
        self.opened = False
        self.junk = self.trailing = 0

    def _junk(self, size: int) -> bytes:
        self.junk += 1
        self.trailing += 1
        pick = self.rng.randrange(len(JUNK) + 1)
        if pick == len(JUNK):  # the size of an echo, random bytes
            body = b"J" + self.rng.randbytes(max(size - 1, 0))
            return Frame(Opcode.BINARY, body).serialize(mask=False)
        op, body = JUNK[pick]
        return bytes((op, len(body))) + body if len(body) < 126 else \
            bytes((op, 126)) + len(body).to_bytes(2, "big") + body

    def feed(self, data: bytes) -> bytes:
        """The bytes to write after ``data`` came in: the echoes, junk around them."""
        proto, rng, out = self.proto, self.rng, []
        proto.receive_data(data)
        for ev in proto.events_received():
            if not self.opened:
                proto.send_response(proto.accept(ev))
                out.append(b"".join(proto.data_to_send()))
                self.opened = True
                if rng.random() < 0.5:
                    out.append(self._junk(64))
            elif ev.opcode == Opcode.BINARY:
                if rng.random() < 0.3:
                    out.append(self._junk(len(ev.data)))
                out.append(Frame(Opcode.BINARY, ev.data).serialize(mask=False))
                self.trailing = 0
                if rng.random() < 0.3:
                    out.append(self._junk(len(ev.data)))
        out.append(b"".join(proto.data_to_send()))  # pongs, a close
        return b"".join(out)

    def pieces(self, data: bytes) -> list[bytes]:
        """``data`` cut at 0-3 random places."""
        cuts = sorted(self.rng.randrange(len(data) + 1) for _ in range(self.rng.randrange(4)))
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _junk_handler(args: argparse.Namespace):  # noqa: ANN202
    count = iter(range(1 << 30))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Junk(args.seed, next(count))

        async def answer(data: bytes) -> None:
            for piece in conn.pieces(conn.feed(data)):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(conn.rng.choice((0.0, 0.0005, 0.002)))
        await _serve(reader, writer, answer, args.log, lambda: f"{conn.junk} {conn.trailing}")
    return handler


async def junk(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(_junk_handler(args), "127.0.0.1", 0)
    for s in server.sockets:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print("PORTS", server.sockets[0].getsockname()[1], flush=True)
    await _forever()


def _process_request(args: argparse.Namespace):  # noqa: ANN202
    def process(connection, request):  # noqa: ANN001, ANN202 - websockets' hook
        if args.refuse:
            return connection.respond(HTTPStatus(args.refuse), "refused by the test\n")
        if args.token and request.headers.get("Authorization") != f"Bearer {args.token}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "no token\n")
        return None
    return process


async def echo(args: argparse.Namespace) -> None:
    kw = {"ping_interval": args.ping_interval or None, "ssl": _tls(args),
          "ping_timeout": args.ping_timeout or args.ping_interval or None,
          "subprotocols": [args.subprotocol] if args.subprotocol else None,
          "process_request": _process_request(args), "max_size": None,
          "compression": "deflate" if args.compress else None}
    async with serve(_echo_handler(args), "127.0.0.1", args.port, **kw) as server:
        print("PORTS", server.sockets[0].getsockname()[1], flush=True)
        await _forever()


class Node:
    """One chat node: its clients, its links to the other nodes, its drop rule."""

    def __init__(self, index: int, drop_every: int) -> None:
        self.index = index
        self.clients: set[ServerConnection] = set()
        self.peers: list = []  # client connections to the other nodes
        self.drop_every = drop_every
        self.relayed = 0

    async def handler(self, ws: ServerConnection) -> None:
        peer = ws.request is not None and ws.request.path == "/peer"
        if not peer:
            self.clients.add(ws)
        try:
            async for msg in ws:
                if peer:
                    self.relayed += 1
                    if self.drop_every and self.relayed % self.drop_every == 0:
                        continue
                else:
                    broadcast(self.peers, msg)
                broadcast(self.clients, msg)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(ws)


async def chat(args: argparse.Namespace) -> None:
    nodes = [Node(k, args.drop_every if k == args.drop_node else 0) for k in range(args.nodes)]
    servers = [await serve(n.handler, "127.0.0.1", 0, max_size=None, compression=None,
                           ping_interval=None, ssl=_tls(args)) for n in nodes]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    scheme, link = ("wss", _link_tls(args)) if args.cert else ("ws", None)
    for n in nodes:
        for k, port in enumerate(ports):
            if k != n.index:
                n.peers.append(await connect(f"{scheme}://127.0.0.1:{port}/peer",
                                             max_size=None, compression=None,
                                             ping_interval=None, ssl=link))
    print("PORTS", *ports, flush=True)
    await _forever()


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context with ``--cert`` and ``--key`` (None: plain ws://)."""
    if not args.cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx


def _link_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client context of chat links between the nodes (not verified: the test's own)."""
    if not args.cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _forever() -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("echo", "chat", "bad", "junk"))
    ap.add_argument("--bad", default="")
    ap.add_argument("--after", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default="")
    ap.add_argument("--chatter", action="store_true")
    ap.add_argument("--ping-timeout", type=float, default=0.0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--compress", action="store_true")
    ap.add_argument("--rejson", action="store_true")
    ap.add_argument("--ping-interval", type=float, default=0.0)
    ap.add_argument("--close-after", type=int, default=0)
    ap.add_argument("--close-code", type=int, default=1001)
    ap.add_argument("--fragment", type=int, default=0)
    ap.add_argument("--refuse", type=int, default=0)
    ap.add_argument("--token", default="")
    ap.add_argument("--subprotocol", default="")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--drop-node", type=int, default=-1)
    ap.add_argument("--drop-every", type=int, default=0)
    ap.add_argument("--cert", default="")
    ap.add_argument("--key", default="")
    args = ap.parse_args(argv)
    asyncio.run({"echo": echo, "chat": chat, "bad": bad, "junk": junk}[args.mode](args))


if __name__ == "__main__":
    main(sys.argv[1:])
