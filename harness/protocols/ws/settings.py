"""WebSocket's part of the plan (:class:`WsPlan`, ``Plan.options``), built at plan time by
:func:`plan_options` (the ws Spec's ``options``) from the checked settings of a ws:// or
wss:// run: ``--ws-subprotocol``, ``--header``, ``--ping-interval``, ``--ws-text``,
``--ws-match``, ``--reconnect`` and ``--ws-compress``. Each problem raises
:class:`~harness.core.specs.ConfigError` with one line naming the flag or key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.plan import Target
from harness.core.specs import ConfigError, cut, flag_name, number

_NOT_TOKEN = frozenset(' \t()<>@,;=\"/[]?{}:')  # not in an HTTP header name
# headers the WebSocket handshake writes itself: an extra one would be a second copy
_OWN_HEADERS = frozenset(("host", "upgrade", "connection", "sec-websocket-key",
                          "sec-websocket-version", "sec-websocket-extensions",
                          "sec-websocket-protocol"))

# run.json's config keeps WebSocket's settings at its top level, as when they were Plan
# fields (harness.report.document.plan_dict): its key for each WsPlan field
CONFIG_KEYS = (("ws_subprotocol", "subprotocol"), ("headers", "headers"),
               ("ping_interval_s", "ping_interval_s"), ("ws_text", "text"),
               ("ws_match", "match"), ("reconnect", "reconnect"), ("ws_compress", "compress"))


@dataclass(frozen=True, slots=True)
class WsPlan:
    """A run's WebSocket settings: the subprotocol asked for in the handshake ("": none),
    extra handshake headers, a ping on every connection this often (0: none), the JSON
    template of text messages ("": binary messages), the (field, value) a text message must
    have to count, whether a dropped connection is reopened, whether permessage-deflate is
    offered."""

    subprotocol: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    ping_interval_s: float = 0.0
    text: str = ""
    match: tuple[str, str] | None = None
    reconnect: bool = False
    compress: bool = False


def plan_options(run: dict[str, Any], targets: tuple[Target, ...]) -> WsPlan:
    """The run's :class:`WsPlan`, checked (``--ws-text`` against the one ``--size``)."""
    from harness.protocols.ws import SETTINGS
    from harness.wire.payload import parse_size
    size = parse_size(run.get("size", 64), flag_name(run, "size"))
    ping = next(s.spec for s in SETTINGS if s.key == "ping_interval")
    return WsPlan(subprotocol(run), headers(run), float(number(run, "ping_interval", spec=ping)),
                  text(run, targets, size), match(run), bool(run.get("reconnect")),
                  bool(run.get("ws_compress")))


def of_plan(plan: Any) -> WsPlan:
    """The WebSocket part of ``plan`` (its options), or the defaults when the run is not
    WebSocket."""
    return plan.options if isinstance(plan.options, WsPlan) else WsPlan()


def subprotocol(run: dict) -> str:
    """``--ws-subprotocol NAME[,NAME...]``: HTTP tokens only (it goes into a header line)."""
    text = str(run.get("ws_subprotocol") or "")
    names = [t.strip() for t in text.split(",")]
    if text and not all(t and t.isascii() and t.isprintable() and not set(t) & _NOT_TOKEN
                        for t in names):
        raise ConfigError(f"{flag_name(run, 'ws_subprotocol')}: {cut(text)!r}: expected a "
                          "subprotocol name or a comma list of them (printable ASCII, no "
                          "spaces or separators)")
    return text


def headers(run: dict) -> tuple[tuple[str, str], ...]:
    """``--header 'Name: value'`` (repeated, or a list in harness.toml): extra handshake
    headers of a ws:// run, every one sent. A name given twice, and the headers the
    handshake writes itself (Host from the URL, the Upgrade and Sec-WebSocket-* ones:
    --ws-subprotocol, --ws-compress) are refused."""
    value = run.get("header") or []
    items = [value] if isinstance(value, str) else list(value)
    out: list[tuple[str, str]] = []
    flag = flag_name(run, "header")
    for item in items:
        name, sep, val = str(item).partition(":")
        name = name.strip()
        if not sep or not name or not name.isascii() or set(name) & _NOT_TOKEN \
                or not val.strip().isprintable():
            raise ConfigError(f"{flag}: {cut(str(item))!r}: expected 'Name: value'")
        low = name.lower()
        if low in _OWN_HEADERS:
            raise ConfigError(f"{flag}: {cut(str(item))!r}: the handshake sends {name} itself "
                              "(Host comes from the URL)")
        if any(n.lower() == low for n, _ in out):
            raise ConfigError(f"{flag}: {name} is given twice (one value per header)")
        out.append((name, val.strip()))
    return tuple(out)


def text(run: dict, targets: tuple[Target, ...], spec: object) -> str:
    """``--ws-text TEMPLATE``: checked against ``--size`` (one size) and ws:// targets."""
    template = str(run.get("ws_text") or "")
    if not template:
        return ""
    name = flag_name(run, "ws_text")
    try:
        template.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes of argv arrive as surrogates
        byte = ord(exc.object[exc.start]) & 0xFF
        raise ConfigError(f"{name}: not valid UTF-8 (byte 0x{byte:02x} at character "
                          f"{exc.start}): a text message is UTF-8") from None
    if targets and targets[0].scheme not in ("ws", "wss"):
        raise ConfigError(f"{name}: text messages need a ws:// target")
    if not isinstance(spec, int):
        raise ConfigError(f"{name}: text messages take one --size, not a range or a list")
    from harness.protocols.ws.wstemplate import TemplateError, TextTemplate
    try:
        TextTemplate(template, spec)  # a message takes --size bytes, or the template's least
    except TemplateError as exc:
        raise ConfigError(f"{name}: {cut(template)!r}: {exc}") from None
    return template


def match(run: dict) -> tuple[str, str] | None:
    """``--ws-match field=value``: the rule a text message must meet to count."""
    rule = str(run.get("ws_match") or "")
    if not rule:
        return None
    field, sep, value = rule.partition("=")
    if not sep or not field.strip():
        raise ConfigError(f"{flag_name(run, 'ws_match')}: {cut(rule)!r}: expected field=value")
    return field.strip(), value.strip()
