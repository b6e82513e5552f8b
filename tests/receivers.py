"""What the alert tests send to: an HTTP webhook receiver (``http.server``) that keeps each
POST's path and JSON body, and an SMTP mailbox handler (aiosmtpd) that keeps each message."""

from __future__ import annotations

import http.server
import json


class Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return "250 OK"
