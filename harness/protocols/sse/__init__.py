"""Server-Sent Events: ``sse://host:port/path`` targets (port 80 unless given), the chat
workload over HTTP push. Every connection holds a ``GET`` event stream of ``path``
(``text/event-stream``); a sender also ``POST``s its stamped messages (a JSON body with the
stamp in a field) to another path of the same server (``/send`` unless ``--sse-post``).
Deliveries are the stream's events matched by the stamp in their data, counted exactly as
the chat workload's (m·(s+n)). A stream the server ends is reopened with ``Last-Event-ID``
(a reconnect). No built-in target."""

from __future__ import annotations

from harness.core.settings import STR, Applies, Setting
from harness.protocols.spec import Spec

_SSE: Applies = (frozenset({"sse"}), "sse:// targets")
SETTINGS = (
    Setting("--sse-post", "Target", "sse://: the path senders POST their messages to (on "
            "the stream's server)", STR, "/send", applies=_SSE),
    Setting("--sse-body", "Target", "sse://: the POST body, a JSON template with "
            "\"{stamp}\" (and {text}: filler to --size)", STR,
            '{"stamp":"{stamp}","text":"{text}"}', applies=_SSE),
    Setting("--sse-event", "Target", "sse://: the event type that is a delivery (others "
            "are skipped)", STR, "message", applies=_SSE),
)


def guess(raw: bytes, framing: str = "", hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back to an SSE run suggest."""
    if raw.startswith(b"HTTP/"):
        status = raw.split(b"\r\n", 1)[0].decode("latin-1", "replace")[:80]
        return (f"the event stream did not open ({status}): is the path an SSE endpoint "
                "(200, Content-Type: text/event-stream)?")
    if not raw and hung_up:
        return "the target hung up without a reply: is it an SSE server?"
    if not raw:
        return ("no event carried a stamp: does the server broadcast what is POSTed to "
                "--sse-post (the JSON body, with its stamp field)?")
    return ("the events that came back carry no stamp: does the server broadcast the POSTed "
            "JSON as the event's data?")


SPEC = Spec("sse", "framed", "harness.protocols.sse.wire:WIRE", guess,
            "stamped JSON POSTs, read back from SSE event streams",
            schemes={"sse": 80}, settings=SETTINGS,
            options="harness.protocols.sse.options:plan_options", sort="sse",
            applies_to="sse:// targets",
            error_prefixes=("connect_sse_", "sse_post_"), failed_replies=("sse_post_",))
