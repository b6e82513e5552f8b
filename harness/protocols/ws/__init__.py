"""WebSocket (RFC 6455): ``ws://`` and ``wss://`` targets (port 80 or 443 unless given), the
stamped frames of raw TCP inside binary messages, or JSON text messages with the stamp in a
field (``--ws-text``). Closes are counted by code (``ws_close_1001``); ``--reconnect`` reopens
dropped connections; ``--ws-compress`` offers permessage-deflate. Its built-in target is the
embedded WebSocket echo or chat server (``--ws``, harness.targets.wsecho)."""

from __future__ import annotations

from harness.core.settings import BOOL, STR, Applies, Setting, float_range
from harness.core.settings import Spec as CheckSpec
from harness.protocols.spec import Spec

_WS: Applies = (frozenset({"ws"}), "ws:// and wss:// targets")
SETTINGS = (
    Setting("--ws", "Target", "with no --host: the embedded server speaks WebSocket "
            "(ws://)", BOOL, False, search=False),
    Setting("--ws-subprotocol", "Target", "ws://: the subprotocol asked for in the "
            "handshake", STR, "", applies=_WS),
    Setting("--header", "Target", "ws://: an extra handshake header, 'Name: value' (repeat "
            "for more; not Host, Upgrade or Sec-WebSocket-*)", CheckSpec("strs"), (),
            repeatable=True, applies=_WS),
    Setting("--ping-interval", "Pacing", "ws://: seconds between pings on every connection "
            "(0 = none; 0.01 to 3600)", float_range(0, 3600, zero_or=0.01), 0.0, applies=_WS),
    Setting("--ws-text", "Target", "ws://: text messages from a JSON template with "
            "\"{stamp}\" (and {text}: filler to --size)", STR, "", applies=_WS),
    Setting("--ws-match", "Target", "ws://: field=value a text message must have to "
            "count; others are skipped", STR, "", applies=_WS),
    Setting("--reconnect", "Pacing", "ws://: reopen, with backoff, a connection the server "
            "closed or dropped (counted)", BOOL, False, search=False, applies=_WS),
    Setting("--ws-compress", "Target", "ws://: offer permessage-deflate", BOOL, False,
            search=False, applies=_WS),
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
            schemes={"ws": 80, "wss": 443}, tls_schemes=("wss",), settings=SETTINGS,
            options="harness.protocols.ws.settings:plan_options", sort="ws",
            applies_to="ws:// and wss:// targets",
            error_prefixes=("ws_close_", "connect_ws_", "reconnect_", "tls_"),
            extras=("ws_compress", "reconnect_ms", "reconnects"),
            target="harness.targets.wsecho")
