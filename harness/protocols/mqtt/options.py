"""The MQTT part of a plan (``Plan.options``), built and checked at plan time from the
run's ``--mqtt-*`` settings and its targets: :class:`Session`, what every connection's
session asks. Light: no sockets. A bad value raises
:class:`~harness.core.specs.ConfigError`, one line naming the flag or key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from harness.core.settings import int_range
from harness.core.specs import ConfigError, cut, flag_name, number

DEFAULT_TOPIC = "chat/room"
MAX_STRING = 65_535  # bytes of an MQTT UTF-8 string
WILDCARDS = frozenset("#+")


@dataclass(frozen=True, slots=True)
class Session:
    """What every connection's session asks: the protocol level (4: 3.1.1, 5), client id
    prefix (the connection's number follows), keep-alive s (0: none), clean start, user,
    password, QoS, and per target node the topic published to and the filter subscribed
    to."""

    version: int
    client_prefix: str
    keepalive_s: int
    clean: bool
    user: str
    password: str
    qos: int
    topics: tuple[str, ...]
    filters: tuple[str, ...]


def options(run: dict[str, Any], targets: tuple[Any, ...]) -> Session:
    """The session of an mqtt:// run: the topic of each target is its URL's path (without
    the leading /), else ``--mqtt-topic``; the filter ``--mqtt-filter``, else the topic."""
    if str(run.get("workload", "")) == "echo":
        raise ConfigError(f"{flag_name(run, 'workload')}: echo: an mqtt:// run publishes to "
                          "subscribers (--workload chat, with --listen N subscribers per "
                          "target)")
    topic = _string(run, "mqtt_topic") or DEFAULT_TOPIC
    filt = _string(run, "mqtt_filter")
    topics = tuple(_topic(t, topic) for t in targets) or (topic,)
    for t in (topic, *topics):
        if WILDCARDS & set(t):
            where = flag_name(run, "mqtt_topic") if t == topic else "--host"
            raise ConfigError(f"{where}: {cut(t)!r}: a topic to publish to has no wildcard "
                              "(# or +): subscribe with --mqtt-filter")
    _check_filter(run, filt)
    prefix = _string(run, "mqtt_client_id") or f"harness-{os.getpid()}-"
    return Session(5 if str(run.get("mqtt_version", "3.1.1")) == "5" else 4, prefix,
                   _int(run, "mqtt_keepalive", 60, 65535), not run.get("mqtt_keep_session"),
                   _string(run, "mqtt_user"), _string(run, "mqtt_password"),
                   _int(run, "mqtt_qos", 0, 2), topics, tuple(filt or t for t in topics))


def _int(run: dict[str, Any], key: str, default: int, hi: int) -> int:
    """A whole number setting in [0, hi] (its flag named when it is not)."""
    if key not in run:
        return default
    return int(number(run, key, spec=int_range(0, hi)))


def _topic(target: Any, default: str) -> str:
    path = str(getattr(target, "path", "") or "")
    return unquote(path.lstrip("/").split("?", 1)[0]) or default


def _string(run: dict[str, Any], key: str) -> str:
    text = str(run.get(key) or "")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_STRING or "\x00" in text:
        raise ConfigError(f"{flag_name(run, key)}: {cut(text)!r}: an MQTT string is at most "
                          "65,535 bytes of UTF-8 without NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{flag_name(run, key)}: not valid UTF-8") from None
    return text


def _check_filter(run: dict[str, Any], filt: str) -> None:
    """A topic filter: ``#`` only as the last level, ``+`` only as a whole level."""
    levels = filt.split("/")
    for k, level in enumerate(levels):
        if ("#" in level and (level != "#" or k != len(levels) - 1)) or \
                ("+" in level and level != "+"):
            raise ConfigError(f"{flag_name(run, 'mqtt_filter')}: {cut(filt)!r}: # may only be "
                              "the last level and + a whole level (a/+/c, a/#)")
