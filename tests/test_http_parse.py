"""harness's HTTP/1.1 response parser (harness/protocols/http/http1.py) against h11, an
independent reference parser: generated response streams (1xx, 204/304, Content-Length,
chunked with extensions and trailers, header case, read-to-EOF bodies, several responses
back to back, and one framing fault at a time), split at arbitrary points and fed to harness
as the transport feeds it (pending bytes kept between reads, EOF last). Both must agree on
the sequence of (status, end offset in the stream) and on which streams are invalid. No
network."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocols.http.http1 import Http
from harness.wire import framing as framing_mod
from harness.wire.batch import Outbound
from workloads import Kind

h11 = pytest.importorskip("h11", reason="h11 not installed (pip install '.[test]')")

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"


def parser(methods: list[bytes] | None = None, max_frame: int = 1 << 20) -> Http:
    """An Http protocol for one connection; with ``methods``, that connection's requests
    (GET or HEAD, in order) are queued as if sent."""
    fr = framing_mod.get("len32")
    out = Outbound(fr, [Kind("get", 1.0, 64), Kind("head", 1.0, 64)], [b"x" * 64] * 2, 0, 0, 1)
    p = Http([(GET,), (HEAD,)], fr, out, max_frame, 0, 1, 0)
    if methods:
        import numpy as np

        from harness.wire import stamp
        kinds = np.asarray([m == b"HEAD" for m in methods], dtype=np.uint16)
        n = len(methods)
        sts = stamp.make(np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.uint32), kinds,
                         0, 0, 0, 0)
        p._push(np.zeros(1, dtype=np.int64), np.asarray([n], dtype=np.int64), sts)
    return p


Result = tuple[list[tuple[int, int]], bool]  # (status, end offset) per final response; invalid


def by_harness(stream: bytes, cuts: list[int], methods: list[bytes] | None = None) -> Result:
    """Feed ``stream`` to harness in reads ending at ``cuts``, then EOF, as the transport
    does: a read's whole responses are cut, the tail waits for the next read."""
    p = parser(methods)
    out: list[tuple[int, int]] = []
    pend, base = b"", 0  # bytes kept, and the stream offset where they start
    bounds = sorted({c for c in cuts if 0 < c < len(stream)}) + [len(stream)]
    prev = 0
    for b in bounds:
        buf = bytearray(pend + stream[prev:b])
        prev = b
        walk: list[int] = []
        broken: list[int] = []
        cut, end = p.cut(buf, 0, 0, len(buf), walk, broken)
        out += _responses(p, walk, cut, base)
        if broken:
            return out, True
        if p.take_closing():
            return out, cut != len(buf) or b != len(stream)  # nothing may follow a close
        pend, base = bytes(buf[cut:end]), base + cut
    if not pend:
        return out, False
    buf = bytearray(pend)
    walk = []
    took = p.at_eof(buf, 0, 0, len(buf), walk)
    out += _responses(p, walk, took, base)
    return out, took != len(buf)


def _responses(p: Http, walk: list[int], cut: int, base: int) -> list[tuple[int, int]]:
    ends = (walk + [cut])[1:]
    codes, p.round_codes = p.round_codes, []
    return [(code, base + e) for code, e in zip(codes, ends, strict=True)]


def by_h11(stream: bytes, methods: list[bytes] | None = None) -> Result:
    """The same stream through h11 as a client that sent GET (or ``methods``) requests."""
    methods = list(methods or [])
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, int]] = []

    def ask() -> None:
        m = methods.pop(0) if methods else b"GET"
        conn.send(h11.Request(method=m, target="/", headers=[("Host", "h")]))
        conn.send(h11.EndOfMessage())

    ask()
    conn.receive_data(stream)
    conn.receive_data(b"")
    status = 0
    try:
        for _ in range(10_000):
            ev = conn.next_event()
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.EndOfMessage):
                out.append((status, len(stream) - len(conn.trailing_data[0])))
                if conn.their_state is h11.DONE and conn.trailing_data[0]:
                    conn.start_next_cycle()
                    ask()
            elif isinstance(ev, h11.ConnectionClosed) or ev is h11.NEED_DATA \
                    or not conn.trailing_data[0] and conn.their_state is h11.DONE:
                return out, False
    except h11.RemoteProtocolError:
        return out, True
    raise AssertionError("h11 did not finish")


# ---------------------------------------------------------------------------- fixed cases

OK5 = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CH = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(("stream", "methods", "want"), [
    # each a disagreement with h11 that the generated streams found, fixed in harness
    (CH + b"0x5\r\nhello\r\n0\r\n\r\n", None, ([], True)),  # int(.., 16) took 0x
    (CH + b"+5\r\nhello\r\n0\r\n\r\n", None, ([], True)),
    (CH + b" 5\r\nhello\r\n0\r\n\r\n", None, ([], True)),
    (CH + b"1_0\r\n" + b"h" * 16 + b"\r\n0\r\n\r\n", None, ([], True)),
    (CH + b"5\r\nhelloXY0\r\n\r\n", None, ([], True)),  # data not followed by CRLF
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
     None, ([], True)),  # conflicting lengths (the last one won)
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", None, ([(200, 46)], False)),
    (b"HTTP/1.1 099 Odd\r\n\r\n" + OK5, None, ([], True)),  # not a status: was a 1xx
    (b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", None, ([], True)),  # case matters
    (b"HTTP/1.x 200 OK\r\nContent-Length: 0\r\n\r\n", None, ([], True)),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: x\r\n\r\n", None, ([], True)),
    # a close among connection tokens, and HTTP/1.0: nothing may follow
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n"
     + OK5, None, ([(200, 69)], True)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n" + OK5, None, ([(200, 38)], True)),
    # a body without a length runs to the close, after its 1xx
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nall of it", None,
     ([(200, 53)], False)),
    # HEAD: the length is the GET's, no body follows
    (OK5[:-5] + OK5, [b"HEAD", b"GET"], ([(200, 38), (200, 81)], False)),
    (CH + OK5, [b"HEAD", b"GET"], ([(200, 47), (200, 90)], False)),
])
def test_streams_h11_and_harness_once_disagreed_on(stream: bytes, methods: list[bytes] | None,
                                                    want: Result) -> None:
    assert by_h11(stream, methods) == want
    for k in range(len(stream) + 1):  # every split point
        assert by_harness(stream, [k], methods) == want, k


# ---------------------------------------------------------------------------- generated streams

def _case(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper()])


@st.composite
def headers(draw: st.DrawFn, extra: list[tuple[str, str]]) -> bytes:
    lines = [(draw(_case(k)), v) for k, v in extra]
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))),
                     (draw(_case("X-Thing")), draw(st.sampled_from(["a", "b d", ""]))))
    sep = draw(st.sampled_from([": ", ":", ":  "]))
    return b"".join(f"{k}{sep}{v}\r\n".encode() for k, v in lines)


@st.composite
def chunked_body(draw: st.DrawFn) -> bytes:
    out = []
    for size in draw(st.lists(st.integers(1, 40), max_size=4)):
        ext = draw(st.sampled_from(["", ";a=1", ';name="q v"', "; x"]))
        hexed = draw(st.sampled_from([f"{size:x}", f"{size:X}", f"00{size:x}"]))
        out.append(f"{hexed}{ext}\r\n".encode() + b"c" * size + b"\r\n")
    out.append(draw(st.sampled_from([b"0\r\n", b"0;last\r\n", b"000\r\n"])))
    trailers = draw(st.lists(st.sampled_from([b"X-Sum: 1\r\n", b"Expires: never\r\n"]),
                             max_size=2))
    return b"".join(out) + b"".join(trailers) + b"\r\n"


@st.composite
def response(draw: st.DrawFn, last: bool, head: bool = False) -> bytes:
    """One response (its 1xx responses first); ``last``: it may end the stream (HTTP/1.0,
    Connection: close, a body read to EOF); ``head``: it answers a HEAD request."""
    pre = b"".join(b"HTTP/1.1 %d Info\r\n" % c + draw(headers([])) + b"\r\n"
                   for c in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2)))
    code = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 418, 500, 503])
                | st.integers(200, 599))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"])) if last else "HTTP/1.1"
    reason = draw(st.sampled_from([" OK", " Not Found", "", " "]))
    extra: list[tuple[str, str]] = []
    if last and version == "HTTP/1.1" and draw(st.booleans()):
        extra.append(("Connection", draw(st.sampled_from(["close", "Keep-Alive, Close"]))))
    elif version == "HTTP/1.1" and draw(st.booleans()):
        extra.append(("Connection", "keep-alive"))
    n = draw(st.integers(0, 60))
    framing = draw(st.sampled_from(["length", "chunked"] + (["eof"] if last else [])))
    if framing == "length":
        extra.append(("Content-Length", str(n)))
        body = b"b" * n
    elif framing == "chunked":
        extra.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked"]))))
        body = draw(chunked_body())
    else:
        body = b"e" * n
    if code in (204, 304) or head:
        body = b""  # no body whatever the headers say
    return pre + f"{version} {code}{reason}\r\n".encode() + draw(headers(extra)) + b"\r\n" + body


@st.composite
def stream(draw: st.DrawFn) -> bytes:
    k = draw(st.integers(1, 4))
    return b"".join(draw(response(last=i == k - 1)) for i in range(k))


FAULTS = [
    (b"Content-Length: 5", b"Content-Length: 5x"),
    (b"Content-Length: 5", b"Content-Length: -5"),
    (b"Content-Length: 5", b"Content-Length: 5\r\nContent-Length: 6"),
    (b"\r\n0\r\n", b"\r\n0x0\r\n"),
    (b"\r\n1\r\n", b"\r\n+1\r\n"),
    (b"\r\n1\r\n", b"\r\n 1\r\n"),
    (b"\r\n1\r\n", b"\r\n1_0\r\n"),
    (b"\r\n1\r\n", b"\r\nzz\r\n"),
    (b"c\r\n", b"cXY"),  # chunk data not followed by CRLF
    (b"HTTP/1.1 200", b"HTTP/1.1 2x0"),
    (b"HTTP/1.1 200", b"HTTP/1.1 099"),
    (b"HTTP/1.1 200", b"http/1.1 200"),
    (b"HTTP/1.1 200", b"HTTP/1.1  200"),
    (b"HTTP/1.1 404", b"SSH-2.0-OpenSSH_9.2"),
]


@st.composite
def faulty_stream(draw: st.DrawFn) -> bytes:
    """A stream with one fault planted (or cut short before its end)."""
    data = draw(stream())
    faults = [(a, b) for a, b in FAULTS if a in data]
    if not faults or draw(st.booleans()):
        return data[:draw(st.integers(1, max(len(data) - 1, 1)))]
    a, b = draw(st.sampled_from(faults))
    at = draw(st.sampled_from([i for i in range(len(data)) if data.startswith(a, i)]))
    return data[:at] + b + data[at + len(a):]


def splits(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, max(len(data), 1)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_harness_and_h11_agree_on_valid_streams_split_anywhere(data: st.DataObject) -> None:
    s = data.draw(stream())
    cuts = data.draw(splits(s))
    ref = by_h11(s)
    assert not ref[1], s  # the generator makes valid streams
    assert by_harness(s, cuts) == ref, s


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_harness_and_h11_agree_on_broken_streams(data: st.DataObject) -> None:
    s = data.draw(faulty_stream())
    cuts = data.draw(splits(s))
    assert by_harness(s, cuts) == by_h11(s), s


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_head_responses_have_no_body_whatever_their_length_says(data: st.DataObject) -> None:
    methods = data.draw(st.lists(st.sampled_from([b"GET", b"HEAD"]), min_size=1, max_size=4))
    s = b"".join(data.draw(response(last=i == len(methods) - 1, head=m == b"HEAD"))
                 for i, m in enumerate(methods))
    cuts = data.draw(splits(s))
    ref = by_h11(s, methods)
    assert not ref[1], s
    assert by_harness(s, cuts, methods) == ref, s
