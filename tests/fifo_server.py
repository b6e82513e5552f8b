"""A test server whose replies carry no stamp, for in-order (FIFO) matching.

``fixed_reply(reply=b"OK", delay=0.0, greeting=b"")``: each frame gets one frame whose
body is ``reply`` (same framing), ``delay`` seconds (float >= 0) after the server read it,
in order; ``greeting``, when not empty, is one frame sent on accept before any request
(a reply nobody asked for). Registered into :mod:`tests.servers`, so
``servers.start("fixed_reply", framing=..., reply=...)`` runs it like any behaviour.
"""

from __future__ import annotations

from tests import servers


@servers._register("fixed_reply")
class FixedReply(servers.Behaviour):
    def __init__(self, *, reply: bytes = b"OK", delay: float = 0.0,
                 greeting: bytes = b"") -> None:
        servers._need(isinstance(reply, bytes) and b"\n" not in reply,
                      f"fixed_reply: reply must be bytes without a newline, got {reply!r}")
        servers._need(delay >= 0, f"fixed_reply: delay must be >= 0 s, got {delay}")
        self.reply = reply
        self.delay = float(delay)
        self.greeting = greeting

    def on_open(self, conn: servers.Conn) -> None:
        if self.greeting:
            self.server.send(conn, self.server.framing.encode(self.greeting))

    def on_frames(self, conn: servers.Conn, frames: list[bytes], first: int,
                  now: float) -> None:
        out = self.server.framing.encode(self.reply) * len(frames)
        if self.delay:
            self.server.call_at(now + self.delay, self.server.send, conn, out)
        else:
            self.server.send(conn, out)
