"""The SSE codec, sans-I/O: the chunked coding, the event stream decoded in place (line ends,
a byte order mark, reads split anywhere, id and retry, an event that never ends), a round of
events parsed into stamped deliveries, and the senders' POSTs and their responses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocols.sse.events import parse_round
from harness.protocols.sse.post import PostRequests, ResponseError, Responses
from harness.protocols.sse.stream import StreamError, Streams, dechunk
from harness.protocols.sse.transport import head_verdict
from harness.protocols.ws.wstemplate import TextTemplate
from harness.wire import stamp

KEY = 12345


def stamps(n: int, conn: int = 7) -> tuple[np.ndarray, list[bytes]]:
    st = stamp.make(np.full(n, conn), np.arange(n, dtype=np.uint32),
                    np.zeros(n, dtype=np.uint16), 1, 0, np.arange(n) + 10**9, KEY)
    return st, [bytes(r) for r in stamp.to_bytes(st, True)]


def body(s: bytes, text: str = "hi") -> bytes:
    return b'{"stamp":"%s","text":"%s"}' % (s, text.encode())


def chunked(data: bytes, size: int) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(data[k:k + size]), data[k:k + size])
                    for k in range(0, len(data), size))


def feed(streams: Streams, reads: list[bytes], i: int = 0) -> tuple[bytes, bytes]:
    """Every read through cut as the transport does it (pending bytes first): the whole
    events handed over, and what stays pending."""
    pend, out = b"", b""
    for r in reads:
        buf = bytearray(pend + r) + bytearray(16)
        cut, end, ok = streams.cut(buf, i, 0, len(pend) + len(r))
        if not ok:
            raise StreamError("broken")
        out += bytes(buf[:cut])
        pend = bytes(buf[cut:end])
    return out, pend


def test_dechunk_takes_whole_and_split_chunks_and_the_zero_chunk() -> None:
    wire = chunked(b"data: hello\n\n", 5) + b"0\r\n\r\n"
    data, used, left, done = dechunk(wire, 0)
    assert (data, left, done) == (b"data: hello\n\n", 0, True) and used <= len(wire)
    out, left, rest, done = b"", 0, b"", False
    for k in range(0, len(wire), 3):  # three bytes at a time: split size lines and CRLFs
        raw = rest + wire[k:k + 3]
        data, used, left, done = dechunk(raw, left)
        out, rest = out + data, raw[used:]
        if done:
            break
    assert out == b"data: hello\n\n" and done


@pytest.mark.parametrize("bad", [b"zz\r\nabc\r\n", b"3\r\nabcXY", b"1" * 2000])
def test_a_broken_chunk_raises(bad: bytes) -> None:
    with pytest.raises(StreamError):
        dechunk(bad, 0)


def test_events_come_whole_whatever_the_reads_and_line_ends() -> None:
    _, (s0, s1) = stamps(2)
    text = b"\xef\xbb\xbfretry: 20\n: hi\n\nid: 1\ndata: " + body(s0) + \
        b"\r\n\r\nid: 2\rdata: " + body(s1) + b"\r\r"
    whole = b"id: 1\ndata: " + body(s0) + b"\n\nid: 2\ndata: " + body(s1) + b"\n\n"
    for step in (1, 2, 7, len(text)):
        st = Streams(1, 1 << 20)
        st.open(0, False)
        out, pend = feed(st, [text[k:k + step] for k in range(0, len(text), step)])
        # (blocks without data go with the events when they come in one read)
        assert (out.removeprefix(b"retry: 20\n: hi\n\n"), pend) == (whole, b""), step
        assert st.last_id[0] == b"2" and st.retry_ms[0] == 20


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    st = Streams(1, 1 << 20)
    st.open(0, False)
    out, pend = feed(st, [b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert out == b"data: a\n\ndata: b\n\n" and pend == b""


def test_a_chunked_stream_decodes_and_its_end_is_told() -> None:
    st = Streams(1, 1 << 20)
    st.open(0, True)
    wire = chunked(b"id: 9\ndata: x\n\n", 4) + b"0\r\n\r\n"
    out, pend = feed(st, [wire[k:k + 5] for k in range(0, len(wire), 5)])
    assert out == b"id: 9\ndata: x\n\n" and st.ended_now() == [0] and st.ended_now() == []
    assert st.last_id[0] == b"9"


def test_comments_and_ids_alone_are_not_handed_over() -> None:
    st = Streams(1, 1 << 20)
    st.open(0, False)
    assert feed(st, [b": heartbeat\n\nid: 4\n\n"]) == (b"", b"")
    assert st.last_id[0] == b"4"


def test_an_event_that_never_ends_breaks_the_stream_at_max_frame() -> None:
    st = Streams(1, 100)
    st.open(0, False)
    out, pend = feed(st, [b"data: ok\n\n", b"data: " + b"x" * 60])
    assert out == b"data: ok\n\n"
    with pytest.raises(StreamError):
        feed(st, [pend + b"x" * 60])
    st = Streams(1, 100)
    st.open(0, False)
    buf = bytearray(b"data: 1\n\ndata: " + b"x" * 100)
    assert st.cut(buf, 0, 0, len(buf)) == (9, 9, False)  # the whole event before it kept


def parse(text: bytes, event: bytes = b"message"):
    buf = bytearray(text)
    return parse_round(buf, [3], [len(text)], [99], KEY, event)


def test_a_round_of_events_gives_each_delivery_its_stamp() -> None:
    st, (s0, s1, s2) = stamps(3)
    text = (b"id: 1\ndata: " + body(s0) + b"\n\n"
            b"event: presence\ndata: {\"who\": 1}\n\n"  # another type: skipped
            b"event: message\ndata: " + body(s1).replace(b",", b",\ndata: ") + b"\n\n"
            b"data: {\"stamp\": \"" + s2 + b"\"}\n\n"  # re-serialised: read with orjson
            b"data\n\n")  # data, no stamp: a bad frame
    p = parse(text)
    assert p.ok.tolist() == [True, True, True, False]
    assert p.st["seq"][:3].tolist() == [0, 1, 2] and (p.st["conn"][:3] == 7).all()
    assert p.conn.tolist() == [3] * 4 and p.t.tolist() == [99] * 4


def test_a_mangled_stamp_or_bytes_that_are_not_utf8_are_bad_frames() -> None:
    _, (s0, s1, s2) = stamps(3)
    mangled = s1[:10] + (b"0" if s1[10:11] != b"0" else b"1") + s1[11:]
    text = (b"data: " + body(s0) + b"\n\n" + b"data: " + body(mangled) + b"\n\n"
            + b"data: " + body(s2).replace(b'"hi"', b'"\xff"') + b"\n\n")
    p = parse(text)
    assert p.ok.tolist() == [True, False, False]


def test_only_the_event_type_asked_for_is_a_delivery() -> None:
    _, (s0, s1) = stamps(2)
    text = b"event: chat\ndata: " + body(s0) + b"\n\ndata: " + body(s1) + b"\n\n"
    assert parse(text, b"chat").st["seq"].tolist() == [0]
    assert parse(text).st["seq"].tolist() == [1]


def test_posts_carry_the_stamp_in_their_json_body() -> None:
    req = PostRequests("h:1", "/send", TextTemplate('{"stamp":"{stamp}","text":"{text}"}',
                                                    120), 1, KEY)
    data, ends, _ = req.build(np.array([5, 6]), 40, np.array([1, 2]), 0)
    raw = bytes(data)
    assert len(raw) == 2 * req.size and ends.tolist() == [req.size, 2 * req.size]
    head, _, payload = raw[:req.size].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /send HTTP/1.1\r\nHost: h:1\r\n")
    assert len(payload) == 120 and b"Content-Length: 120" in head
    p = parse(b"data: " + payload + b"\n\n")
    assert p.ok.tolist() == [True] and p.st["conn"][0] == 5 and p.st["seq"][0] == 40


def test_responses_are_read_whole_split_and_as_copies() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    r = Responses()
    assert r.feed(ok[:10]) == [] and r.feed(ok[10:] + ok[:5]) == [200]
    assert r.feed(ok[5:]) == [200]
    assert r.feed(ok * 3) == [200] * 3  # copies of the last one: no parse
    err = b"HTTP/1.1 503 Busy\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n"
    assert r.feed(err) == [503]
    with pytest.raises(ResponseError):
        Responses().feed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


@pytest.mark.parametrize(("head", "verdict"), [
    (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
     b"transfer-encoding: chunked", (None, True)),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream", (None, False)),
    (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain", ("connect_sse_content_type", False)),
    (b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain", ("connect_sse_404", False)),
    (b"SSH-2.0-OpenSSH", ("protocol", False)),
])
def test_the_response_head_opens_a_stream_or_names_its_error(head: bytes, verdict) -> None:
    assert head_verdict(head) == verdict


@settings(max_examples=60, deadline=None)
@given(ends=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=8, max_size=8),
       comments=st.lists(st.booleans(), min_size=8, max_size=8), chunk_size=st.integers(1, 90),
       is_chunked=st.booleans(), cuts=st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_any_split_of_any_stream_gives_the_same_deliveries(ends, comments, chunk_size: int,
                                                           is_chunked: bool, cuts) -> None:
    _, raw = stamps(8)
    text = b""
    for k, (eol, comment) in enumerate(zip(ends, comments, strict=True)):
        if comment:
            text += b": beat" + eol + eol
        text += b"id: %d" % k + eol + b"data: " + body(raw[k]) + eol + eol
    wire = chunked(text, chunk_size) + b"0\r\n\r\n" if is_chunked else text
    reads, at = [], 0
    for c in cuts * (len(wire) // max(sum(cuts), 1) + 1):
        if at >= len(wire):
            break
        reads.append(wire[at:at + c])
        at += c
    streams = Streams(1, 1 << 20)
    streams.open(0, is_chunked)
    out, pend = feed(streams, reads)
    assert pend == b"" and streams.last_id[0] == b"7"
    p = parse(out)
    assert p.ok.all() and p.st["seq"].tolist() == list(range(8))
