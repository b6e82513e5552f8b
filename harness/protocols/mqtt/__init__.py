"""MQTT 3.1.1 and 5: ``mqtt://host[:port][/topic]`` and ``mqtts://`` (TLS) targets (port
1883 or 8883 unless given). Publishers (``--conns``) send stamped frames as PUBLISH payloads
at ``--mqtt-qos`` 0, 1 or 2 to the target's topic; subscribers (``--listen`` per target)
subscribe to it (or ``--mqtt-filter``) and every delivery is matched by stamp: the chat
workload's exact fan-out accounting (m x subscribers deliveries, lost, duplicated and
reordered per target node). The broker's acks (PUBACK, PUBREC/PUBREL/PUBCOMP, and at QoS 0
a PINGRESP after each round) free a publisher's slots and give the ack latency. Faults are
counted by kind: ``connect_mqtt_<code>``, ``connect_mqtt_suback_<code>``,
``connect_mqtt_timeout``, ``mqtt_malformed``, ``mqtt_oversize``,
``mqtt_disconnect_<reason>``, ``mqtt_stray_ack``."""

from __future__ import annotations

from harness.core.settings import BOOL, STR, Applies, Setting, int_range
from harness.protocols.spec import Spec

_MQTT: Applies = (frozenset({"mqtt"}), "mqtt:// and mqtts:// targets")
SETTINGS = (
    Setting("--mqtt-qos", "Target", "mqtt://: the QoS of every PUBLISH and subscription "
            "(0, 1 or 2)", int_range(0, 2), 0, applies=_MQTT),
    Setting("--mqtt-version", "Target", "mqtt://: the protocol version", STR, "3.1.1",
            choices=("3.1.1", "5"), applies=_MQTT),
    Setting("--mqtt-topic", "Target", "mqtt://: the topic published to, for targets whose "
            "URL has no path (mqtt://host/topic)", STR, "chat/room", applies=_MQTT),
    Setting("--mqtt-filter", "Target", "mqtt://: the topic filter subscribers subscribe to "
            "(+ and # wildcards; default: the topic)", STR, "", applies=_MQTT),
    Setting("--mqtt-user", "Target", "mqtt://: the user name CONNECT carries", STR, "",
            applies=_MQTT),
    Setting("--mqtt-password", "Target", "mqtt://: the password CONNECT carries", STR, "",
            applies=_MQTT),
    Setting("--mqtt-keepalive", "Pacing", "mqtt://: the keep-alive in s (a PINGREQ every "
            "half of it; 0 = none)", int_range(0, 65535), 60, applies=_MQTT),
    Setting("--mqtt-client-id", "Target", "mqtt://: client id prefix (the connection's "
            "number follows; default harness-PID-)", STR, "", applies=_MQTT),
    Setting("--mqtt-keep-session", "Target", "mqtt://: CONNECT without clean start "
            "(clean session)", BOOL, False, search=False, applies=_MQTT),
)


def guess(raw: bytes, framing: str, hung_up: int = 0, http_url: str | None = None) -> str:
    """What the bytes that came back to an MQTT run suggest."""
    if raw.startswith(b"HTTP/"):
        return "the target answered with HTTP: is it an MQTT broker (or its WebSocket port)?"
    if raw[:1] == b"\x20" and len(raw) >= 4 and raw[3]:
        return f"the broker refused the connection (CONNACK code {raw[3]})"
    if not raw and hung_up:
        return "the target hung up without a CONNACK: is it an MQTT broker?"
    if not raw:
        return ("no message came to any subscriber: do the publishers' topic and the "
                "subscribers' filter meet (--mqtt-topic, --mqtt-filter), and is --listen set?")
    return ("the messages that came back are not stamped frames: is another client "
            "publishing to the topic?")


SPEC = Spec("mqtt", "framed", "harness.protocols.mqtt.wire:WIRE", guess,
            "stamped {framing} messages in MQTT PUBLISH packets",
            schemes={"mqtt": 1883, "mqtts": 8883}, tls_schemes=("mqtts",), settings=SETTINGS,
            options="harness.protocols.mqtt.options:options",
            sort="mqtt", applies_to="mqtt:// and mqtts:// targets",
            error_prefixes=("mqtt_", "connect_mqtt_", "tls_"),
            extras=("mqtt_acks", "mqtt_ack_ms", "mqtt_retained_msgs", "mqtt_retained_msg_ms"))
