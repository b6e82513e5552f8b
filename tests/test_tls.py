"""TLS (harness/protocols/tls.py, the https:// target and --tls, --ca, --insecure of config): the
settings checked, the diagnosis on synthetic steps, and runs against a real nginx with
certificates the test makes (tests/certs.py, the openssl command line) and against the TLS
echo server of tests/servers.py: exact counts, a handshake histogram with one handshake per
connection, and TLS failures counted by kind."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from harness.analysis.diagnosis import no_reply_diagnosis
from harness.config.build import ConfigError, parse_target
from harness.core.plan import Target, Tls
from harness.core.result import Share
from harness.protocols.tls import TlsLayer, client_context
from harness.wire.connects import open_all
from harness.wire.poller import Poller
from harness.wire.protocol import Stamped
from harness.wire.transport import CHUNK, RoundBuffer, Transport
from tests import certs as certs_mod
from tests import nginx as nginx_mod
from tests import servers
from tests.support import free_port, harness, plan_for, run_plan, stop

# ---------------------------------------------------------------------------- settings


def test_an_https_url_is_http_over_tls_on_port_443_by_default() -> None:
    assert parse_target("https://localhost/a") == Target("localhost", 443, "https", "/a")
    assert parse_target("https://127.0.0.1:8443").label == "https://127.0.0.1:8443/"
    plan = plan_for("https://127.0.0.1:8443/")
    assert (plan.workload, plan.tls) == ("http", Tls())
    assert plan_for("http://127.0.0.1:8000/").tls is None
    assert plan_for("127.0.0.1:8000").tls is None


def test_tls_with_host_port_wraps_raw_tcp(tmp_path: Path) -> None:
    assert plan_for("127.0.0.1:8000", tls=True).tls == Tls()
    assert plan_for("127.0.0.1:8000", tls=True, insecure=True).tls == Tls(insecure=True)
    assert plan_for("127.0.0.1:8000", tls=True).workload == "echo"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> certs_mod.Certs:
    if not certs_mod.available():
        pytest.skip("the openssl command line is not installed")
    return certs_mod.make(tmp_path_factory.mktemp("certs"))


def test_a_ca_file_is_read_into_the_plan(certs: certs_mod.Certs) -> None:
    plan = plan_for("https://127.0.0.1:8443/", ca=str(certs.ca))
    assert plan.tls is not None and plan.tls.ca_pem == certs.ca.read_text()


@pytest.mark.parametrize(("host", "flags", "says"), [
    ("127.0.0.1:1", {"tls": True, "ca": "{d}/nope.pem"}, "--ca: cannot read '{d}/nope.pem': "
     "No such file or directory"),
    ("127.0.0.1:1", {"tls": True, "ca": "{d}/junk.pem"}, "--ca: '{d}/junk.pem' holds no PEM "
     "certificate (-----BEGIN CERTIFICATE-----)"),
    ("127.0.0.1:1", {"tls": True, "ca": "{d}/bad.pem"}, "--ca: '{d}/bad.pem': not a valid "
     "PEM certificate"),
    ("https://127.0.0.1:1/", {"ca": "{d}/ca.pem", "insecure": True}, "--ca and --insecure "
     "exclude each other"),
    ("http://127.0.0.1:1/", {"tls": True}, "--tls: an http:// target is plain HTTP; give "
     "https://host:port/ for HTTP over TLS"),
    ("127.0.0.1:1", {"insecure": True}, "--insecure: only for TLS targets (https://, wss:// "
     "or --tls)"),
    ("http://127.0.0.1:1/,https://127.0.0.1:2/", {}, "--host: http:// and https:// targets "
     "cannot be mixed"),
    ("", {"tls": True}, "--tls: needs a --host target (the embedded server speaks plain TCP)"),
])
def test_bad_tls_settings_are_config_errors_naming_the_flag(
        certs: certs_mod.Certs, tmp_path: Path, host: str, flags: dict, says: str) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                      "-----END CERTIFICATE-----\n")
    (tmp_path / "ca.pem").write_bytes(certs.ca.read_bytes())
    flags = {k: v.format(d=tmp_path) if isinstance(v, str) else v for k, v in flags.items()}
    with pytest.raises(ConfigError) as err:
        plan_for(host, **flags)
    assert str(err.value).startswith(says.format(d=tmp_path)), str(err.value)


@pytest.mark.e2e
def test_a_bad_ca_file_exits_2_in_one_line(tmp_path: Path) -> None:
    r = harness("run", "--host", "https://127.0.0.1:9/", "--ca", str(tmp_path / "no.pem"),
                "--conns", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"harness: --ca: cannot read '{tmp_path}/no.pem': No such file or directory"]


# ---------------------------------------------------------------------------- the diagnosis


def step(errors: dict, reasons: dict | None = None, received: int = 0) -> dict:
    s = {"conns": 4, "sent": 0, "received": received, "errors": errors, "lost": 0}
    if reasons:
        s["tls_reasons"] = reasons
    return s


def test_a_run_whose_connections_all_failed_tls_names_the_reason_and_the_fix() -> None:
    line = no_reply_diagnosis([step({"tls_cert": 4}, {
        "tls_cert": "certificate verify failed: self-signed certificate"})], "len32")
    assert line == ("no valid reply: TLS failed: certificate verify failed: self-signed "
                    "certificate (tls_cert on 4 of 4 connections); use --ca FILE (the CA "
                    "that signed it) or --insecure")
    line = no_reply_diagnosis([step({"tls_eof": 3, "tls_timeout": 1})], "len32")
    assert line is not None and line.startswith("no valid reply: TLS failed: tls_eof (tls_eof "
                                                "on 3 of 4 connections); the target closed")
    assert no_reply_diagnosis([step({"tls_cert": 1}, received=5)], "len32") is None


# ---------------------------------------------------------------------------- against nginx

SERVERS = """
  server {{
    {good}
    keepalive_requests 100000;
    location = / {{ return 200 "hello\\n"; }}
    location = /close {{ keepalive_timeout 0; return 200 "bye\\n"; }}
    location = /idle {{ keepalive_timeout 1s; return 200 "idle\\n"; }}
    location = /big64k {{ default_type application/octet-stream; alias {d}/big64k; }}
    location = /big600k {{ default_type application/octet-stream; alias {d}/big600k; }}
  }}
  server {{ {self_signed} location / {{ return 200 "self\\n"; }} }}
  server {{ {other_host} location / {{ return 200 "other\\n"; }} }}"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, certs: certs_mod.Certs
          ) -> Iterator[dict[str, int]]:
    """A real nginx (one worker) with TLS on three free loopback ports: ``good`` (a
    certificate the test CA signed for localhost and 127.0.0.1), ``self_signed`` and
    ``other_host`` (signed by the CA for other.example only)."""
    if nginx_mod.executable() is None:
        pytest.skip("nginx not installed (tests/setup.sh installs nginx-light)")
    d = tmp_path_factory.mktemp("nginx-tls")
    (d / "big64k").write_bytes(bytes(range(256)) * 256)
    (d / "big600k").write_bytes(bytes(range(256)) * 2400)
    ports = {"good": free_port(), "self_signed": free_port(), "other_host": free_port()}
    listen = {name: nginx_mod.ssl_listen(port, cert, certs.key) for (name, port), cert in
              zip(ports.items(), (certs.cert, certs.self_signed, certs.other_host),
                  strict=True)}
    proc = nginx_mod.start(d, SERVERS.format(d=d, **listen), tuple(ports.values()),
                           worker_connections=256)
    try:
        yield ports
    finally:
        stop(proc)


def run(url: str, messages: int, conns: int = 4, **flags: object) -> dict:
    plan = plan_for(url, messages=str(messages), conns=str(conns), warmup=0.0, timeout=2.0,
                    **flags)
    (s,) = run_plan(plan)
    return s


def nonzero(errors: dict) -> dict:
    return {k: v for k, v in errors.items() if v}


@pytest.mark.e2e
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_https_get_with_the_ca_counts_every_response_and_every_handshake(
        nginx: dict[str, int], certs: certs_mod.Certs, host: str) -> None:
    s = run(f"https://{host}:{nginx['good']}/", 400, ca=str(certs.ca))
    assert (s["sent"], s["received"], s["lost"]) == (400, 400, 0)
    assert nonzero(s["errors"]) == {}
    assert s["handshakes"] == 4 and s["connected"] == 4
    hs = s["handshake_ms"]
    assert 0 < hs["p50"] <= hs["p99"] <= hs["max"] < 5000
    assert s["connect_ms"]["p50"] is not None  # the TCP connect, measured apart


@pytest.mark.e2e
def test_connection_close_reconnects_with_a_new_handshake_each_time(
        nginx: dict[str, int], certs: certs_mod.Certs) -> None:
    s = run(f"https://127.0.0.1:{nginx['good']}/close", 30, conns=1, ca=str(certs.ca))
    assert (s["sent"], s["received"], s["lost"]) == (30, 30, 0)
    assert nonzero(s["errors"]) == {} and s["reconnects"] == 29
    assert s["handshakes"] == 30  # the first connection's, and one per reconnect


@pytest.mark.e2e
def test_a_tls_connection_closed_idle_between_requests_reopens_with_a_new_handshake(
        nginx: dict[str, int], certs: certs_mod.Certs) -> None:
    """nginx closes a connection idle for 1 s (its close_notify, or EOF); users thinking
    1.3 s reopen when their next request is due: reconnects, each a new handshake, no
    error."""
    (s,) = run_plan(plan_for(f"https://127.0.0.1:{nginx['good']}/idle", conns="2",
                             think="1.3", warmup=0.0, duration=3.0, timeout=2.0,
                             ca=str(certs.ca)))
    assert nonzero(s["errors"]) == {} and s["lost"] == 0 and s["conns_lost"] == 0
    assert s["sent_all"] == s["replies"] >= 4  # (without reopening: 2, one each)
    assert s["reconnects"] == s["sent_all"] - 2 and s["handshakes"] == s["sent_all"]


@pytest.mark.e2e
def test_insecure_needs_no_ca_even_for_a_self_signed_server(nginx: dict[str, int]) -> None:
    s = run(f"https://127.0.0.1:{nginx['self_signed']}/", 200, insecure=True)
    assert (s["sent"], s["received"], s["lost"]) == (200, 200, 0)
    assert nonzero(s["errors"]) == {} and s["handshakes"] == 4


@pytest.mark.e2e
@pytest.mark.parametrize(("server", "ca", "why"), [
    ("good", "other_ca", "certificate verify failed: unable to get local issuer certificate"),
    ("other_host", "ca", "certificate verify failed: IP address mismatch"),
])
def test_a_certificate_that_does_not_verify_counts_tls_cert_once_per_connection(
        nginx: dict[str, int], certs: certs_mod.Certs, server: str, ca: str, why: str) -> None:
    s = run(f"https://127.0.0.1:{nginx[server]}/", 40, ca=str(getattr(certs, ca)))
    assert nonzero(s["errors"]) == {"tls_cert": 4}
    assert (s["received"], s["handshakes"]) == (0, 0)
    assert s["tls_reasons"]["tls_cert"].startswith(why), s["tls_reasons"]


@pytest.mark.e2e
def test_a_self_signed_server_without_ca_or_insecure_exits_3_in_one_line(
        nginx: dict[str, int], tmp_path: Path) -> None:
    r = harness("run", "--host", f"https://127.0.0.1:{nginx['self_signed']}/", "--conns", "3",
                "--duration", "0.5", "--warmup", "0", "--workers", "1", "--no-report",
                "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines() == [
        "harness: no valid reply: TLS failed: certificate verify failed: self-signed "
        "certificate (tls_cert on 3 of 3 connections); use --ca FILE (the CA that signed it) "
        "or --insecure"]


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "size"), [("/big64k", 65536), ("/big600k", 614400)])
def test_a_body_over_many_tls_records_is_read_whole(
        nginx: dict[str, int], certs: certs_mod.Certs, path: str, size: int) -> None:
    """64 KiB is four TLS records; 600 KiB is more than a round reads from one connection
    (256 KiB), so OpenSSL holds the rest of a record (pending()) that select() cannot see."""
    s = run(f"https://127.0.0.1:{nginx['good']}{path}", 60, conns=2, ca=str(certs.ca),
            max_frame=str(1 << 21), inflight=2)
    assert (s["sent"], s["received"], s["lost"]) == (60, 60, 0)
    assert nonzero(s["errors"]) == {}
    assert s["throughput_mb_s"] * s["duration_s"] * 1e6 > 60 * size


@pytest.mark.e2e
def test_the_json_summary_and_table_show_the_handshakes(
        nginx: dict[str, int], certs: certs_mod.Certs, tmp_path: Path) -> None:
    args = ("run", "--host", f"https://127.0.0.1:{nginx['good']}/", "--ca", str(certs.ca),
            "--conns", "2", "--messages", "50", "--warmup", "0", "--workers", "1",
            "--no-report", "--results-dir", str(tmp_path))
    r = harness(*args, "--json", cwd=tmp_path)
    assert r.returncode in (0, 1, 4), r.stderr  # 4: client-bound on a busy machine
    (s,) = orjson.loads(r.stdout)["steps"]
    assert s["handshakes"] == 2 and set(s["handshake_ms"]) == {"p50", "p90", "p99", "max"}
    (run_json,) = tmp_path.glob("*/run.json")
    doc = orjson.loads(run_json.read_bytes())
    assert doc["steps"][0]["handshakes"] == 2 and "handshake" in doc["steps"][0]["histograms"]
    r = harness(*args, cwd=tmp_path)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("conns=2: ")]  # (and remarks)
    assert any("; TLS handshake p50 " in ln for ln in lines), r.stdout


# ---------------------------------------------------------------------------- raw TCP


@pytest.fixture(scope="module")
def tls_echo(certs: certs_mod.Certs, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[servers.Handle, Path]]:
    log = tmp_path_factory.mktemp("sni") / "sni.log"
    with servers.start_tls_echo(str(certs.cert), str(certs.key), sni_log=str(log)) as srv:
        yield srv, log


@pytest.mark.e2e
@pytest.mark.parametrize(("host", "sni"), [("localhost", "localhost"), ("127.0.0.1", "-")])
def test_raw_tcp_over_tls_echoes_every_stamped_message_and_sends_sni_for_names_only(
        tls_echo: tuple[servers.Handle, Path], certs: certs_mod.Certs, host: str,
        sni: str) -> None:
    srv, log = tls_echo
    before = log.read_text().splitlines() if log.exists() else []
    s = run(f"{host}:{srv.port}", 2000, conns=4, tls=True, ca=str(certs.ca), inflight=8,
            size="64-3000")
    assert (s["sent"], s["received"], s["lost"], s["duplicates"]) == (2000, 2000, 0, 0)
    assert nonzero(s["errors"]) == {}
    assert s["handshakes"] == 4
    assert log.read_text().splitlines()[len(before):] == [sni] * 4  # RFC 6066: no IP


@pytest.mark.e2e
@pytest.mark.parametrize(("framing", "kind"), [("len32", "tls_eof"), ("newline", "tls_timeout")])
def test_tls_to_a_plain_tcp_server_is_a_tls_failure_not_a_reply(framing: str, kind: str) -> None:
    """A len32 echo server reads the ClientHello as an oversized frame and hangs up; a
    newline one waits for a newline that never comes."""
    with servers.start("echo", framing=framing) as srv:
        s = run(f"127.0.0.1:{srv.port}", 20, conns=2, tls=True, insecure=True,
                connect_timeout=1.0, framing=framing)
    assert nonzero(s["errors"]) == {kind: 2}
    assert (s["received"], s["handshakes"]) == (0, 0)
    line = no_reply_diagnosis([s], framing)
    assert line is not None and "does it speak TLS on this port?" in line, line
    if kind == "tls_timeout":
        assert "TLS failed: no handshake within --connect-timeout (tls_timeout on 2 of 2" in line


# ---------------------------------------------------------------------------- pending()


class Collect:
    """A transport's sink that keeps the bytes of every whole frame and counts the rest."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.errors: dict[str, int] = {}
        self.handshakes = 0

    def error(self, kind: str, count: int, now: int) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + count

    def closed(self, i: int) -> None: ...
    def connected(self, i: int, elapsed_ns: int) -> None: ...
    def tcp_connected(self, elapsed_ns: int) -> None: ...
    def backlogged(self, i: int) -> None: ...
    def unparsed(self, data: memoryview) -> None: ...
    def tls_failed(self, kind: str, reason: str) -> None: ...

    def handshaken(self, i: int, elapsed_ns: int) -> None:
        self.handshakes += 1

    def frames(self, buf: bytearray, seg_conn: list[int], seg_end: list[int],
               seg_t: list[int], walk: list[int] | None) -> None:
        start = 0  # one connection: its reads follow each other in the round buffer
        for end in seg_end:
            self.data += buf[start:end]
            start = end


class Whole(Stamped):
    """A protocol whose frames are whatever arrived (the transport asks only these). A
    Stamped, as the transport's type says (checked at run time when it is compiled)."""

    def __init__(self) -> None:  # (none of Stamped's own state is used)
        self.walks = False
        self.fixed = None

    def cut(self, buf: bytearray, i: int, start: int, end: int, walk: object,
            broken: list[int]) -> tuple[int, int]:
        return end, end


class OneConnection:
    """A transport over TLS with one connection (and the sink above) to a TLS server run by
    ``serve(sock)`` in a thread of this process: ``with OneConnection(certs, serve) as c``."""

    def __init__(self, certs: certs_mod.Certs, serve: Callable[[ssl.SSLSocket], None]) -> None:
        self.certs = certs
        self.serve = serve
        self.done = threading.Event()
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sink = Collect()

    def _run(self) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.cert, self.certs.key)
        conn, _ = self.lsock.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            self.serve(s)
            self.done.wait(10)

    def __enter__(self) -> Transport:
        self.thread.start()
        share = Share(0, np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64),
                      np.ones(1, dtype=bool), None, 0.0, None, 0)
        ctx = client_context(Tls(ca_pem=self.certs.ca.read_text()))
        self.tp = Transport(share, [(socket.AF_INET, self.lsock.getsockname())], (),
                            Poller(), RoundBuffer(), Whole(), self.sink,
                            tls=TlsLayer(ctx, ["localhost"], 1))
        open_all(self.tp, 1, 0.0, 5 * 10**9, time.monotonic_ns() + 5 * 10**9, None)
        assert self.sink.handshakes == 1 and self.tp.alive[0]
        return self.tp

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.tp.close_all()
        self.thread.join(5)
        self.lsock.close()


def rounds(tp: Transport, until: Callable[[], bool], within_s: float = 3.0) -> None:
    deadline = time.monotonic() + within_s
    while not until() and time.monotonic() < deadline:
        tp.read_round(tp.poll(0.05, None))


@pytest.mark.e2e
def test_plaintext_openssl_holds_after_a_full_read_is_read_without_new_bytes(
        certs: certs_mod.Certs) -> None:
    """A 10-byte record, then 16 records of 16 KiB, then nothing: a round reads 256 KiB, so
    the last record is read in part and its last 10 bytes wait inside OpenSSL (pending()),
    where select() cannot see them; they must come in the next round all the same."""
    payload = b"a" * 10 + bytes(range(256)) * 1024  # 10 + 256 KiB
    assert len(payload) - 10 == CHUNK  # (the first read stops 10 bytes short)

    def serve(s: ssl.SSLSocket) -> None:
        s.sendall(payload[:10])
        s.sendall(payload[10:])

    c = OneConnection(certs, serve)
    with c as tp:
        time.sleep(0.3)  # every record is in the client's socket buffer before the first read
        rounds(tp, lambda: len(c.sink.data) >= len(payload))
    assert bytes(c.sink.data) == payload and c.sink.errors == {}


@pytest.mark.e2e
def test_a_send_the_server_is_slow_to_take_goes_whole_through_the_backlog(
        certs: certs_mod.Certs) -> None:
    """8 MiB in one send while the server reads nothing for 0.3 s: SSLWantWrite queues the
    rest, and the retries hand OpenSSL the same bytes until every one has gone."""
    payload = bytes(range(256)) * (32 * 1024)
    got = bytearray()

    def serve(s: ssl.SSLSocket) -> None:
        time.sleep(0.3)
        while len(got) < len(payload):
            data = s.recv(1 << 16)
            if not data:
                break
            got.extend(data)

    c = OneConnection(certs, serve)
    with c as tp:
        tp.send(0, memoryview(payload))
        assert tp.blocked[0]  # more than the socket buffers take at once
        rounds(tp, lambda: not tp.blocked[0] and len(got) >= len(payload), 10.0)
        assert c.sink.errors == {}
    assert bytes(got) == payload


@pytest.mark.e2e
def test_bytes_that_are_not_tls_after_the_handshake_are_one_tls_error(
        certs: certs_mod.Certs) -> None:
    def serve(s: ssl.SSLSocket) -> None:
        s.sendall(b"hello")
        os.write(s.fileno(), b"this is not a TLS record\r\n" * 4)  # beneath TLS

    c = OneConnection(certs, serve)
    with c as tp:
        rounds(tp, lambda: bool(c.sink.errors))
        assert c.sink.errors == {"tls_error": 1} and tp.socks[0] is None
