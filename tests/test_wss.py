"""WebSocket over TLS (harness/protocols/ws/ws.py over harness.protocols.tls, wss:// in config,
the probe of targets/lifecycle.py): wss:// URLs parsed into TLS plans, and runs against
servers built on the ``websockets`` library with certificates the test makes
(tests/certs.py): exact echo counts with --ca and with --insecure, one handshake per
connection in the handshake histogram, a certificate that does not verify (counted per
connection; exit 3 with the TLS line from the probe), and the fan-out of a 3-node relay chat
linked over wss://."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from harness.config.build import ConfigError, parse_target
from harness.core.plan import Target, Tls
from harness.protocols.ws.handshake import ws_options
from tests import certs as certs_mod
from tests.support import harness, plan_for, run_plan
from tests.test_ws import assert_storm_recovered, storm_run, ws_server

# ---------------------------------------------------------------------------- settings


def test_a_wss_url_is_websocket_over_tls_on_port_443_by_default() -> None:
    assert parse_target("wss://127.0.0.1:8765/chat") == Target("127.0.0.1", 8765, "wss",
                                                               "/chat")
    assert parse_target("wss://localhost") == Target("localhost", 443, "wss", "/")
    plan = plan_for("wss://localhost:8765/x")
    assert plan.tls == Tls() and plan.workload == "echo"
    assert ws_options(plan.targets, "", ()).uris == ("wss://localhost:8765/x",)
    assert plan_for("wss://127.0.0.1:1/", insecure=True).tls == Tls(insecure=True)
    assert plan_for("ws://127.0.0.1:1/").tls is None


@pytest.mark.parametrize(("host", "flags", "says"), [
    ("ws://127.0.0.1:1/", {"tls": True}, "--tls: a ws:// target is plain WebSocket; give "
     "wss://host:port/ for WebSocket over TLS (use wss://)"),
    ("ws://127.0.0.1:1/,wss://127.0.0.1:2/", {}, "--host: ws:// and wss:// targets cannot "
     "be mixed"),
    ("ws://127.0.0.1:1/", {"insecure": True}, "--insecure: only for TLS targets (https://, "
     "wss:// or --tls)"),
    ("wss://127.0.0.1:1/,127.0.0.1:2", {}, "--host: http://, ws:// URLs and raw host:port "
     "targets cannot be mixed"),
])
def test_bad_wss_settings_are_config_errors_naming_the_flag(host: str, flags: dict, says: str
                                                            ) -> None:
    with pytest.raises(ConfigError) as err:
        plan_for(host, **flags)
    assert str(err.value) == says


@pytest.mark.e2e
def test_tls_with_a_ws_url_exits_2_saying_use_wss(tmp_path: Path) -> None:
    r = harness("run", "--host", "ws://127.0.0.1:1/", "--tls", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "use wss://" in line


# ---------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> certs_mod.Certs:
    if not certs_mod.available():
        pytest.skip("the openssl command line is not installed")
    return certs_mod.make(tmp_path_factory.mktemp("certs"))


def tls_args(certs: certs_mod.Certs, self_signed: bool = False) -> tuple[str, ...]:
    return ("--cert", str(certs.self_signed if self_signed else certs.cert),
            "--key", str(certs.key))


def nonzero(errors: dict) -> dict:
    return {k: n for k, n in errors.items() if n}


@pytest.mark.e2e
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_echo_server_over_wss_answers_every_message_exactly_once(
        certs: certs_mod.Certs, host: str) -> None:
    with ws_server("echo", *tls_args(certs)) as (port,):
        (s,) = run_plan(plan_for(f"wss://{host}:{port}/echo", messages="2000", inflight=4,
                                 warmup=0.0, ca=str(certs.ca), size="64,200,70000"))
    assert (s["sent"], s["received"], s["lost"], s["duplicates"]) == (2000, 2000, 0, 0)
    assert nonzero(s["errors"]) == {}
    assert s["handshakes"] == 4 and s["connected"] == 4


@pytest.mark.e2e
def test_each_wss_step_ends_with_the_close_handshake(certs: certs_mod.Certs, tmp_path: Path
                                                     ) -> None:
    log = tmp_path / "closes.txt"
    with ws_server("echo", "--log", str(log), *tls_args(certs)) as (port,):
        (s,) = run_plan(plan_for(f"wss://127.0.0.1:{port}/", messages="40", warmup=0.0,
                                 ca=str(certs.ca), ping_interval=0.1))
        for _ in range(50):  # the server writes each line as its handler ends
            if log.exists() and len(log.read_text().split()) == 4:
                break
            time.sleep(0.05)
    assert s["received"] == 40 and nonzero(s["errors"]) == {}
    assert log.read_text().split() == ["1000"] * 4  # a clean close over TLS, not 1006


@pytest.mark.e2e
def test_insecure_needs_no_ca_for_a_self_signed_wss_server(certs: certs_mod.Certs) -> None:
    with ws_server("echo", *tls_args(certs, self_signed=True)) as (port,):
        (s,) = run_plan(plan_for(f"wss://127.0.0.1:{port}/", messages="500", warmup=0.0,
                                 insecure=True))
    assert (s["sent"], s["received"], s["lost"]) == (500, 500, 0)
    assert nonzero(s["errors"]) == {}


@pytest.mark.e2e
def test_the_handshake_histogram_has_one_handshake_per_connection(certs: certs_mod.Certs,
                                                                  tmp_path: Path) -> None:
    with ws_server("echo", *tls_args(certs)) as (port,):
        args = ("run", "--host", f"wss://127.0.0.1:{port}/", "--ca", str(certs.ca),
                "--conns", "7", "--messages", "70", "--warmup", "0", "--workers", "1",
                "--no-report", "--results-dir", str(tmp_path))
        r = harness(*args, "--json", cwd=tmp_path)
        assert r.returncode in (0, 1, 4), r.stderr  # 4: client-bound on a busy machine
        (s,) = orjson.loads(r.stdout)["steps"]
        table = harness(*args, cwd=tmp_path)
    assert s["received"] == 70 and s["connected"] == 7
    assert s["handshakes"] == 7
    hs = s["handshake_ms"]
    assert 0 < hs["p50"] <= hs["p99"] <= hs["max"] < 5000
    assert s["connect_ms"]["p50"] is not None  # the TCP connect, measured apart
    assert "TLS handshake p50 " in table.stdout, table.stdout


@pytest.mark.e2e
def test_a_certificate_that_does_not_verify_counts_tls_cert_once_per_connection(
        certs: certs_mod.Certs) -> None:
    # run_plan skips the probe: each connection meets the certificate itself
    with ws_server("echo", *tls_args(certs, self_signed=True)) as (port,):
        (s,) = run_plan(plan_for(f"wss://127.0.0.1:{port}/", messages="40", warmup=0.0))
    assert nonzero(s["errors"]) == {"tls_cert": 4}
    assert (s["received"], s["connected"]) == (0, 0)
    assert s["tls_reasons"]["tls_cert"] == "certificate verify failed: self-signed certificate"


@pytest.mark.e2e
def test_a_self_signed_wss_server_without_ca_exits_3_with_the_tls_line(
        certs: certs_mod.Certs, tmp_path: Path) -> None:
    with ws_server("echo", *tls_args(certs, self_signed=True)) as (port,):
        r = harness("run", "--host", f"wss://127.0.0.1:{port}/", "--conns", "3",
                    "--duration", "0.5", "--warmup", "0", "--no-report",
                    "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"harness: target wss://127.0.0.1:{port}/: TLS failed: certificate verify failed: "
        "self-signed certificate (tls_cert); use --ca FILE (the CA that signed it) or "
        "--insecure"]


@pytest.mark.e2e
def test_a_refused_wss_handshake_exits_3_naming_the_status(certs: certs_mod.Certs,
                                                           tmp_path: Path) -> None:
    with ws_server("echo", "--token", "sesame", *tls_args(certs)) as (port,):
        r = harness("run", "--host", f"wss://127.0.0.1:{port}/", "--ca", str(certs.ca),
                    "--conns", "2", "--duration", "0.5", "--warmup", "0", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "WebSocket handshake refused: HTTP/1.1 401 Unauthorized" in r.stderr


# ---------------------------------------------------------------------------- fan-out


@pytest.mark.e2e
def test_a_three_node_relay_chat_over_wss_delivers_every_message_to_every_client(
        certs: certs_mod.Certs, tmp_path: Path) -> None:
    with ws_server("chat", "--nodes", "3", *tls_args(certs)) as ports:
        hosts = ",".join(f"wss://127.0.0.1:{p}/ws" for p in ports)
        r = harness("run", "--workload", "chat", "--host", hosts, "--ca", str(certs.ca),
                    "--push-conns", "3", "--listen", "1", "--messages", "100", "--warmup",
                    "0", "--timeout", "2", "--workers", "1", "--json", "--no-report",
                    cwd=tmp_path)
    assert r.returncode in (0, 1, 4), r.stderr
    assert r.stdout, r.stderr
    (step,) = orjson.loads(r.stdout)["steps"]
    assert step["deliveries_expected"] == step["deliveries"] == 100 * (3 + 3)
    assert step["lost"] == 0 and step["duplicates"] == 0
    assert nonzero(step["errors"]) == {}
    assert step["handshakes"] == 6  # 3 senders and a listener on each of the 3 nodes


# ---------------------------------------------------------------------------- reconnects


@pytest.mark.e2e
def test_a_reconnect_storm_over_wss_does_a_new_tls_handshake_per_reconnect(
        certs: certs_mod.Certs, tmp_path: Path) -> None:
    s, err = storm_run(tmp_path, "wss", tls_args(certs), "--ca", str(certs.ca))
    assert_storm_recovered(s, err)
    assert s["handshakes"] == 8 + 8  # each connection's first, and one per reconnect
