"""Socket.IO v4 targets (harness/protocols/sio) against real servers the tests start on free
loopback ports: the Node ``socket.io`` 4.x chat room (tests/node/sio_chat.js, installed by
tests/setup.sh) and ``python-socketio`` on uvicorn (tests/sio_servers.py): exact fan-out of
a room, a server that drops every 10th message on one node, acks, namespaces, pings; and a
hostile server (tests/sio_servers.py hostile) whose every fault is one error kind.

The fan-out size is SIO_FANOUT="s,n,m" (default 3,20,500: seconds); the issue's full size,
3,100,1000 (103,000 deliveries), is run with SIO_FANOUT=3,100,1000."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from harness.config import build as cfg
from harness.core.specs import ConfigError
from tests.support import harness, plan_for, run_plan, stop

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "tests" / "node"
S, N, M = (int(x) for x in os.environ.get("SIO_FANOUT", "3,20,500").split(","))


@contextmanager
def node_room(*args: str) -> Iterator[list[int]]:
    """tests/node/sio_chat.js with ``args``; yields its ports once it listens."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        pytest.skip("node or socket.io missing: run tests/setup.sh (npm install in tests/node)")
    with _server(["node", str(NODE_DIR / "sio_chat.js"), *args]) as ports:
        yield ports


@contextmanager
def py_server(*args: str) -> Iterator[list[int]]:
    """tests/sio_servers.py with ``args``; yields its port(s) once it listens."""
    if args[0] == "py":
        pytest.importorskip("socketio", reason="python-socketio missing: pip install -e .[test]")
    with _server([sys.executable, "-m", "tests.sio_servers", *args]) as ports:
        yield ports


@contextmanager
def _server(cmd: list[str]) -> Iterator[list[int]]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORTS"), f"{cmd[1]} did not start: {line!r}"
        yield [int(p) for p in line.split()[1:]]
    finally:
        stop(proc)


def chat(ports: list[int], cwd: Path, *extra: str, messages: int = M, listen: int = N,
         senders: int = S, path: str = "/") -> dict:
    """A chat run over the room's nodes: ``senders`` emit (on the first node), ``listen``
    more per node only listen; one step of ``messages``."""
    hosts = ",".join(f"sio://127.0.0.1:{p}{path}" for p in ports)
    r = harness("run", "--workload", "chat", "--host", hosts, "--push-conns", str(senders),
                "--listen", str(listen), "--messages", str(messages), "--warmup", "0",
                "--timeout", "2", "--workers", "1", "--json", "--no-report", *extra, cwd=cwd)
    assert r.returncode in (0, 1, 4), r.stderr
    return orjson.loads(r.stdout)


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize(("flags", "says"), [
    ({"sio_namespace": "chat"}, "--sio-namespace"),
    ({"sio_event": "disconnect"}, "--sio-event"),
    ({"sio_payload": '{"text": "{text}"}'}, "--sio-payload"),
    ({"sio_payload": '{"stamp": "{stamp}"}', "size": "100-200"}, "--sio-payload"),
])
def test_a_bad_socketio_setting_is_one_config_error_naming_its_flag(flags: dict, says: str
                                                                    ) -> None:
    with pytest.raises(ConfigError, match=says):
        cfg.build_plan(cfg.settings({}, {"host": "sio://127.0.0.1:3000/", **flags}))


def test_socketio_flags_apply_to_sio_targets_only() -> None:
    with pytest.raises(ConfigError, match="--sio-event applies to sio://"):
        cfg.build_plan(cfg.settings({}, {"host": "ws://127.0.0.1:3000/", "sio_event": "x"}))
    plan = cfg.build_plan(cfg.settings({}, {"host": "sios://h/chat/", "sio_ack": True}))
    assert plan.options.ack and plan.targets[0].port == 443 and plan.tls is not None


# ---------------------------------------------------------------------------- Node socket.io


@pytest.mark.e2e
def test_a_node_room_delivers_every_message_to_every_client_the_sender_included(
        tmp_path: Path) -> None:
    with node_room() as ports:
        (step,) = chat(ports, tmp_path)["steps"]
    assert step["deliveries_expected"] == step["deliveries"] == M * (S + N)
    assert step["lost"] == 0 and step["duplicates"] == 0 and step["surplus"] == 0
    assert step["errors"]["protocol"] == 0 and step["connected"] == S + N


@pytest.mark.e2e
def test_a_node_that_drops_every_tenth_message_to_one_receiver_shows_exactly_that_loss(
        tmp_path: Path) -> None:
    # two ports of one socket.io server: the senders and a listener on the first, one
    # listener alone on the second, and the server drops every 10th message sent to it
    with node_room("--ports", "2", "--drop-port", "1", "--drop-every", "10") as ports:
        # (the drain waits 2 x --timeout of quiet for the dropped ones: a short timeout)
        (step,) = chat(ports, tmp_path, "--timeout", "0.5", listen=1)["steps"]
    first, second = step["per_node"]
    assert first["lost"] == 0 and first["deliveries"] == M * (S + 1)
    assert second["deliveries_expected"] == M and second["lost"] == M // 10
    assert step["duplicates"] == 0 and step["errors"]["protocol"] == 0


@pytest.mark.e2e
def test_a_room_that_leaves_the_sender_out_shows_exactly_the_senders_own_as_lost(
        tmp_path: Path) -> None:
    # socket.to(room).emit: each message reaches the s + n - 1 others; the expected count is
    # m * (s + n), so the m messages' own copies show as lost (open loop: a closed-loop
    # sender would wait for its own message back)
    with node_room("--exclude-sender") as ports:
        (step,) = chat(ports, tmp_path, "--rate", "100", "--timeout", "0.5", listen=5,
                       messages=300)["steps"]
    assert step["deliveries"] == 300 * (S + 5) - 300 and step["lost"] == 300
    assert step["duplicates"] == 0 and step["errors"]["protocol"] == 0


@pytest.mark.e2e
def test_a_namespace_and_acks_against_the_node_room(tmp_path: Path) -> None:
    with node_room("--namespace", "/chat") as ports:
        (step,) = chat(ports, tmp_path, "--sio-namespace", "/chat", "--sio-ack", listen=2,
                       messages=200)["steps"]
    assert step["deliveries"] == 200 * (S + 2) and step["lost"] == 0
    assert step["sio_acks"] == 200 and step["sio_ack_ms"]["p50"] > 0
    assert step["errors"].get("sio_no_ack", 0) == 0


@pytest.mark.e2e
def test_an_unknown_namespace_is_refused_by_its_kind_and_exit_3(tmp_path: Path) -> None:
    with node_room() as (port,):
        r = harness("run", "--host", f"sio://127.0.0.1:{port}/", "--sio-namespace", "/nope",
                    "--conns", "2", "--messages", "10", "--warmup", "0", "--json",
                    "--no-report", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    (step,) = orjson.loads(r.stdout)["steps"]
    assert step["errors"]["sio_connect_error"] == 2
    assert "sio_connect_error" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------- python-socketio


@pytest.mark.e2e
def test_a_python_socketio_room_on_uvicorn_delivers_exactly_with_acks(tmp_path: Path
                                                                     ) -> None:
    with py_server("py") as ports:
        (step,) = chat(ports, tmp_path, "--sio-ack", "--inflight", "4", listen=5,
                       messages=120)["steps"]
    assert step["deliveries"] == step["deliveries_expected"] == 120 * (S + 5)
    assert step["lost"] == 0 and step["duplicates"] == 0
    assert step["sio_acks"] == 120 and step["errors"].get("sio_no_ack", 0) == 0


@pytest.mark.e2e
def test_the_servers_pings_are_answered_so_it_keeps_every_connection() -> None:
    # pingInterval 1 s, pingTimeout 1 s: a client that did not pong would be dropped
    with py_server("py", "--ping-interval", "1") as (port,):
        (s,) = run_plan(plan_for(f"sio://127.0.0.1:{port}/", duration=2.5, warmup=0.0,
                                 rate=20.0, conns="1"))
    assert s["errors"]["closed"] == 0 and s["conns_lost"] == 0 and s["lost"] == 0
    assert s["errors"]["protocol"] == 0 and s["sent"] >= 40 and s["received"] >= 40


@pytest.mark.e2e
def test_sios_is_socketio_over_tls_verified_against_the_ca(tmp_path: Path) -> None:
    from tests import certs
    if not certs.available():
        pytest.skip("openssl missing: the TLS certificates cannot be made")
    c = certs.make(tmp_path)
    with py_server("py", "--cert", str(c.cert), "--key", str(c.key)) as (port,):
        (s,) = run_plan(plan_for(f"sios://127.0.0.1:{port}/", messages="200", warmup=0.0,
                                 conns="1", ca=str(c.ca)))
    assert s["sent"] == s["received"] == 200 and s["lost"] == 0
    assert s["handshakes"] == 1 and s["errors"]["protocol"] == 0


@pytest.mark.e2e
def test_a_polling_only_server_is_refused_in_one_line(tmp_path: Path) -> None:
    with py_server("py", "--polling-only") as (port,):
        r = harness("run", "--host", f"sio://127.0.0.1:{port}/", "--conns", "1",
                    "--messages", "5", "--no-report", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "connect_ws_403" in r.stderr and "Traceback" not in r.stderr  # (engineio: 403)
    assert "not polling only" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- hostile


def hostile_run(kind: str, cwd: Path, *extra: str, conns: int = 3) -> tuple[int, dict, str]:
    with py_server("hostile", "--bad", kind) as (port,):
        r = harness("run", "--host", f"sio://127.0.0.1:{port}/", "--conns", str(conns),
                    "--messages", "60", "--warmup", "0", "--timeout", "1",
                    "--connect-timeout", "1", "--workers", "1", "--json", "--no-report",
                    *extra, cwd=cwd)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, orjson.loads(r.stdout)["steps"][0], r.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(("kind", "error"), [
    ("open", "sio_handshake"), ("refuse", "sio_connect_error"), ("silent", "sio_no_connect"),
    ("disconnect", "sio_disconnect"), ("oversize", "protocol")])
def test_each_hostile_fault_on_one_connection_is_one_error_of_its_kind(
        kind: str, error: str, tmp_path: Path) -> None:
    rc, step, _ = hostile_run(kind, tmp_path)
    assert rc in (0, 1, 4)
    assert step["errors"][error] == 1  # the first connection only
    assert step["received"] > 0  # the run went on: the other connections got their echoes


@pytest.mark.e2e
def test_a_broken_packet_before_every_echo_is_one_protocol_error_each(tmp_path: Path) -> None:
    rc, step, _ = hostile_run("broken", tmp_path, conns=1)
    assert step["errors"]["protocol"] == step["sent"] == 60
    assert step["received"] == 60 and step["lost"] == 0


@pytest.mark.e2e
def test_a_server_that_never_acks_counts_every_emit_as_not_acked(tmp_path: Path) -> None:
    rc, step, _ = hostile_run("noack", tmp_path, "--sio-ack", conns=2)
    assert step["received"] == 60 and step["lost"] == 0
    assert step["errors"]["sio_no_ack"] == 60 and step["sio_acks"] == 0


# ---------------------------------------------------------------------------- the plan


@pytest.mark.e2e
def test_the_shipped_socketio_plan_runs_its_shortened_command_exactly(tmp_path: Path) -> None:
    header = (ROOT / "workloads" / "plans" / "sio-chat.toml").read_text().splitlines()
    at = next(i for i, ln in enumerate(header) if ln.startswith("# Shortened"))
    command = header[at + 1].lstrip("# ").split()
    assert command[:4] == ["harness", "run", "--plan", "sio-chat"]
    with node_room() as (port,):
        args = [a.replace("127.0.0.1:3000", f"127.0.0.1:{port}") for a in command[1:]]
        r = harness(*args, "--workers", "1", "--json", "--no-report", cwd=tmp_path)
    assert r.returncode in (0, 4), r.stderr  # 4: a busy machine may leave it unjudged
    (step,) = orjson.loads(r.stdout)["steps"]
    assert step["deliveries"] == step["deliveries_expected"] == 100 * (3 + 5)
    assert step["sio_acks"] == 100 and step["lost"] == 0
