"""MQTT 3.1.1 and 5 packets, sans I/O: the client's packets as bytes, and the server's
packets read from a byte buffer (a fixed header at a time, never past what has arrived).

Only what a load generator needs: CONNECT, SUBSCRIBE, PUBLISH, the four publish acks
(PUBACK, PUBREC, PUBREL, PUBCOMP), PINGREQ and DISCONNECT out; CONNACK, SUBACK, PUBLISH, the
acks, PINGRESP and DISCONNECT in. ``version`` is the protocol level: 4 (3.1.1) or 5.

A packet that cannot be read raises :class:`Broken` with its error kind: ``mqtt_malformed``
(a remaining length over 4 bytes, a topic or property length past the packet, a packet type
a client never gets), ``mqtt_oversize`` (over the largest packet allowed). Sizes are bytes.
"""

from __future__ import annotations

import struct

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
V311, V5 = 4, 5
MAX_VARINT = 268_435_455  # the largest remaining length 4 bytes hold
PING = bytes((PINGREQ << 4, 0))
PONG = bytes((PINGRESP << 4, 0))
BYE = bytes((DISCONNECT << 4, 0))
_PID = struct.Struct(">H")


class Broken(Exception):
    """A packet that cannot be read: ``kind`` is its error kind."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(why)
        self.kind = kind


def varint(n: int) -> bytes:
    """A remaining length (or property length) as MQTT's variable byte integer."""
    if not 0 <= n <= MAX_VARINT:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        n, b = n >> 7, n & 0x7F
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def header(buf: bytes | bytearray | memoryview, p: int, end: int, most: int
           ) -> tuple[int, int, int] | None:
    """The fixed header at ``buf[p:end]``: (first byte, header bytes, remaining length), or
    None while it, or the packet it starts, has not all arrived. Raises :class:`Broken` for
    a length over 4 bytes, or a packet over ``most`` bytes (known from its header alone)."""
    n, shift, q = 0, 0, p + 1
    while True:
        if q >= end:
            return None
        b = buf[q]
        n |= (b & 0x7F) << shift
        q += 1
        if not b & 0x80:
            break
        if q - p > 4:
            raise Broken("mqtt_malformed", "a remaining length of more than 4 bytes")
        shift += 7
    if q - p + n > most:
        raise Broken("mqtt_oversize", f"a packet of {q - p + n} bytes (the most is {most})")
    if q + n > end:
        return None
    return buf[p], q - p, n


def _str(s: bytes) -> bytes:
    return _PID.pack(len(s)) + s


def connect(client_id: str, version: int = V311, keepalive_s: int = 60, clean: bool = True,
            user: str = "", password: str = "") -> bytes:
    """CONNECT: protocol "MQTT" at ``version``, clean session (3.1.1) or clean start (5),
    keep-alive in s (0: none), user name and password when given, no will."""
    flags = (0x02 if clean else 0) | (0x80 if user else 0) | (0x40 if password else 0)
    body = _str(b"MQTT") + bytes((version, flags)) + _PID.pack(keepalive_s)
    if version == V5:
        body += b"\x00"  # no properties
    body += _str(client_id.encode())
    if user:
        body += _str(user.encode())
    if password:
        body += _str(password.encode())
    return bytes((CONNECT << 4,)) + varint(len(body)) + body


def subscribe(pid: int, filters: list[str], qos: int, version: int = V311) -> bytes:
    """SUBSCRIBE to each filter at ``qos`` (its maximum QoS)."""
    body = _PID.pack(pid) + (b"\x00" if version == V5 else b"")
    for f in filters:
        body += _str(f.encode()) + bytes((qos,))
    return bytes((SUBSCRIBE << 4 | 2,)) + varint(len(body)) + body


def ack(kind: int, pid: int) -> bytes:
    """PUBACK, PUBREC, PUBREL or PUBCOMP for packet id ``pid`` (reason 0, left out in 5)."""
    return bytes((kind << 4 | (2 if kind == PUBREL else 0), 2)) + _PID.pack(pid)


def publish(topic: str, payload: bytes, qos: int = 0, pid: int = 0, version: int = V311,
            retain: bool = False) -> bytes:
    """One PUBLISH (the tests' brokers and codec tests; the worker builds a round at once:
    harness.protocols.mqtt.batch)."""
    body = _str(topic.encode()) + (_PID.pack(pid) if qos else b"") + \
        (b"\x00" if version == V5 else b"") + payload
    return bytes((PUBLISH << 4 | qos << 1 | int(retain),)) + varint(len(body)) + body


def connack(body: bytes | memoryview) -> tuple[bool, int]:
    """A CONNACK's (session present, return or reason code)."""
    if len(body) < 2:
        raise Broken("mqtt_malformed", "a CONNACK shorter than 2 bytes")
    return bool(body[0] & 1), body[1]


def suback(body: bytes | memoryview, version: int) -> tuple[int, list[int]]:
    """A SUBACK's packet id and its return (reason) codes, one per filter."""
    if len(body) < 3:
        raise Broken("mqtt_malformed", "a SUBACK shorter than 3 bytes")
    at = 2
    if version == V5:
        at = _skip_props(body, at, len(body))
    return _PID.unpack_from(body, 0)[0], list(body[at:])


def pid_of(body: bytes | bytearray | memoryview) -> int:
    """The packet id of a PUBACK, PUBREC, PUBREL or PUBCOMP."""
    if len(body) < 2:
        raise Broken("mqtt_malformed", "a publish ack shorter than 2 bytes")
    return int(_PID.unpack_from(body, 0)[0])


def publish_parts(buf: bytes | bytearray | memoryview, p: int, end: int, first: int,
                  version: int) -> tuple[int, int]:
    """A PUBLISH's body ``buf[p:end]``: (packet id, or 0 at QoS 0; where its payload
    starts). ``first``: its fixed header's first byte."""
    qos = first >> 1 & 3
    if qos == 3:
        raise Broken("mqtt_malformed", "a PUBLISH at QoS 3")
    if end - p < 2:
        raise Broken("mqtt_malformed", "a PUBLISH without a topic")
    at = p + 2 + (buf[p] << 8 | buf[p + 1])
    pid = 0
    if qos:
        if at + 2 > end:
            raise Broken("mqtt_malformed", "a PUBLISH cut inside its packet id")
        pid = buf[at] << 8 | buf[at + 1]
        at += 2
    if version == V5:
        at = _skip_props(buf, at, end)
    if at > end:
        raise Broken("mqtt_malformed", "a PUBLISH whose topic runs past the packet")
    return pid, at


def _skip_props(buf: bytes | bytearray | memoryview, at: int, end: int) -> int:
    """Past MQTT 5 properties (a variable byte integer length, then that many bytes)."""
    n, shift = 0, 0
    for k in range(4):
        if at >= end:
            raise Broken("mqtt_malformed", "properties cut short")
        b = buf[at]
        at += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
        if k == 3:
            raise Broken("mqtt_malformed", "a property length of more than 4 bytes")
    if at + n > end:
        raise Broken("mqtt_malformed", "properties run past the packet")
    return at + n


__all__ = ["Broken", "ack", "connack", "connect", "header", "pid_of", "publish",
           "publish_parts", "suback", "subscribe", "varint"]
