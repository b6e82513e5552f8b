"""The JSON template of a text WebSocket message: ``{stamp}`` (56 hex digits, the ASCII
stamp) and optionally ``{text}`` (filler up to ``--size`` bytes) inside a JSON text, e.g.
``{"type": "message", "stamp": "{stamp}", "text": "{text}"}``, checked and laid out once.

No sockets: config checks a ``--ws-text`` template with it, and
:class:`harness.protocols.ws.wstext.TextProtocol` writes a round's messages from it. Sizes
are bytes.
"""

from __future__ import annotations

import numpy as np
import orjson

from harness.wire import stamp

STAMP_FIELD = "stamp"


class TemplateError(ValueError):
    """A template that cannot carry the stamp (the message says why)."""


class TextTemplate:
    """The bytes of one message of ``size`` bytes and where its stamp goes."""

    def __init__(self, template: str, size: int) -> None:
        if template.count("{stamp}") != 1:
            raise TemplateError("needs {stamp} exactly once (inside a JSON string)")
        pre, post = template.split("{stamp}")
        fill_at = post.find("{text}")
        overhead = len((pre + post.replace("{text}", "")).encode()) + stamp.ASCII_SIZE
        fill = max(size - overhead, 0) if fill_at >= 0 else 0
        body = pre + "0" * stamp.ASCII_SIZE + post.replace("{text}", "x" * fill)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise TemplateError(f"not JSON once filled in ({exc})") from None
        if not isinstance(doc, dict) or doc.get(STAMP_FIELD) != "0" * stamp.ASCII_SIZE:
            raise TemplateError(f'needs "{STAMP_FIELD}": "{{stamp}}" in a JSON object')
        self.row = np.frombuffer(body.encode(), dtype=np.uint8)
        self.col = len(pre.encode())
        self.size = len(self.row)
        self.overhead = overhead
