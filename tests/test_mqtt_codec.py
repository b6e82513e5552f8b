"""MQTT's sans-I/O parts without sockets: the packet codec, a round of PUBLISH packets
built at once, the stream cut into stamped frames (whole, split anywhere, broken, oversize),
and the acks matched per packet id."""

from __future__ import annotations

import numpy as np
import pytest

from harness.protocols.mqtt import packets as mp
from harness.protocols.mqtt.acks import Table
from harness.protocols.mqtt.pubs import Publisher, packet_ids
from harness.protocols.mqtt.stream import MqttProtocol
from harness.wire import framing
from harness.wire.batch import Outbound
from workloads.base import Kind

KEY = 7


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152,
                               mp.MAX_VARINT])
def test_a_remaining_length_reads_back_as_written(n: int) -> None:
    raw = bytes((0x30,)) + mp.varint(n)
    assert len(raw) - 1 == 1 + (n >= 128) + (n >= 16_384) + (n >= 2_097_152)
    assert mp.header(raw + bytes(n if n < 100_000 else 0), 0, len(raw) + n, 1 << 30) in \
        ((0x30, len(raw), n), None)


def test_a_length_over_four_bytes_is_malformed_and_a_big_packet_oversize() -> None:
    with pytest.raises(mp.Broken) as exc:
        mp.header(b"\x30\xff\xff\xff\xff\x01", 0, 6, 1 << 30)
    assert exc.value.kind == "mqtt_malformed"
    with pytest.raises(mp.Broken) as exc:  # known from the header alone: no need to wait
        raw = b"\x30" + mp.varint(2 << 20)
        mp.header(raw, 0, len(raw), 1 << 20)
    assert exc.value.kind == "mqtt_oversize"


def test_a_packet_split_anywhere_waits_for_the_rest() -> None:
    pkt = mp.publish("a/b", b"x" * 300, qos=1, pid=9)
    for k in range(len(pkt)):
        assert mp.header(pkt, 0, k, 1 << 20) is None
    assert mp.header(pkt, 0, len(pkt), 1 << 20) == (0x32, 3, len(pkt) - 3)


def test_connect_and_subscribe_bytes_are_the_specs() -> None:
    assert mp.connect("a", mp.V311, 60) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a"
    assert mp.connect("a", mp.V5, 0, clean=False, user="u", password="p") == \
        b"\x10\x14\x00\x04MQTT\x05\xc0\x00\x00\x00\x00\x01a\x00\x01u\x00\x01p"
    assert mp.subscribe(1, ["t/#"], 2) == b"\x82\x08\x00\x01\x00\x03t/#\x02"
    assert mp.subscribe(1, ["t"], 1, mp.V5) == b"\x82\x07\x00\x01\x00\x00\x01t\x01"
    assert mp.ack(mp.PUBREL, 258) == b"\x62\x02\x01\x02"


def test_publish_parts_find_the_payload_in_both_versions() -> None:
    for version in (mp.V311, mp.V5):
        pkt = mp.publish("topic", b"PAYLOAD", 2, 513, version)
        first, hl, rem = mp.header(pkt, 0, len(pkt), 1 << 20) or (0, 0, 0)
        pid, at = mp.publish_parts(pkt, hl, hl + rem, first, version)
        assert (pid, pkt[at:]) == (513, b"PAYLOAD")
    with pytest.raises(mp.Broken):  # QoS 3
        mp.publish_parts(b"\x00\x01t", 0, 3, 0x36, mp.V311)
    with pytest.raises(mp.Broken):  # a topic longer than the packet
        mp.publish_parts(b"\x00\x09t", 0, 3, 0x30, mp.V311)
    with pytest.raises(mp.Broken):  # properties past the packet
        mp.publish_parts(b"\x00\x01t\x05", 0, 4, 0x30, mp.V5)


def _frames(n: int, size: int | list[int]) -> tuple[memoryview, np.ndarray]:
    kinds = [Kind("msg", 1.0, size)]
    out = Outbound(framing.LEN32, kinds, [b"x" * (max(size) if isinstance(size, list) else
                                                   size)], KEY, 0, 1)
    data, ends, _ = out.build(np.arange(n, dtype=np.int64), 0, 1_000, 0)
    return data, ends


@pytest.mark.parametrize(("qos", "version", "ping"), [(0, 4, True), (1, 4, False),
                                                       (2, 5, False), (0, 5, False)])
def test_a_round_of_publishes_is_each_message_in_its_own_packet(qos: int, version: int,
                                                                ping: bool) -> None:
    data, ends = _frames(7, [64, 200, 20_000])
    counts = np.array([3, 4], dtype=np.int64)
    packets, out_ends = Publisher("room/1", qos, version, ping).wrap(data, ends, counts, 65533)
    pids = packet_ids(65533, 7).tolist()
    assert pids[:4] == [65534, 65535, 1, 2]  # never 0
    raw = bytes(data)
    want, bounds = b"", []
    for j in range(7):
        want += mp.publish("room/1", raw[(ends[j - 1] if j else 0):ends[j]], qos, pids[j],
                           version)
        if ping and j in (2, 6):
            want += mp.PING
        bounds.append(len(want))
    assert bytes(packets) == want and out_ends.tolist() == bounds


def _proto(version: int = 4) -> MqttProtocol:
    out = Outbound(framing.LEN32, [Kind("msg", 1.0, 64)], [b"x" * 64], KEY, 0, 1)
    return MqttProtocol(framing.LEN32, out, 1 << 16, KEY, 4, version,
                        Publisher("t", 1, version, False))


def _stream(version: int = 4) -> tuple[bytes, list[bytes]]:
    data, ends = _frames(5, 64)
    raw = bytes(data)
    frames = [raw[k * 64:(k + 1) * 64] for k in range(5)]
    s = mp.publish("t", frames[0], 0, 0, version) + mp.ack(mp.PUBACK, 3)
    s += mp.publish("t", frames[1], 1, 17, version) + mp.publish("t", b"old", 0, 0, version,
                                                                   retain=True)
    s += mp.PONG + mp.publish("t", frames[2], 2, 18, version) + mp.ack(mp.PUBREL, 18)
    s += mp.publish("t", frames[3], 0, 0, version) + mp.publish("t", frames[4], 0, 0, version)
    return s, frames


@pytest.mark.parametrize("version", [4, 5])
def test_a_stream_cut_at_every_byte_gives_the_same_frames_and_packets(version: int) -> None:
    stream, frames = _stream(version)
    for split in range(len(stream) + 1):
        proto = _proto(version)
        got, walk, pend = b"", [], b""
        for t, piece in enumerate((stream[:split], stream[split:])):
            buf = bytearray(pend + piece)
            proto.now = t
            start_walk = len(walk)
            cut, keep = proto.cut(buf, 2, 0, len(buf), walk, [])
            starts = [w + len(got) for w in walk[start_walk:]]
            walk[start_walk:] = starts
            got += bytes(buf[:cut])
            pend = bytes(buf[cut:keep])
        assert got == b"".join(frames) and pend == b"" and not proto.faults
        assert walk == [k * 64 for k in range(5)]
        assert [(i, k, p) for i, k, p, _ in proto.acks] == [(2, mp.PUBACK, 3),
                                                             (2, mp.PINGRESP, 0)]
        assert proto.replies == [(2, mp.ack(mp.PUBACK, 17)), (2, mp.ack(mp.PUBREC, 18)),
                                 (2, mp.ack(mp.PUBCOMP, 18))]
        assert [i for i, _ in proto.retained] == [2]


@pytest.mark.parametrize(("junk", "kind"), [(b"\x30\xff\xff\xff\xff\x01", "mqtt_malformed"),
                                            (b"\x30" + mp.varint(1 << 17), "mqtt_oversize"),
                                            (b"\x80\x00", "mqtt_malformed"),
                                            (b"\xe0\x01\x8e", "mqtt_disconnect_142")])
def test_a_broken_stream_keeps_the_frames_before_it_and_names_its_fault(junk: bytes,
                                                                        kind: str) -> None:
    stream, frames = _stream()
    buf = bytearray(stream + junk + b"more")
    proto, walk = _proto(), []
    cut, keep = proto.cut(buf, 1, 0, len(buf), walk, [])
    assert bytes(buf[:cut]) == b"".join(frames) and cut == keep
    assert proto.faults == [(1, kind)]


def test_acks_are_matched_per_packet_id_and_connection() -> None:
    t = Table(4, 1)
    t.sent(np.array([0, 3]), np.array([2, 1]), 10, 1_000)  # ids 11, 12 on 0; 13 on 3
    free, lat, rel, stray = t.take([(0, mp.PUBACK, 12, 5_000), (3, mp.PUBACK, 11, 5_000),
                                    (3, mp.PUBACK, 13, 6_000), (3, mp.PUBACK, 13, 7_000),
                                    (0, mp.PUBREC, 11, 7_000)])
    assert free == [0, 3] and [(a, int(np.asarray(b).sum())) for a, b in lat] == \
        [(5_000, 1_000), (6_000, 1_000)]
    assert rel == [] and stray == 3  # another's id, a second PUBACK, a PUBREC at QoS 1
    t2 = Table(2, 2)
    t2.sent(np.array([1]), np.array([1]), 0, 50)
    assert t2.take([(1, mp.PUBCOMP, 1, 60)])[3] == 1  # no PUBREC yet
    assert t2.take([(1, mp.PUBREC, 1, 70)])[:3] == ([], [], [(1, 1)])
    assert t2.take([(1, mp.PUBCOMP, 1, 90)])[0] == [1]


def test_at_qos_0_each_pingresp_acks_its_rounds_messages() -> None:
    t = Table(2, 0)
    t.sent(np.array([0, 1]), np.array([3, 1]), 0, np.array([10, 11, 12, 13]))
    t.pinged(0)
    t.sent(np.array([0]), np.array([2]), 4, 20)
    free, lat, _, _ = t.take([(0, mp.PINGRESP, 0, 100), (0, mp.PINGRESP, 0, 101),
                              (0, mp.PINGRESP, 0, 102), (0, mp.PINGRESP, 0, 103)])
    assert free == [0] * 5  # 3, the keep-alive's (none), 2; the fourth had nothing waiting
    assert [(a, list(np.asarray(b))) for a, b in lat] == [(100, [10, 11, 12]), (102, [20, 20])]


@pytest.mark.parametrize(("version", "qos"), [(4, 0), (5, 0), (4, 1), (5, 2)])
def test_a_long_run_of_like_packets_takes_the_fast_path_to_the_same_frames(version: int,
                                                                           qos: int) -> None:
    data, _ = _frames(60, 64)
    raw = bytes(data)
    frames = [raw[k * 64:(k + 1) * 64] for k in range(60)]
    stream = b"".join(mp.publish("t/x", f, qos, 300 + k, version)
                      for k, f in enumerate(frames[:40]))
    stream += mp.PONG + mp.publish("other", frames[40], qos, 340, version)
    stream += b"".join(mp.publish("t/x", f, qos, 341 + k, version)
                       for k, f in enumerate(frames[41:]))
    kind = mp.PUBACK if qos == 1 else mp.PUBREC
    acks = b"".join(mp.ack(kind, 300 + k) for k in range(60)) if qos else b""
    for split in (0, 1, 71, 700, 2900, len(stream) - 3, len(stream)):
        proto = _proto(version)
        got, walk, pend = b"", [], b""
        for piece in (stream[:split], stream[split:]):
            buf = bytearray(pend + piece)
            first = len(walk)
            cut, keep = proto.cut(buf, 0, 0, len(buf), walk, [])
            walk[first:] = [w + len(got) for w in walk[first:]]
            got += bytes(buf[:cut])
            pend = bytes(buf[cut:keep])
        assert got == b"".join(frames) and walk == [k * 64 for k in range(60)], split
        assert len(proto.acks) == 1 and not proto.faults
        assert b"".join(r for _, r in proto.replies) == acks  # in order, each once
