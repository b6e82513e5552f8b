"""Socket.IO's flags (declared once: the run's table takes them from the registry) and its
part of the plan (:class:`SioOptions`, ``Plan.options``), checked here: each problem raises
:class:`~harness.core.specs.ConfigError` with one line naming the flag. No sockets; the
payload template is checked by harness.protocols.ws.wstemplate (numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.settings import BOOL, STR, Applies, Setting
from harness.core.specs import ConfigError, cut, flag_name

_SIO: Applies = (frozenset({"sio"}), "sio:// and sios:// targets")
DEFAULT_PAYLOAD = '{"stamp": "{stamp}", "text": "{text}"}'
# events a client may not emit: socket.io keeps them for itself
RESERVED = frozenset(("connect", "connect_error", "disconnect", "disconnecting",
                      "newListener", "removeListener"))

SETTINGS = (
    Setting("--sio-namespace", "Target", "sio://: the namespace joined (CONNECT), e.g. /chat",
            STR, "/", applies=_SIO),
    Setting("--sio-event", "Target", "sio://: the event emitted, and counted when it comes "
            "back; other events are skipped", STR, "message", applies=_SIO),
    Setting("--sio-payload", "Target", "sio://: the emit's JSON payload, a template with "
            "\"{stamp}\" (and {text}: filler to --size), as --ws-text; none: "
            + DEFAULT_PAYLOAD, STR, "", applies=_SIO),
    Setting("--sio-ack", "Target", "sio://: every emit asks for an ack: the time to it "
            "(sio_ack_ms) and emits never acked (sio_no_ack)", BOOL, False, applies=_SIO),
)


@dataclass(frozen=True, slots=True)
class SioOptions:
    """A run's Socket.IO settings: the namespace joined, the event emitted (and counted when
    it comes back), whether every emit asks for an ack, the payload template."""

    namespace: str = "/"
    event: str = "message"
    ack: bool = False
    payload: str = DEFAULT_PAYLOAD


def plan_options(run: dict[str, Any], targets: tuple[Any, ...]) -> SioOptions:
    """The run's :class:`SioOptions`, checked (``--size``: one size, that the payload
    template fills)."""
    return SioOptions(namespace(run), event(run), bool(run.get("sio_ack")), payload(run))


def namespace(run: dict[str, Any]) -> str:
    text = str(run.get("sio_namespace") or "/")
    if not text.startswith("/") or "," in text or not text.isprintable() or " " in text:
        raise ConfigError(f"{flag_name(run, 'sio_namespace')}: {cut(text)!r}: expected a "
                          "namespace such as / or /chat (no spaces or commas)")
    return text


def event(run: dict[str, Any]) -> str:
    text = str(run.get("sio_event") or "")
    if not text or not text.isprintable() or text in RESERVED:
        raise ConfigError(f"{flag_name(run, 'sio_event')}: {cut(text)!r}: expected an event "
                          "name (printable, not one socket.io keeps: connect, disconnect, ...)")
    return text


def payload(run: dict[str, Any]) -> str:
    """``--sio-payload``: a JSON object with "{stamp}", filled to ``--size`` (one size)."""
    template = str(run.get("sio_payload") or DEFAULT_PAYLOAD)
    name = flag_name(run, "sio_payload")
    size = run.get("size", 64)
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: a payload takes one --size, not a range or a list "
                          f"({cut(size)!r})") from None
    from harness.protocols.ws.wstemplate import TemplateError, TextTemplate
    try:
        template.encode("utf-8")
        TextTemplate(template, size)
    except UnicodeEncodeError:
        raise ConfigError(f"{name}: not valid UTF-8") from None
    except TemplateError as exc:
        raise ConfigError(f"{name}: {cut(template)!r}: {exc}") from None
    return template
