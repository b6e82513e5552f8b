"""A minimal MQTT 3.1.1 / 5 broker (asyncio) for tests/test_mqtt.py, with faults on
purpose. Run as a script; it prints ``PORTS p1 [p2 ...]`` once listening, and serves until
terminated.

    python -m tests.mqtt_broker [--ports N] [--drop-port K --drop-every N]
                                [--fault KIND] [--after N] [--dup-every N]

It takes CONNECT (answers CONNACK 0), SUBSCRIBE (exact topic names only; SUBACK with the
QoS asked), PUBLISH at QoS 0, 1 and 2 (PUBACK; PUBREC, then PUBCOMP for the PUBREL), which
it forwards to every subscriber of the topic at the subscription's QoS (its own packet ids;
the subscriber's acks are read and dropped), PINGREQ (PINGRESP) and DISCONNECT.

* ``--ports N``: listen on N ports (all one broker: one set of subscriptions);
  ``--drop-port K --drop-every N``: the first subscriber that connected through port K
  (0-based) never gets every N-th message published (counted from 1 on that subscriber).
* ``--dup-every N``: every subscriber gets every N-th message twice (the second copy with
  the DUP flag, the same packet id), as a QoS 1 redelivery.
* ``--fault KIND``: ``connack5`` answers CONNECT with CONNACK 5 (not authorised);
  ``suback`` answers CONNACK with a SUBACK (a wrong handshake); ``noconnack`` never answers
  CONNECT; ``length`` sends a subscriber, after ``--after N`` forwarded messages, a packet
  with a 5-byte remaining length; ``oversize`` sends it a PUBLISH announcing 2 MiB (only its
  header); ``noack`` never acks a PUBLISH (nor a PINGREQ) and forwards nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import struct
import sys

from harness.protocols.mqtt.packets import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    V5,
    ack,
    publish_parts,
    varint,
)


class Client:
    def __init__(self, writer: asyncio.StreamWriter, port: int) -> None:
        self.writer = writer
        self.port = port
        self.version = 4
        self.qos = 0
        self.pid = 0
        self.got = 0  # messages published to it (the drop counter)
        self.drops = False


class Broker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.subs: dict[str, list[Client]] = {}
        self.dropper: Client | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    port: int) -> None:
        c = Client(writer, port)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                first = (await reader.readexactly(1))[0]
                rem = await _remaining(reader)
                body = await reader.readexactly(rem)
                if not await self.packet(c, first, body):
                    break
        for subs in self.subs.values():
            if c in subs:
                subs.remove(c)
        writer.close()

    async def packet(self, c: Client, first: int, body: bytes) -> bool:
        kind, fault = first >> 4, self.args.fault
        if fault == "noconnack":
            return True  # reads everything, answers nothing
        if kind == CONNECT:
            return self.connect(c, body, fault)
        if kind == SUBSCRIBE:
            self.subscribe(c, body)
        elif kind == PUBLISH:
            self.publish(c, first, body, fault)
        elif kind == PUBREL:
            c.writer.write(ack(PUBCOMP, struct.unpack_from(">H", body)[0]))
        elif kind == PINGREQ and fault != "noack":
            c.writer.write(bytes((PINGRESP << 4, 0)))
        elif kind == DISCONNECT:
            return False
        await c.writer.drain()
        return True

    def connect(self, c: Client, body: bytes, fault: str) -> bool:
        c.version = body[6]
        if fault == "suback":
            c.writer.write(bytes((SUBACK << 4, 3, 0, 1, 0)))
            return True
        code = 5 if fault == "connack5" else 0
        c.writer.write(bytes((CONNACK << 4, 3 if c.version == V5 else 2, 0, code)) +
                       (b"\x00" if c.version == V5 else b""))
        return True

    def subscribe(self, c: Client, body: bytes) -> None:
        pid = struct.unpack_from(">H", body)[0]
        at = 2 + (1 + body[2] if c.version == V5 else 0)
        n = struct.unpack_from(">H", body, at)[0]
        topic = body[at + 2:at + 2 + n].decode()
        c.qos = body[at + 2 + n] & 3
        self.subs.setdefault(topic, []).append(c)
        if c.port == self.args.drop_port and self.dropper is None:
            self.dropper = c
            c.drops = True
        props = b"\x00" if c.version == V5 else b""
        c.writer.write(bytes((SUBACK << 4, 3 + len(props))) + struct.pack(">H", pid) + props
                       + bytes((c.qos,)))

    def publish(self, c: Client, first: int, body: bytes, fault: str) -> None:
        qos = first >> 1 & 3
        pid, at = publish_parts(body, 0, len(body), first, c.version)
        if fault == "noack":
            return
        if qos:
            c.writer.write(ack(PUBACK if qos == 1 else PUBREC, pid))
        n = struct.unpack_from(">H", body)[0]
        topic = body[2:2 + n].decode()
        for s in self.subs.get(topic, []):
            self.forward(s, body[2:2 + n], body[at:])

    def forward(self, s: Client, topic: bytes, payload: bytes) -> None:
        s.got += 1
        a = self.args
        if s.drops and a.drop_every and s.got % a.drop_every == 0:
            return
        if a.fault in ("length", "oversize") and s.got > a.after:
            s.writer.write(b"\x30\xff\xff\xff\xff\x01" if a.fault == "length"
                           else b"\x30" + varint(2 << 20))
            return
        head = struct.pack(">H", len(topic)) + topic
        if s.qos:
            s.pid = s.pid % 65535 + 1
            head += struct.pack(">H", s.pid)
        if s.version == V5:
            head += b"\x00"
        rest = varint(len(head) + len(payload)) + head + payload
        s.writer.write(bytes((PUBLISH << 4 | s.qos << 1,)) + rest)
        if a.dup_every and s.got % a.dup_every == 0:  # sent again, as after a lost PUBACK
            s.writer.write(bytes((PUBLISH << 4 | 8 | s.qos << 1,)) + rest)


async def _remaining(reader: asyncio.StreamReader) -> int:
    n, shift = 0, 0
    while True:
        b = (await reader.readexactly(1))[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n
        shift += 7


async def main(args: argparse.Namespace) -> None:
    broker = Broker(args)
    servers = []
    for k in range(args.ports):
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, k: int = k) -> None:
            await broker.serve(r, w, k)
        servers.append(await asyncio.start_server(handle, "127.0.0.1", 0))
    print("PORTS", *(s.sockets[0].getsockname()[1] for s in servers), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.mqtt_broker")
    p.add_argument("--ports", type=int, default=1)
    p.add_argument("--drop-port", type=int, default=-1)
    p.add_argument("--drop-every", type=int, default=0)
    p.add_argument("--fault", default="", choices=("", "connack5", "suback", "noconnack",
                                                   "length", "oversize", "noack"))
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--dup-every", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
