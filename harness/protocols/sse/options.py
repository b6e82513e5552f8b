"""The settings of an sse:// run, checked at plan time (its ``Plan.options``):
``--sse-post PATH``, ``--sse-body TEMPLATE`` and ``--sse-event NAME``. Each problem raises
:class:`~harness.core.specs.ConfigError` with one line naming the flag or key. Light: the
body template is checked by harness.protocols.ws.wstemplate, imported only then."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.specs import ConfigError, cut, flag_name

BODY = '{"stamp":"{stamp}","text":"{text}"}'  # the default POST body: --size bytes of JSON


@dataclass(frozen=True, slots=True)
class SseOptions:
    """What a worker's SSE wire reads: the POST path, the body template, the event type."""

    post: str = "/send"
    body: str = BODY
    event: str = "message"


def plan_options(run: dict[str, Any], targets: tuple[Any, ...]) -> SseOptions:
    if run.get("tls"):
        raise ConfigError(f"{flag_name(run, 'tls')}: sse:// targets are plain HTTP (SSE over "
                          "TLS is not supported)")
    if str(run.get("workload") or "echo") == "echo":
        raise ConfigError("--workload: an sse:// target broadcasts every message to every "
                          "stream: run it with --workload chat")
    post = str(run.get("sse_post") or "/send")
    if not post.startswith("/") or not post.isascii() or not post.isprintable() \
            or " " in post:
        raise ConfigError(f"{flag_name(run, 'sse_post')}: {cut(post)!r}: expected a path "
                          "such as /send (printable ASCII, no spaces)")
    event = str(run.get("sse_event") or "message")
    if not event.isascii() or not event.isprintable() or event != event.strip():
        raise ConfigError(f"{flag_name(run, 'sse_event')}: {cut(event)!r}: expected an event "
                          "type such as message (printable ASCII)")
    return SseOptions(post, _body(run), event)


def _body(run: dict[str, Any]) -> str:
    body = str(run.get("sse_body") or BODY)
    from harness.wire.payload import parse_size
    size = parse_size(run.get("size", 64), flag_name(run, "size"))
    name = flag_name(run, "sse_body")
    if not isinstance(size, int):
        raise ConfigError(f"{flag_name(run, 'size')}: an sse:// run takes one --size, not a "
                          "range or a list")
    from harness.protocols.ws.wstemplate import TemplateError, TextTemplate
    try:
        TextTemplate(body, size)
    except TemplateError as exc:
        raise ConfigError(f"{name}: {cut(body)!r}: {exc}") from None
    except UnicodeEncodeError:
        raise ConfigError(f"{name}: not valid UTF-8") from None
    return body
