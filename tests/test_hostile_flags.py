"""Flags and keys that used to pass validation and end in a traceback: a Pushgateway URL with
CR/LF or a broken IPv6 bracket, --ws-text that is not UTF-8, --ws-subprotocol with CR/LF,
CR/LF in alerts.email (issue 20, items 6 and 7). Each is one line, exit 2; a push that fails
at run time is a warning and the results are written."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import alerts as alert_spec
from harness.core.specs import ConfigError, http_url_problem
from tests.support import harness

QUICK = ("--conns", "1", "--duration", "0.1", "--warmup", "0", "--no-report")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x\r\nX-Evil: 1", "http://[::1",
                                 "http://h:0/", "http://h:99999/", "http://h/?a=1",
                                 "http://h/#top", "http://h /", "gopher://h/", "http://\x1b/"])
def test_a_url_that_cannot_be_sent_to_is_refused_in_one_line(url: str) -> None:
    problem = http_url_problem(url)
    assert problem is not None and "\n" not in problem and "\r" not in problem


def test_a_plain_url_passes_and_a_webhook_keeps_its_query() -> None:
    assert http_url_problem("http://[::1]:9091/") is None
    assert http_url_problem("https://push.example.com/base") is None
    assert http_url_problem("https://hooks.example.com/x?token=1", query=True) is None


@pytest.mark.parametrize("table, says", [
    ({"email": {"host": "h", "from": "a@b\r\nBcc: x@y", "to": "c@d"}}, "email.from"),
    ({"email": {"host": "h", "from": "a@b", "to": ["c@d\r\n"]}}, "email.to"),
    ({"email": {"host": "h\n", "from": "a@b", "to": "c@d"}}, "email.host"),
    ({"webhook": "http://[::1/x"}, "alerts.webhook: .*Invalid IPv6"),
    ({"webhook": "http://h/\x07"}, "alerts.webhook"),
])
def test_alerts_refuse_control_characters_and_broken_urls(table: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        alert_spec.parse(table, "h.toml")
    assert "\n" not in str(err.value)


@pytest.mark.e2e
@pytest.mark.parametrize("flags, says", [
    (("--pushgateway", "http://127.0.0.1:9/x\r\nX-Evil: 1"), "--pushgateway: "),
    (("--pushgateway", "http://[::1"), "--pushgateway: 'http://[::1': Invalid IPv6 URL"),
    (("--ws", "--ws-text", '{"a":"{stamp}\udcff"}'), "--ws-text: not valid UTF-8 (byte 0xff"),
    (("--ws", "--ws-subprotocol", "\r\n"), "--ws-subprotocol: "),
    (("--ws", "--ws-subprotocol", "chat\r\nX-Evil: 1"), "--ws-subprotocol: "),
], ids=["pushgateway CRLF", "pushgateway [::1", "ws-text 0xff", "subprotocol CRLF",
        "subprotocol header"])
def test_the_cli_refuses_them_with_exit_2_in_one_line(tmp_path: Path, flags: tuple,
                                                      says: str) -> None:
    r = harness("run", *QUICK, *flags, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.fixture
def junk_http() -> Iterator[int]:
    """A listener that answers every request with bytes that are no HTTP status line."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"not http at all\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    srv.close()


@pytest.mark.e2e
def test_a_push_that_fails_at_run_time_is_a_warning_and_the_run_is_written(
        tmp_path: Path, junk_http: int) -> None:
    r = harness("run", *QUICK, "--results-dir", "results", "--pushgateway",
                f"http://127.0.0.1:{junk_http}/", cwd=tmp_path)
    assert "Traceback" not in r.stderr and r.returncode in (0, 1, 4), r.stderr[-2000:]
    assert "warning: pushgateway" in r.stderr, r.stderr
    assert list((tmp_path / "results").glob("*/run.json")), r.stdout
