"""The WebSocket opening handshake: the options of a run's upgrades (:class:`WsOptions`), the
request and the check of its response (the ``websockets`` library's sans-I/O
``ClientProtocol``: status 101, ``Sec-WebSocket-Accept``, the subprotocol; only the response
head is fed to it), what a refusal says, and the blocking probe that checks a target before a
run (after a TLS handshake for wss://)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from harness.core.units import SEC
from harness.protocols.tls import handshake_kind, reason

MAX_HEAD = 64 * 1024  # most bytes of a handshake response head
HEAD_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class WsOptions:
    """What a worker needs for the handshakes: one URI per target, the subprotocol asked
    for ("" for none), and extra request headers."""

    uris: tuple[str, ...]
    subprotocol: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    ping_interval_ns: int = 0  # a ping on every open connection this often (0: none)
    compress: bool = False  # offer permessage-deflate (--ws-compress)


def handshake(uri: str, opts: WsOptions) -> tuple[ClientProtocol, bytes]:
    """A client protocol for ``uri`` and the bytes of its upgrade request."""
    sub = [Subprotocol(opts.subprotocol)] if opts.subprotocol else None
    ext = [ClientPerMessageDeflateFactory()] if opts.compress else None
    proto = ClientProtocol(parse_uri(uri), subprotocols=sub, extensions=ext, max_size=None)
    request = proto.connect()
    for name, value in opts.headers:
        request.headers[name] = value
    proto.send_request(request)
    return proto, b"".join(proto.data_to_send())


def handshake_result(proto: ClientProtocol, head: bytes) -> str | None:
    """Feed the response head (through its blank line): None when the connection is open,
    else the error kind (``connect_ws_<status>`` for a refusal, ``protocol``). A refusal is
    told by its status line (its body, if any, is not waited for)."""
    status = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status) >= 2 and status[0].startswith(b"HTTP/1.") and status[1].isdigit() \
            and len(status[1]) == 3 and status[1] != b"101":
        return f"connect_ws_{int(status[1])}"
    proto.receive_data(head)
    proto.events_received()
    if proto.handshake_exc is None and proto.state.name == "OPEN":
        return None
    return "protocol"


def refusal(head: bytes) -> str:
    """The status line of a refused handshake, for one line of diagnosis."""
    return head.split(b"\r\n", 1)[0].decode("latin-1", "replace")[:120]


class TlsFailed(Exception):
    """The probe's TLS handshake failed: its error kind (``tls_cert``, ...) and reason."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(f"{kind}: {why}")
        self.kind = kind
        self.why = why


def probe(family: int, addr: tuple, uri: str, opts: WsOptions, timeout_s: float,
          context: ssl.SSLContext | None = None, name: str = "") -> str | None:
    """One blocking handshake (after a TLS handshake with ``context`` and SNI ``name`` for
    wss://): None when it opens, else why not (the status line of a refusal, or what
    broke). A failed TLS handshake raises :class:`TlsFailed`."""
    proto, request = handshake(uri, opts)
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout_s)
        s.connect(addr)
        if context is not None:
            s = _secure(s, context, name)
        s.sendall(request)
        head = b""
        while HEAD_END not in head and len(head) < MAX_HEAD:
            got = s.recv(4096)
            if not got:
                return "the server closed the connection during the WebSocket handshake"
            head += got
    except OSError as exc:
        return f"WebSocket handshake failed: {exc.strerror or type(exc).__name__}"
    finally:
        s.close()
    head = head[:head.find(HEAD_END) + 4]
    return _verdict(proto, head)


def _secure(raw: socket.socket, context: ssl.SSLContext, name: str) -> ssl.SSLSocket:
    """The probe's TLS handshake on a connected blocking socket."""
    try:
        return context.wrap_socket(raw, server_hostname=name or None)
    except OSError as exc:
        kind = "tls_timeout" if isinstance(exc, TimeoutError) else handshake_kind(exc)
        raise TlsFailed(kind, reason(exc)) from None


def _verdict(proto: ClientProtocol, head: bytes) -> str | None:
    kind = handshake_result(proto, head)
    if kind is None:
        return None
    if kind.startswith("connect_ws_"):
        return f"WebSocket handshake refused: {refusal(head)}"
    return f"WebSocket handshake broken: {proto.handshake_exc or refusal(head)}"


def ws_options(targets: tuple, subprotocol: str, headers: tuple[tuple[str, str], ...],
               ping_interval_s: float = 0.0, compress: bool = False) -> WsOptions:
    """The options of a run's ws:// or wss:// targets."""
    uris = tuple(f"{t.scheme}://{_hostport(t.host, t.port)}{t.path or '/'}" for t in targets)
    return WsOptions(uris, subprotocol, headers, int(ping_interval_s * SEC), compress)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

