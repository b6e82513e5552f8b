"""WebSocket (RFC 6455): ``ws://`` and ``wss://`` targets (port 80 or 443 unless given), the
stamped frames of raw TCP inside binary messages, or JSON text messages with the stamp in a
field (``--ws-text``). Closes are counted by code (``ws_close_1001``); ``--reconnect`` reopens
dropped connections; ``--ws-compress`` offers permessage-deflate. Its built-in target is the
embedded WebSocket echo or chat server (``--ws``, harness.targets.wsecho)."""

from __future__ import annotations

from harness.protocols.spec import Option, Spec

OPTIONS = (
    Option("ws_subprotocol", "--ws-subprotocol", "str", "",
           help="ws://: the subprotocol asked for in the handshake"),
    Option("header", "--header", "strs", [],
           help="ws://: an extra handshake header, 'Name: value' (repeatable)"),
    Option("ping_interval", "--ping-interval", "float", 0.0, 0, 3600, zero_or=0.01,
           help="ws://: seconds between pings on every connection (0 = none)"),
    Option("ws_text", "--ws-text", "str", "",
           help="ws://: text messages from a JSON template with {stamp}"),
    Option("ws_match", "--ws-match", "str", "",
           help="ws://: field=value a text message must have to count"),
    Option("reconnect", "--reconnect", "bool", False,
           help="ws://: reopen, with backoff, a connection the server closed or dropped "
                "(counted)"),
    Option("ws_compress", "--ws-compress", "bool", False,
           help="ws://: offer permessage-deflate"),
)


def guess(raw: bytes, framing: str, hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back to a WebSocket run suggest: a handshake response that
    broke the upgrade (a wrong Sec-WebSocket-Accept, a missing Upgrade header), or
    messages that are not stamped frames."""
    if raw.startswith(b"HTTP/"):
        return ("the WebSocket handshake broke: the response is not a valid upgrade "
                "(its Sec-WebSocket-Accept, Upgrade and Connection headers)")
    if not raw and hung_up:
        return "the target hung up without a reply: is it a WebSocket echo server?"
    if not raw:
        return ("the target took the messages and never answered: is it a WebSocket echo "
                "server?")
    return (f"the messages that came back are not stamped {framing} frames: is it an echo "
            "server (or are its messages text: --ws-text)?")


SPEC = Spec("ws", "framed", "harness.protocols.ws.wire:WIRE", guess,
            "stamped {framing} messages in WebSocket messages",
            schemes={"ws": 80, "wss": 443}, tls_schemes=("wss",), options=OPTIONS,
            sort="ws", applies_to="ws:// and wss:// targets",
            error_prefixes=("ws_close_", "connect_ws_", "reconnect_", "tls_"),
            extras=("ws_compress", "reconnect_ms", "reconnects"),
            target="harness.targets.wsecho")
