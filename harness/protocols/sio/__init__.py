"""Socket.IO v4 (Engine.IO 4 over WebSocket): ``sio://host:port/path`` and ``sios://`` (over
TLS) targets, port 80 or 443 unless given, path ``/socket.io/`` unless given (the upgrade goes
to it with ``EIO=4&transport=websocket``: no HTTP long-polling). Emits carry the stamp in a
JSON payload (a template, as ``--ws-text``), to a namespace; deliveries of that event are
matched by stamp (echo, or a chat room's broadcast), acks by their id. A wrong handshake, a
refused namespace and a server's disconnect are each their error kind (``sio_...``). Built on
the WebSocket package (harness.protocols.ws): its upgrade, framing, pings and closes."""

from __future__ import annotations

from harness.protocols.sio.settings import SETTINGS
from harness.protocols.spec import Spec

ERRORS = ("sio_handshake", "sio_connect_error", "sio_max_payload", "sio_no_open",
          "sio_no_connect", "sio_disconnect", "sio_close", "sio_no_ack", "sio_ack_unknown")


def guess(raw: bytes, framing: str, hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back to a Socket.IO run suggest."""
    if raw.startswith(b"HTTP/"):
        return ("the WebSocket upgrade to /socket.io/?EIO=4&transport=websocket was refused "
                "or broken: is it a socket.io v4 server on that path, taking the websocket "
                "transport (not polling only)?")
    if raw[:1] == b"0" and b"sid" in raw[:200]:
        return "the Engine.IO open packet came, but the namespace never answered CONNECT"
    if not raw and hung_up:
        return "the target hung up without a reply: is it a Socket.IO server?"
    if not raw:
        return ("the server took the emits and never sent the event back: does it emit it to "
                "the room (the sender included), under the same event name?")
    return ("the packets that came back are not the stamped event: does the server send back "
            "the payload as it got it (its \"stamp\" field)?")


SPEC = Spec("sio", "framed", "harness.protocols.sio.wire:WIRE", guess,
            "stamped Socket.IO events (Engine.IO 4 over WebSocket)",
            schemes={"sio": 80, "sios": 443}, tls_schemes=("sios",), settings=SETTINGS,
            options="harness.protocols.sio.settings:plan_options", sort="sio",
            applies_to="sio:// and sios:// targets",
            error_prefixes=("sio_", "ws_close_", "connect_ws_", "tls_"),
            extras=("sio_acks", "sio_ack_ms"))
