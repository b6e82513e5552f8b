"""permessage-deflate (RFC 7692) for ws:// runs with ``--ws-compress``: per connection a
zlib compressor and decompressor, set up when the handshake negotiated the extension.

Compression is per message, in Python (zlib): the slow path, used only when asked for.
Outgoing messages are compressed on their connection's compressor (context kept unless
the server asked for client_no_context_takeover) and flushed with Z_SYNC_FLUSH, the
trailing ``00 00 ff ff`` dropped; incoming compressed messages (RSV1) are inflated on their
connection's decompressor, at most ``max_frame`` bytes each (more is a protocol error on
that connection: memory stays bounded). Bytes are counted both ways, raw and on the wire.

Sizes are bytes.
"""

from __future__ import annotations

import zlib

import numpy as np
from websockets.extensions.permessage_deflate import PerMessageDeflate

from harness.protocols.ws.wsframe import OP_BINARY, RSV1

TAIL = b"\x00\x00\xff\xff"


class Deflate:
    """One step's compression state, connection by connection (None: not negotiated)."""

    def __init__(self, n: int, max_frame: int) -> None:
        self.max_frame = max_frame
        self.comp: list = [None] * n
        self.dec: list = [None] * n
        self.reset: list[zlib._Compress | None] = [None] * n  # a fresh compressor per message
        self.counts = {"sent_raw_bytes": 0, "sent_wire_bytes": 0, "received_raw_bytes": 0,
                       "received_wire_bytes": 0}

    def open(self, i: int, ext: PerMessageDeflate) -> None:
        """Connection ``i`` negotiated permessage-deflate with these parameters."""
        bits = -int(ext.local_max_window_bits or 15)
        comp = zlib.compressobj(6, zlib.DEFLATED, bits)
        self.comp[i] = comp
        self.reset[i] = comp.copy() if ext.local_no_context_takeover else None
        self.dec[i] = zlib.decompressobj(-int(ext.remote_max_window_bits or 15))

    def forget(self, i: int) -> None:
        self.comp[i] = self.dec[i] = self.reset[i] = None

    @property
    def any(self) -> bool:
        return any(c is not None for c in self.comp)

    def compress(self, data: memoryview, ends: np.ndarray, conn: np.ndarray, opcode: int
                 ) -> tuple[bytes, np.ndarray, np.ndarray]:
        """Each message compressed on its connection's compressor (raw where none): the
        bytes, each message's end, each one's first-byte opcode (RSV1 when compressed)."""
        out: list[bytes] = []
        ops = np.full(len(ends), opcode, dtype=np.int64)
        a, raw = 0, bytes(data)
        for j, (b, c) in enumerate(zip(ends.tolist(), conn.tolist(), strict=True)):
            z = self.comp[c]
            if z is None:
                out.append(raw[a:b])
            else:
                if self.reset[c] is not None:
                    z = self.comp[c] = self.reset[c].copy()
                body = z.compress(raw[a:b]) + z.flush(zlib.Z_SYNC_FLUSH)
                out.append(body[:-4] if body.endswith(TAIL) else body)
                ops[j] = opcode | RSV1
            a = b
        lens = np.fromiter((len(x) for x in out), dtype=np.int64, count=len(out))
        self.counts["sent_raw_bytes"] += int(ends[-1]) if len(ends) else 0
        self.counts["sent_wire_bytes"] += int(lens.sum())
        return b"".join(out), np.cumsum(lens), ops

    def inflate(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
                walk: list[int], compressed: list[bool]
                ) -> tuple[bytearray, list[int], list[int], list[int]]:
        """The round's messages with the compressed ones inflated: a new buffer, the reads'
        new ends, the messages' new starts, and the connections whose inflation broke."""
        ends = np.asarray(seg_end, dtype=np.int64)
        starts = np.asarray(walk, dtype=np.int64)
        stops = np.append(starts[1:], ends[-1]).tolist()
        seg = np.searchsorted(ends, starts, side="right")
        conns = np.asarray(seg_conn, dtype=np.int64)[seg].tolist()
        mv = memoryview(buf)
        parts: list[bytes] = []
        bad: list[int] = []
        wire = raw = 0
        for a, b, c, z in zip(walk, stops, conns, compressed, strict=True):
            payload = bytes(mv[a:b])
            d = self.dec[c]
            if z and d is not None and c not in bad:
                wire += len(payload)
                try:
                    payload = d.decompress(payload + TAIL, self.max_frame + 1)
                except zlib.error:
                    payload = b""
                    bad.append(c)
                if len(payload) > self.max_frame:
                    bad.append(c)
                raw += len(payload)
            parts.append(payload)
        self.counts["received_wire_bytes"] += wire
        self.counts["received_raw_bytes"] += raw
        lens = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
        new_starts = (np.cumsum(lens) - lens).tolist()
        new_ends = np.cumsum(np.bincount(seg, weights=lens, minlength=len(ends))).astype(
            np.int64).tolist()
        return bytearray(b"".join(parts)), new_ends, new_starts, bad


__all__ = ["Deflate", "OP_BINARY"]
