"""Engine.IO 4 and Socket.IO 5 packets (the protocol of socket.io v4) as bytes, sans I/O.

Over WebSocket every text message is one Engine.IO packet: its first character is its type
(``0`` open, ``1`` close, ``2`` ping, ``3`` pong, ``4`` message, ``6`` noop). A message
packet carries one Socket.IO packet: its type (``0`` CONNECT, ``1`` DISCONNECT, ``2``
EVENT, ``3`` ACK, ``4`` CONNECT_ERROR, ``5``/``6`` the binary ones), then a namespace
other than ``/`` as ``/name,``, then an acknowledgement id in decimal digits, then JSON
(``["event", payload, ...]`` for an event, the reply's arguments for an ack)::

    0{"sid":"a1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}
    40/chat,                      the client joins /chat; the server answers 40/chat,{"sid":..}
    42/chat,17["msg",{"stamp":"..."}]   an event asking for ack 17; the ack: 43/chat,17[...]

:func:`split` reads one packet's head without decoding its JSON (the data path takes the
JSON of our events only); :func:`parse_open` checks the open packet. Every problem raises
:class:`PacketError` naming what broke, with the error kind it counts as. Sizes are bytes;
times ms as Engine.IO gives them.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = range(7)
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)
MAX_ACK_DIGITS = 15  # an ack id past this is not a number a JS peer keeps exact (2^53)
ACK_WIDTH = 10  # the ids harness writes: zero-padded, every emit's packet the same size
PONG = b"3"


class PacketError(ValueError):
    """A packet that breaks Engine.IO or Socket.IO: ``kind`` is the error kind it counts as
    (``sio_handshake``: a wrong open packet; ``protocol``: a broken packet)."""

    def __init__(self, why: str, kind: str = "protocol") -> None:
        super().__init__(why)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Open:
    """The server's open packet: the session id, the ping period and timeout (ms), the most
    bytes a packet may take, and the transports it could upgrade to."""

    sid: str
    ping_interval_ms: int
    ping_timeout_ms: int
    max_payload: int
    upgrades: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Head:
    """One packet's head: its Engine.IO type; for a message, its Socket.IO type, namespace
    ("/" when none is written) and ack id (None: none); and where its JSON starts."""

    eio: int
    sio: int = -1
    namespace: str = "/"
    ack: int | None = None
    body: int = 1


def parse_open(data: bytes | memoryview) -> Open:
    """The open packet (``0{...}``), checked: its fields present and of their types."""
    raw = bytes(data)
    if raw[:1] != b"0":
        raise PacketError(f"the first packet is not Engine.IO's open packet: {raw[:40]!r}",
                          "sio_handshake")
    try:
        doc = orjson.loads(raw[1:])
    except orjson.JSONDecodeError:
        raise PacketError("the open packet is not JSON", "sio_handshake") from None
    if not isinstance(doc, dict):
        raise PacketError("the open packet is not a JSON object", "sio_handshake")
    sid, upgrades = doc.get("sid"), doc.get("upgrades", [])
    numbers = [doc.get(k) for k in ("pingInterval", "pingTimeout", "maxPayload")]
    if not isinstance(sid, str) or not sid or not isinstance(upgrades, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers) \
            or not numbers[2]:
        raise PacketError("the open packet lacks sid, pingInterval, pingTimeout or "
                          "maxPayload (Engine.IO 4: is the server socket.io v3 or v4?)",
                          "sio_handshake")
    every, timeout, most = (int(n) for n in numbers)  # type: ignore[arg-type]
    return Open(sid, every, timeout, most, tuple(str(u) for u in upgrades))


def split(data: bytes | memoryview) -> Head:
    """The head of one packet (a whole WebSocket text message)."""
    mv = memoryview(data)
    if not len(mv):
        raise PacketError("an empty packet")
    eio = mv[0] - 48
    if not 0 <= eio <= EIO_NOOP:
        raise PacketError(f"not an Engine.IO packet type: {bytes(mv[:1])!r}")
    if eio != EIO_MESSAGE:
        return Head(eio)
    if len(mv) < 2 or not 0 <= mv[1] - 48 <= BINARY_ACK:
        raise PacketError("a message packet without a Socket.IO packet type")
    sio, p = mv[1] - 48, 2
    if sio in (BINARY_EVENT, BINARY_ACK):
        raise PacketError("a binary Socket.IO packet (attachments are not supported)")
    namespace = "/"
    if p < len(mv) and mv[p] == 47:  # "/name,"
        comma = bytes(mv[p:]).find(b",")
        if comma < 0:
            comma = len(mv) - p  # a namespace that runs to the end: nothing after it
        namespace = bytes(mv[p:p + comma]).decode("utf-8", "replace")
        p += comma + 1
    q = p
    while q < len(mv) and 48 <= mv[q] <= 57:
        q += 1
    if q - p > MAX_ACK_DIGITS:
        raise PacketError("an ack id of over 15 digits")
    ack = int(bytes(mv[p:q])) if q > p else None
    return Head(eio, sio, namespace, ack, q)


def connect(namespace: str, auth: dict | None = None) -> bytes:
    """The client's CONNECT to ``namespace`` (``40`` for "/", ``40/chat,`` else)."""
    out = b"40" + _ns(namespace)
    return out + orjson.dumps(auth) if auth else out


def event_prefix(namespace: str, event: str, ack: bool) -> tuple[bytes, int]:
    """The bytes of an EVENT packet before its payload (``42/chat,["msg",`` with room for
    a zero-padded ack id when ``ack``), and where the ack id goes (-1: none)."""
    head = b"42" + _ns(namespace)
    at = len(head) if ack else -1
    if ack:
        head += b"0" * ACK_WIDTH
    return head + b"[" + orjson.dumps(event) + b",", at


def ack_digits(ids: list[int]) -> list[bytes]:
    """Ack ids as the zero-padded digits :func:`event_prefix` leaves room for."""
    return [str(k % 10**ACK_WIDTH).zfill(ACK_WIDTH).encode() for k in ids]


def event_args(data: bytes | memoryview, head: Head) -> list:
    """The JSON array of an EVENT or ACK packet (an EVENT's first item: its name)."""
    try:
        doc = orjson.loads(memoryview(data)[head.body:])
    except orjson.JSONDecodeError:
        raise PacketError("an event whose data is not JSON") from None
    if not isinstance(doc, list) or (head.sio == EVENT and not (doc and isinstance(doc[0],
                                                                                   str))):
        raise PacketError("an event whose data is not an array beginning with its name")
    return doc


def connect_reply(data: bytes | memoryview, head: Head) -> str | None:
    """The server's answer to CONNECT: None when it took it, else why not (a
    CONNECT_ERROR's message)."""
    if head.sio == CONNECT:
        return None
    try:
        doc = orjson.loads(memoryview(data)[head.body:]) if len(data) > head.body else None
    except orjson.JSONDecodeError:
        doc = None
    msg = doc.get("message") if isinstance(doc, dict) else doc
    return str(msg)[:200] if msg is not None else "refused"


def _ns(namespace: str) -> bytes:
    return b"" if namespace in ("", "/") else namespace.encode() + b","
