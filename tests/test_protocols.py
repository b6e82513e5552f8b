"""The protocol registry: every protocol harness speaks declares itself there, light to
import, with its schemes, default ports, options (their defaults those of default.toml)
and its guess when nothing valid came back."""

from __future__ import annotations

import subprocess
import sys

from harness import protocols
from harness.core import specs


def test_the_registry_has_every_protocol_and_its_schemes() -> None:
    assert {"tcp", "http", "redis", "memcached", "ws"} <= set(protocols.REGISTRY)
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


def test_every_protocol_option_is_a_setting_with_its_default() -> None:
    for key, (option, owners) in protocols.options().items():
        assert specs.RUN_DEFAULTS[key] == option.default, key
        assert specs.RUN_SPEC[key].kind == option.kind, key
        assert option.flag == "--" + key.replace("_", "-")
        if owners[0].applies_to:
            assert specs.APPLIES[key][0] == {s.sort for s in owners}


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
