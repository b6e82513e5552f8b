"""The server's side of WebSocket frames, for the built-in targets (harness.targets.wsecho,
wschat) and the test servers: the handshake's response, client frames unmasked and cut,
echoes and broadcasts framed, in numpy when a read holds many frames of one size."""

from __future__ import annotations

import numpy as np

from harness.protocols.ws.wsframe import (
    FIN,
    MASK_BIT,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    OPCODES,
    FrameBroken,
    encode_frame,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def server_handshake(head: bytes) -> bytes:
    """The response to a client's upgrade request head: 101 with the accept key, or 400
    when it is not a WebSocket upgrade."""
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    if not head.startswith(b"GET ") or not key:
        return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")


def echo_frames(data: bytes | bytearray | memoryview, max_frame: int
                ) -> tuple[bytes, int, bool]:
    """A server's replies to the whole client frames at the start of ``data``: data frames
    echoed unmasked (fragments as fragments), pings answered, a close returned. Returns
    (reply bytes, bytes used, closing: a close came or the stream broke)."""
    a = np.frombuffer(data, dtype=np.uint8)
    out: list[bytes] = []
    p = _echo_uniform(a, out)
    end = len(a)
    while p < end:
        try:
            got = _client_frame(a, p, end, max_frame)
        except FrameBroken:
            return b"".join(out), p, True
        if got is None:
            break
        b0, op, hdr, n = got
        payload = (a[p + hdr:p + hdr + n] ^ np.resize(a[p + hdr - 4:p + hdr], n)).tobytes()
        p += hdr + n
        if op == OP_PING:
            out.append(encode_frame(OP_PONG, payload, mask=False))
        elif op == OP_CLOSE:
            out.append(encode_frame(OP_CLOSE, payload[:2], mask=False))
            return b"".join(out), p, True
        elif op != OP_PONG:
            out.append(encode_frame(op, payload, mask=False, fin=bool(b0 & FIN)))
    return b"".join(out), p, False


def _uniform_run(a: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The leading masked binary frames of one payload size under 126: their payloads,
    unmasked (one row each), the payload size and the bytes they take; (empty, 0, 0) when
    the first frame is not one."""
    none = (np.empty((0, 0), dtype=np.uint8), 0, 0)
    if len(a) < 6 or a[0] != FIN | OP_BINARY or not a[1] & MASK_BIT or a[1] & 0x7F >= 126:
        return none
    size = int(a[1] & 0x7F)
    fsize = size + 6
    k = len(a) // fsize
    rows = a[:k * fsize].reshape(k, fsize)
    if rows[:, :2].tobytes() == bytes((FIN | OP_BINARY, MASK_BIT | size)) * k:
        j = k  # the usual case, in one bytes compare (as Deframer._fast)
    else:
        good = (rows[:, 0] == FIN | OP_BINARY) & (rows[:, 1] == MASK_BIT | size)
        j = int(np.argmin(good))  # the first frame that is not like the others
    if not j:
        return none
    return rows[:j, 6:] ^ np.tile(rows[:j, 2:6], -(-size // 4))[:, :size], size, j * fsize


def _echo_uniform(a: np.ndarray, out: list[bytes]) -> int:
    """Leading masked binary frames of one payload size under 126, unmasked in one go."""
    payloads, size, used = _uniform_run(a)
    if used:
        reply = np.empty((len(payloads), size + 2), dtype=np.uint8)
        reply[:, 0] = FIN | OP_BINARY
        reply[:, 1] = size
        reply[:, 2:] = payloads
        out.append(reply.tobytes())
    return used


def _client_frame(a: np.ndarray, p: int, end: int, max_frame: int
                  ) -> tuple[int, int, int, int] | None:
    """A client frame's (first byte, opcode, header bytes with the mask, payload bytes), or
    None when not whole yet; FrameBroken when unmasked or over ``max_frame``."""
    if end - p < 2:
        return None
    b0, b1 = int(a[p]), int(a[p + 1])
    if not b1 & MASK_BIT or b0 & 0x70 or (b0 & 0x0F) not in OPCODES:
        raise FrameBroken("an unmasked client frame, reserved bits or a bad opcode")
    n, hdr = b1 & 0x7F, 2
    if n >= 126:
        hdr = 4 if n == 126 else 10
        if end - p < hdr:
            return None
        n = int.from_bytes(a[p + 2:p + hdr].tobytes(), "big")
    if n > max_frame:
        raise FrameBroken("frame over max-frame")
    hdr += 4
    return (b0, b0 & 0x0F, hdr, n) if p + hdr + n <= end else None


def client_messages(data: bytes | bytearray | memoryview, max_frame: int
                    ) -> tuple[bytes, np.ndarray, bytes, int, bool]:
    """The whole client messages at the start of ``data``, unmasked: (their payloads back to
    back, each one's end, the replies control frames need (pongs, a close), bytes used,
    closing: a close came or the stream broke). Fragmented messages are not taken (a relay
    target's limit): one ends the stream."""
    a = np.frombuffer(data, dtype=np.uint8)
    pay: list[bytes] = []
    ends: list[int] = []
    ctrl: list[bytes] = []
    p = _uniform_payloads(a, pay, ends)
    total = ends[-1] if ends else 0
    while p < len(a):
        try:
            got = _client_frame(a, p, len(a), max_frame)
        except FrameBroken:
            return b"".join(pay), np.asarray(ends, dtype=np.int64), b"".join(ctrl), p, True
        if got is None:
            break
        b0, op, hdr, n = got
        payload = (a[p + hdr:p + hdr + n] ^ np.resize(a[p + hdr - 4:p + hdr], n)).tobytes()
        p += hdr + n
        if op in (OP_TEXT, OP_BINARY) and b0 & FIN:
            pay.append(payload)
            total += n
            ends.append(total)
        elif op == OP_PING:
            ctrl.append(encode_frame(OP_PONG, payload, mask=False))
        elif op != OP_PONG:  # a close, or a fragment
            ctrl.append(encode_frame(OP_CLOSE, payload[:2] if op == OP_CLOSE else b"\x03\xef",
                                     mask=False))
            return b"".join(pay), np.asarray(ends, dtype=np.int64), b"".join(ctrl), p, True
    return b"".join(pay), np.asarray(ends, dtype=np.int64), b"".join(ctrl), p, False


def _uniform_payloads(a: np.ndarray, pay: list[bytes], ends: list[int]) -> int:
    payloads, size, used = _uniform_run(a)
    if used:
        j = len(payloads)
        pay.append(payloads.tobytes())
        ends.extend(range(size, (j + 1) * size, size) if size else [0] * j)
    return used


def server_frames(data: bytes | memoryview, ends: np.ndarray) -> bytes:
    """Each message ``data[ends[k-1]:ends[k]]`` as an unmasked binary server frame."""
    n = len(ends)
    if not n:
        return b""
    length = np.diff(np.asarray(ends, dtype=np.int64), prepend=0)
    src = np.frombuffer(data, dtype=np.uint8, count=int(ends[-1]))
    if length.min() == length.max() and length[0] < 126:
        size = int(length[0])
        out = np.empty((n, size + 2), dtype=np.uint8)
        out[:, 0] = FIN | OP_BINARY
        out[:, 1] = size
        out[:, 2:] = src.reshape(n, size)
        return out.tobytes()
    starts = np.asarray(ends) - length
    mv = memoryview(bytes(src))
    return b"".join(encode_frame(OP_BINARY, bytes(mv[s:e]), mask=False)
                    for s, e in zip(starts.tolist(), np.asarray(ends).tolist(), strict=True))
