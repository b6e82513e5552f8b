"""Values that used to be taken silently (issue 20, item 8): a flag that does not apply to
the target (one table, harness.config.table.APPLIES) is exit 2 naming both; port 0 in a URL;
--header given twice or naming a header the handshake writes itself; --max-regression
parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analysis.max_regression import parse_limits
from harness.config import build as cfg
from harness.config.build import ConfigError
from tests.support import harness


def plan(**flags: object) -> cfg.Plan:
    return cfg.build_plan(cfg.settings({}, flags))


@pytest.mark.parametrize("url", ["http://127.0.0.1:0/", "https://h:0/x", "ws://127.0.0.1:0/",
                                 "wss://h:0/"])
def test_port_0_in_a_url_is_refused_not_the_schemes_default(url: str) -> None:
    with pytest.raises(ConfigError, match="port 0 out of range 1-65535"):
        cfg.parse_target(url)


@pytest.mark.parametrize(("flags", "says"), [
    ({"host": "127.0.0.1:5000", "ws_subprotocol": "chat"},
     "--ws-subprotocol applies to ws:// and wss:// targets, not raw tcp 127.0.0.1:5000"),
    ({"host": "http://127.0.0.1:5000/", "header": "A: b"},
     "--header applies to ws:// and wss:// targets, not http://127.0.0.1:5000/"),
    ({"host": "127.0.0.1:5000", "ping_interval": 1.0}, "--ping-interval applies to ws://"),
    ({"host": "http://127.0.0.1:5000/", "reconnect": True}, "--reconnect applies to ws://"),
    ({"host": "127.0.0.1:5000", "ws_compress": True}, "--ws-compress applies to ws://"),
    ({"host": "127.0.0.1:5000", "ws_match": "a=b"}, "--ws-match applies to ws://"),
    ({"ws_text": '{"s": "{stamp}"}'},
     "--ws-text applies to ws:// and wss:// targets, not the embedded server (no --host)"),
    ({"host": "ws://127.0.0.1:5000/", "accept": "404"},
     "--accept applies to http:// and https:// targets, not ws://127.0.0.1:5000/"),
    ({"host": "127.0.0.1:5000", "redis_cmd": "get"},
     "--redis-cmd applies to --workload redis, not raw tcp 127.0.0.1:5000"),
    ({"host": "127.0.0.1:5000", "workload": "redis", "mc_cmd": "get"},
     "--mc-cmd applies to --workload memcached, not --workload redis"),
    ({"host": "http://127.0.0.1:5000/", "keys": 5},
     "--keys applies to --workload redis and memcached, not http://127.0.0.1:5000/"),
])
def test_a_flag_for_another_kind_of_target_is_refused_naming_both(flags: dict,
                                                                  says: str) -> None:
    with pytest.raises(ConfigError) as exc:
        plan(**flags)
    assert str(exc.value).startswith(says), exc.value


def test_each_flag_is_taken_by_the_targets_it_applies_to() -> None:
    from harness.config.table import APPLIES
    assert set(APPLIES) >= {"ws_subprotocol", "header", "accept", "redis_cmd", "mc_cmd"}
    p = plan(host="ws://127.0.0.1:5000/", ws_subprotocol="chat", ping_interval=1.0,
             header=["A: 1", "B: 2"], reconnect=True)
    assert p.options.headers == (("A", "1"), ("B", "2")) and p.options.subprotocol == "chat"
    assert p.options.ping_interval_s == 1.0 and p.options.reconnect
    assert plan(ws=True, ws_compress=True).options.compress  # the embedded --ws server
    assert plan(host="https://127.0.0.1:5000/", accept="404").accept
    assert plan(host="127.0.0.1:5000", workload="memcached", mc_cmd="get", keys=5).requests


@pytest.mark.parametrize(("header", "says"), [
    (["A: 1", "a: 2"], "--header: a is given twice"),
    (["Host: evil"], "--header: 'Host: evil': the handshake sends Host itself"),
    (["Sec-WebSocket-Protocol: x"], "the handshake sends Sec-WebSocket-Protocol itself"),
])
def test_a_header_twice_or_one_the_handshake_writes_is_refused(header: list[str],
                                                               says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        plan(host="ws://127.0.0.1:5000/", header=header)


def test_the_cli_keeps_every_header_and_exits_2_naming_flag_and_target(tmp_path: Path) -> None:
    # --header twice: both reach the check (only the last was kept before)
    r = harness("run", "--host", "ws://127.0.0.1:1/", "--header", "A: 1", "--header", "a: 2",
                cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == \
        "harness: --header: a is given twice (one value per header)", r.stderr
    r = harness("run", "--host", "127.0.0.1:1", "--ws-subprotocol", "x", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("harness: --ws-subprotocol applies to ws:// and wss:// "
                                "targets, not raw tcp 127.0.0.1:1"), r.stderr


@pytest.mark.parametrize(("text", "says"), [
    ("p99=10%%", "not a number"), ("p99=10%,", "an empty limit"),
    ("errors=200%", "the error rate is at most 100%"), ("p99=1e1", "not a number"),
    ("p99=-5%", ">= 0"), ("p99=nan", "not a number"),
    ("throughput=150%", "at most 100%"), ("p99=10%,p99=5%", "given twice"),
    (",p99=10%", "an empty limit"),
])
def test_max_regression_is_parsed_strictly(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_limits(text)


def test_max_regression_takes_percentages_fractions_and_counts() -> None:
    assert parse_limits("p99=10%, throughput=.05,errors=100%,lost=3") == {
        "p99": 0.1, "throughput": 0.05, "errors": 1.0, "lost": 3.0}
