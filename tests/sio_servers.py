"""Socket.IO servers for tests/test_sio.py. Run as a script; it prints ``PORTS p1`` on stdout
once listening, and serves until terminated.

    python -m tests.sio_servers py [--ping-interval S] [--namespace /NAME] [--polling-only]
                                   [--cert PEM --key PEM]
    python -m tests.sio_servers hostile --bad KIND

* py: a chat room on ``python-socketio`` (AsyncServer, ASGI) under uvicorn: every client
  joins the room "room" of its namespace ("/" and ``--namespace``); an event "message" goes
  to every client of the room, the sender included, and is acked ({"ok": true}) when the
  emit asks. ``--ping-interval S``: Engine.IO pings every S seconds (a client that does not
  answer within S is dropped); ``--polling-only``: the websocket transport refused;
  ``--cert PEM --key PEM``: over TLS (a sios:// target).
* hostile: a WebSocket server (the ``websockets`` library) that speaks Engine.IO 4 and
  Socket.IO wrongly on purpose, to the first connection only (the others get a good echo
  room: each event back to its sender, acked) unless said: ``open`` an open packet without
  its fields; ``refuse`` CONNECT answered with CONNECT_ERROR; ``silent`` CONNECT never
  answered; ``disconnect`` a DISCONNECT after 10 echoes; ``oversize`` a 2 MB packet after 10
  echoes; ``broken`` (every connection) a broken packet before each echo; ``noack`` (every
  connection) echoes, never an ack.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import socket
import sys

OPEN = {"sid": "s", "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000,
        "maxPayload": 1000000}


def py(args: argparse.Namespace) -> None:
    import socketio
    import uvicorn
    every = args.ping_interval or 25.0
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=every, ping_timeout=every,
                               transports=["polling"] if args.polling_only else
                               ["polling", "websocket"])
    for ns in {"/", args.namespace or "/"}:
        _room(sio, ns)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print("PORTS", sock.getsockname()[1], flush=True)
    tls = {"ssl_certfile": args.cert, "ssl_keyfile": args.key} if args.cert else {}
    config = uvicorn.Config(socketio.ASGIApp(sio), log_level="error", lifespan="off", **tls)
    uvicorn.Server(config).run(sockets=[sock])


def _room(sio, ns: str) -> None:  # noqa: ANN001 - socketio.AsyncServer
    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        await sio.enter_room(sid, "room", namespace=ns)

    async def message(sid: str, data: object) -> dict:
        await sio.emit("message", data, room="room", namespace=ns)
        return {"ok": True}

    sio.on("connect", connect, namespace=ns)
    sio.on("message", message, namespace=ns)


def hostile_handler(bad: str):  # noqa: ANN201 - a closure for serve()
    count = itertools.count()

    async def handler(ws) -> None:  # noqa: ANN001 - websockets' ServerConnection
        first = next(count) == 0
        kind = bad if first or bad in ("broken", "noack") else ""
        await ws.send("0" + json.dumps({"sid": "s"} if kind == "open" else OPEN))
        if kind == "open":
            await asyncio.sleep(5)
            return
        await ws.recv()  # CONNECT
        if kind == "silent":
            await asyncio.sleep(30)
            return
        if kind == "refuse":
            await ws.send('44{"message":"not authorized"}')
            await asyncio.sleep(5)
            return
        await ws.send('40{"sid":"n"}')
        await _echo(ws, kind)

    return handler


async def _echo(ws, kind: str) -> None:  # noqa: ANN001
    """Every event back to its sender (acked unless ``noack``), the hostility inside."""
    n = 0
    async for msg in ws:
        if not isinstance(msg, str) or not msg.startswith("42"):
            continue
        n += 1
        body = msg[2:]
        digits = len(body) - len(body.lstrip("0123456789"))
        ack, args = body[:digits], body[digits:]
        if kind == "broken":
            await ws.send('42["message",')
        await ws.send("42" + args)
        if ack and kind != "noack":
            await ws.send("43" + ack + '[{"ok":true}]')
        if n == 10 and kind == "disconnect":
            await ws.send("41")
        if n == 10 and kind == "oversize":
            await ws.send('42["message","' + "x" * 2_000_000 + '"]')


async def hostile(args: argparse.Namespace) -> None:
    from websockets.asyncio.server import serve
    async with serve(hostile_handler(args.bad), "127.0.0.1", 0, max_size=None) as server:
        print("PORTS", next(iter(server.sockets)).getsockname()[1], flush=True)
        await asyncio.Future()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="tests.sio_servers")
    p.add_argument("mode", choices=("py", "hostile"))
    p.add_argument("--ping-interval", type=float, default=0.0)
    p.add_argument("--namespace", default="")
    p.add_argument("--polling-only", action="store_true")
    p.add_argument("--bad", default="")
    p.add_argument("--cert", default="")
    p.add_argument("--key", default="")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.mode == "py":
        py(args)
    else:
        asyncio.run(hostile(args))


if __name__ == "__main__":
    main(sys.argv[1:])
