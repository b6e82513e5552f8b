"""The protocol registry: every protocol harness speaks declares itself there, light to
import, with its schemes, default ports, options (their defaults those of default.toml)
and its guess when nothing valid came back."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

from harness import protocols
from harness.config import table as specs


def test_the_registry_has_every_protocol_and_its_schemes() -> None:
    assert {"tcp", "http", "redis", "memcached", "ws", "sio", "sse"} <= set(protocols.REGISTRY)
    assert protocols.by_scheme("https") is protocols.by_name("http")
    assert protocols.by_scheme("wss") is protocols.by_name("ws")
    assert protocols.by_scheme("tcp") is None
    assert {"https", "wss"} <= protocols.TLS_SCHEMES
    assert protocols.by_name("redis").default_port("redis") == 6379
    assert protocols.by_name("ws").default_port("wss") == 443


def test_a_run_is_its_target_schemes_protocol_else_its_workloads() -> None:
    assert protocols.of_run("framed", "wss").name == "ws"
    assert protocols.of_run("framed", "tcp").name == "tcp"
    assert protocols.of_run("resp", "redis").name == "redis"
    assert protocols.of_run("memcache", "tcp").name == "memcached"
    assert protocols.of_run("http", "https").name == "http"


def test_every_protocol_setting_is_in_the_runs_table_once_with_its_default() -> None:
    owners: dict[str, set[str]] = {}
    for name, own in protocols.settings().items():
        for s in own:
            owners.setdefault(s.flag, set()).add(name)
            assert s in {replace(t, protocol="") for t in specs.SETTINGS} or any(
                t.flag == s.flag and replace(t, protocol=s.protocol) == s
                for t in specs.SETTINGS), s.flag
            if s.key:
                assert specs.RUN_DEFAULTS[s.key] == s.toml_default, s.key
    assert owners["--keys"] == {"redis", "memcached"}
    for name, spec in protocols.REGISTRY.items():  # a setting that applies to some runs only
        for s in spec.settings:  # applies to its own protocol's
            if s.applies is not None:
                assert spec.sort in s.applies[0], (name, s.flag)


def test_a_protocols_part_of_the_plan_is_its_own_settings_unless_it_says() -> None:
    from harness.config.build import build_plan, settings
    plan = build_plan(settings({}, {"host": "redis://127.0.0.1:6379", "keys": 7}))
    assert plan.options == {"redis_cmd": "ping", "keys": 7}
    assert build_plan(settings({}, {"host": "127.0.0.1:5000"})).options == {}


def test_each_protocol_guesses_why_nothing_valid_came_back() -> None:
    guess = {name: s.guess for name, s in protocols.REGISTRY.items()}
    assert "RESP" in guess["tcp"](b"+PONG\r\n", "len32", 0, None)
    assert "try --workload memcached" in guess["http"](b"ERROR\r\n", "", 0, None)
    assert "redis server" in guess["redis"](b"", "", 1, None)
    assert "try --workload redis" in guess["memcached"](b"-ERR x\r\n", "", 0, None)
    assert "WebSocket handshake" in guess["ws"](b"HTTP/1.1 200 OK\r\n", "len32", 0, None)


def test_the_registry_imports_neither_sockets_nor_numpy() -> None:
    code = ("import sys, harness.protocols\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('socket', 'numpy', 'websockets', 'ssl', 'selectors')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
