"""Socket.IO v4 packets, sans I/O (harness/protocols/sio/packet.py and the data path of
harness/protocols/sio/sio.py): the open packet checked, packet heads split, emits built
with their stamp and ack id, and rounds of server frames read packet by packet, whole,
broken, split at every byte and over max-frame."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from harness.protocols import by_scheme
from harness.protocols.sio import packet
from harness.protocols.sio.packet import PacketError
from harness.protocols.sio.settings import SioOptions
from harness.protocols.sio.sio import AckBook, SioProtocol, SioTemplate, sio_uri
from harness.protocols.ws.wsframe import OP_TEXT, encode_frame
from harness.protocols.ws.wstemplate import TextTemplate
from harness.wire import framing as framing_mod
from harness.wire.batch import Outbound
from workloads.base import Kind

OPEN = b'0{"sid":"a1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
KEY = 12345


def test_the_open_packet_gives_sid_ping_times_and_max_payload() -> None:
    o = packet.parse_open(OPEN)
    assert (o.sid, o.ping_interval_ms, o.ping_timeout_ms, o.max_payload) == \
        ("a1", 25000, 20000, 1000000)


@pytest.mark.parametrize("bad", [b'{"sid":"a"}', b"0not json", b"0[1,2]", b'0{"sid":"a"}',
                                 b'0{"sid":"","pingInterval":1,"pingTimeout":1,"maxPayload":1}',
                                 b'0{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":0}',
                                 b'0{"sid":"a","pingInterval":true,"pingTimeout":1,"maxPayload":1}',
                                 b"40", b""])
def test_a_wrong_open_packet_is_a_handshake_error(bad: bytes) -> None:
    with pytest.raises(PacketError) as exc:
        packet.parse_open(bad)
    assert exc.value.kind == "sio_handshake"


@pytest.mark.parametrize(("raw", "want"), [
    (b"2", (packet.EIO_PING, -1, "/", None)),
    (b"3", (packet.EIO_PONG, -1, "/", None)),
    (b"40", (4, packet.CONNECT, "/", None)),
    (b'40/chat,{"sid":"x"}', (4, packet.CONNECT, "/chat", None)),
    (b'42["m",1]', (4, packet.EVENT, "/", None)),
    (b'42/chat,17["m",1]', (4, packet.EVENT, "/chat", 17)),
    (b"43/chat,0000000017[]", (4, packet.ACK, "/chat", 17)),
    (b"41/chat,", (4, packet.DISCONNECT, "/chat", None)),
    (b"41/chat", (4, packet.DISCONNECT, "/chat", None)),
])
def test_a_packet_head_is_split_without_decoding_its_json(raw: bytes, want: tuple) -> None:
    h = packet.split(raw)
    assert (h.eio, h.sio, h.namespace, h.ack) == want


@pytest.mark.parametrize("bad", [b"", b"9", b"x", b"4", b"4x", b'45-["m",{}]', b"46-[]",
                                 b"42" + b"1" * 16 + b"[]"])
def test_a_broken_packet_head_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(PacketError) as exc:
        packet.split(bad)
    assert exc.value.kind == "protocol"


def test_an_event_must_be_a_json_array_beginning_with_its_name() -> None:
    for bad in (b'42{"a":1}', b"42[1,2]", b"42[", b"42[]"):
        with pytest.raises(PacketError):
            packet.event_args(bad, packet.split(bad))
    assert packet.event_args(b'42["m",{"a":1}]', packet.split(b'42["m",{"a":1}]')) == \
        ["m", {"a": 1}]


def test_connect_and_its_answers() -> None:
    assert packet.connect("/") == b"40" and packet.connect("/chat") == b"40/chat,"
    assert packet.connect("/chat", {"token": "t"}) == b'40/chat,{"token":"t"}'
    ok = b'40/chat,{"sid":"s"}'
    assert packet.connect_reply(ok, packet.split(ok)) is None
    no = b'44/chat,{"message":"not authorized"}'
    assert packet.connect_reply(no, packet.split(no)) == "not authorized"


def test_a_target_url_becomes_the_websocket_transport_uri() -> None:
    assert by_scheme("sio").name == "sio" and by_scheme("sios").default_port("sios") == 443
    assert sio_uri("sio", "127.0.0.1", 3000, "/") == \
        "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
    assert sio_uri("sios", "h", 443, "/chat/?token=x") == \
        "wss://h:443/chat/?token=x&EIO=4&transport=websocket"
    assert sio_uri("sio", "h", 1, "/x/?EIO=4&transport=websocket") == \
        "ws://h:1/x/?EIO=4&transport=websocket"


# ---------------------------------------------------------------------------- the data path


def protocol(ack: bool = False, namespace: str = "/chat", max_frame: int = 65536
             ) -> SioProtocol:
    fr = framing_mod.get("newline")
    out = Outbound(fr, [Kind("msg", 1.0, 100)], [b"x" * 100], KEY, 0, 1)
    opts = SioOptions(namespace, "msg", ack)
    tmpl = SioTemplate(TextTemplate('{"stamp": "{stamp}", "text": "{text}"}', 100), opts)
    return SioProtocol(fr, out, max_frame, KEY, 0, tmpl, opts, n=2)


def unmask(frames: bytes) -> list[bytes]:
    """The payloads of masked client frames (short ones)."""
    out, p = [], 0
    while p < len(frames):
        n = frames[p + 1] & 0x7F
        hdr = 2 if n < 126 else 4
        n = n if n < 126 else int.from_bytes(frames[p + 2:p + 4], "big")
        mask = frames[p + hdr:p + hdr + 4]
        body = frames[p + hdr + 4:p + hdr + 4 + n]
        out.append(bytes(b ^ mask[k % 4] for k, b in enumerate(body)))
        p += hdr + 4 + n
    return out


def emits(p: SioProtocol, n: int, seq0: int = 0) -> list[bytes]:
    gid = np.zeros(n, dtype=np.int64)
    data, _ends, _ = p.build(gid, np.zeros(1, dtype=np.int64), np.array([n]), seq0,
                             1_000_000, 0)
    return unmask(bytes(data))


def test_an_emit_is_an_event_packet_with_the_stamp_in_its_json_payload() -> None:
    (msg,) = emits(protocol(), 1)
    assert msg.startswith(b'42/chat,["msg",{') and msg.endswith(b"}]")
    args = packet.event_args(msg, packet.split(msg))
    assert len(args[1]["stamp"]) == 56 and len(msg) == len(emits(protocol(), 1)[0])


def test_with_acks_each_emit_asks_for_its_own_zero_padded_id() -> None:
    msgs = emits(protocol(ack=True), 3, seq0=41)
    assert [packet.split(m).ack for m in msgs] == [41, 42, 43]
    assert msgs[0].startswith(b"42/chat,0000000041[")


def read(p: SioProtocol, frames: bytes, cuts: tuple[int, ...] = ()) -> tuple:
    """Feed server frames to the protocol as reads split at ``cuts``, the way the transport
    does (cut, keep the tail, parse the whole messages); the parsed rounds joined."""
    pend, oks, kept, broken = b"", [], 0, []
    bounds = [0, *cuts, len(frames)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        buf = bytearray(pend + frames[a:b]) + bytearray(1024)
        walk: list[int] = []
        end = len(pend) + b - a
        cut, keep = p.cut(buf, 0, 0, end, walk, broken)
        pend = bytes(buf[cut:keep])
        if walk:
            parsed = p.parse(buf, [0], [cut], [10], walk)
            oks.extend(parsed.ok.tolist())
            kept += len(parsed.conn)
    return oks, kept, broken


def server(*payloads: bytes) -> bytes:
    return b"".join(encode_frame(OP_TEXT, x, mask=False) for x in payloads)


def test_a_round_counts_our_events_and_takes_pings_acks_and_ends_aside() -> None:
    p = protocol(ack=True)
    (mine,) = emits(p, 1)
    frames = server(b"2", mine, b'42/chat,["other",{}]', b'42["msg",{}]', b"43/chat,0[{}]",
                    b"6", b"41/chat,")
    oks, kept, broken = read(p, frames)
    assert oks == [True] and kept == 1 and not broken  # ours; other event, namespace skipped
    assert p.pings == [0] and p.ends == [(0, "sio_disconnect")]
    assert p.acks is not None and p.acks.got_ids == [0] and p.acks.unknown == 0


def test_broken_packets_are_one_protocol_error_each_and_the_stream_goes_on() -> None:
    p = protocol()
    (mine,) = emits(p, 1)
    frames = server(b"x", b'42/chat,["msg",', b'42/chat,["msg",{"stamp":"zz"}]', mine)
    oks, kept, broken = read(p, frames)
    assert oks == [False, False, False, True] and not broken


def test_frames_split_at_every_byte_read_the_same() -> None:
    p = protocol()
    mine = emits(p, 3)
    frames = server(b"2", *mine)
    for at in range(1, len(frames)):
        q = protocol()
        q.key = p.key
        oks, kept, broken = read(q, frames, (at,))
        assert oks == [True] * 3 and q.pings == [0] and not broken, at


def test_a_frame_over_max_frame_breaks_the_stream() -> None:
    p = protocol(max_frame=300)
    frames = server(b'42/chat,["msg",' + orjson.dumps({"text": "x" * 400}) + b"]")
    _oks, kept, broken = read(p, frames)
    assert broken == [0] and kept == 0


def test_an_event_re_serialised_or_with_more_arguments_still_counts_by_its_stamp() -> None:
    p = protocol()
    (mine,) = emits(p, 1)
    doc = packet.event_args(mine, packet.split(mine))[1]
    spaced = b'42/chat, ["msg", ' + orjson.dumps(dict(reversed(doc.items()))) + b"]"
    more = b'42/chat,["msg",' + orjson.dumps(doc) + b',{"room":"r"}]'
    oks, kept, broken = read(p, server(spaced, more, b'42/chat,["msg",{"stamp":1}]'))
    assert oks == [True, True, False] and not broken


def test_acks_are_matched_by_id_once_and_the_windows_missing_ones_counted() -> None:
    book = AckBook(cap=8)
    book.sent(np.arange(10, 16, dtype=np.int64), 1_000)
    for ack in (10, 11, 11, 25, 15):  # 11 twice, 25 never sent
        book.got(ack, 3_000)
    times, missing = book.window(10, 16)
    assert times.tolist() == [2_000] * 3 and book.unknown == 2
    assert missing == 3 and book.waiting == 3  # 12, 13, 14
    book.sent(np.arange(16, 30, dtype=np.int64), 5_000)  # over the ring: 16..21 forgotten
    book.got(16, 6_000)
    book.got(29, 6_000)
    assert book.unknown == 3 and book.waiting == 7 and book.window(16, 30)[1] == 13
