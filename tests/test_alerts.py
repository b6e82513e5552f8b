"""[alerts] sent after every run (``on = "always"``, ``--alert-on``), ./harness.toml's
[alerts] kept under ``--config PLAN`` (the layering), and the mail's Date and Message-ID
headers and absolute results path. A real echo server, one harness subprocess per case, a
real SMTP server (aiosmtpd) and an HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import alerts as alert_spec
from harness.core.specs import ConfigError
from tests import servers
from tests.receivers import Mailbox, Receiver
from tests.support import free_port, harness

RUN = ("--conns", "2", "--duration", "0.4", "--warmup", "0.1", "--workers", "1", "--no-report",
       "--json")


@pytest.fixture
def endpoints() -> Iterator[tuple[str, int, Mailbox]]:
    """(webhook base URL, SMTP port, mailbox)."""
    from aiosmtpd.controller import Controller
    Receiver.got = []
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"http://127.0.0.1:{web.server_address[1]}", controller.port, box
    finally:
        controller.stop()
        asyncio.set_event_loop(None)
        web.shutdown()
        web.server_close()


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with servers.start("echo", framing="len32") as srv:
        yield srv.port


def alerts_table(url: str, smtp_port: int, on: str = "") -> str:
    return f"""[alerts]
{on}
webhook = "{url}/hook"
timeout = 2.0

[alerts.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = false
from = "harness@example.com"
to = "ops@example.com"
"""


def test_on_is_failure_always_or_a_list_of_events_and_the_flag_overrides_it() -> None:
    spec = alert_spec.parse({"on": "always", "webhook": "http://127.0.0.1:9/x"}, "h.toml")
    assert spec is not None and spec.always and spec.on == alert_spec.EVENTS
    spec = alert_spec.parse({"on": "failure", "webhook": "http://127.0.0.1:9/x"}, "h.toml")
    assert spec is not None and not spec.always and spec.on == alert_spec.EVENTS
    spec = alert_spec.parse({"on": ["cut_short"], "webhook": "http://127.0.0.1:9/x"}, "h.toml")
    assert spec is not None and alert_spec.sent_when(spec, "always").always
    assert alert_spec.sent_when(spec, "failure").on == alert_spec.EVENTS
    with pytest.raises(ConfigError, match='alerts.on: expected "failure", "always" or a list'):
        alert_spec.parse({"on": "sometimes"}, "h.toml")


def test_always_sends_passed_when_nothing_failed_and_only_the_events_otherwise() -> None:
    from harness.report import notify as alerts
    doc = {"steps": [{}, {}], "degradation": {"judged": 2}, "thresholds": {"failed": []}}
    always = alert_spec.AlertSpec(always=True)
    assert alerts.to_send(always, {}, doc) == {
        "passed": ["no threshold failed and no degradation (2 step(s), 2 judged)"]}
    assert alerts.to_send(always, {"threshold": ["p99"]}, doc) == {"threshold": ["p99"]}
    assert alerts.to_send(alert_spec.AlertSpec(), {}, doc) == {}
    only = alert_spec.AlertSpec(on=("cut_short",))
    assert alerts.to_send(only, {"threshold": ["p99"], "cut_short": ["x"]}, doc) == {
        "cut_short": ["x"]}


@pytest.mark.e2e
def test_harness_toml_alerts_fire_under_a_config_plan_on_every_run_with_date_and_message_id(
        echo_port: int, endpoints: tuple[str, int, Mailbox], tmp_path: Path) -> None:
    url, smtp_port, box = endpoints
    (tmp_path / "harness.toml").write_text(alerts_table(url, smtp_port))  # on: failures
    plan = tmp_path / "plan.toml"
    plan.write_text('[run]\nname = "planned"\n')
    args = ("run", "--host", f"127.0.0.1:{echo_port}", *RUN, "--config", str(plan),
            "--results-dir", "results")
    quiet = harness(*args, cwd=tmp_path)  # nothing failed: no alert by default
    assert quiet.returncode in (0, 1, 4), quiet.stderr
    if quiet.returncode == 4:  # a busy machine: no step judged, which is an event of its own
        assert [b["events"] for _, b in Receiver.got] == [["inconclusive"]], Receiver.got
        Receiver.got.clear()
        box.messages.clear()
    assert "alert" not in quiet.stderr or quiet.returncode == 4, quiet.stderr
    assert not Receiver.got and not box.messages
    r = harness(*args, "--alert-on", "always", cwd=tmp_path)
    assert "alert sent: webhook, email" in r.stderr, r.stderr
    ((path, body),) = Receiver.got
    assert path == "/hook" and body["name"] == "planned"
    assert body["events"] in (["passed"], ["degradation"], ["inconclusive"])  # a busy machine
    results = Path(body["results"])
    assert results.is_absolute() and (results / "run.json").is_file()
    assert results.parent == (tmp_path / "results").resolve()
    (raw,) = box.messages
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Date"] and email.utils.parsedate_to_datetime(mail["Date"]).tzinfo is not None
    assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith("@example.com>")
    assert f"results: {results}" in mail.get_content()


@pytest.mark.e2e
def test_alert_on_without_an_alerts_table_is_exit_2(tmp_path: Path) -> None:
    r = harness("run", *RUN, "--alert-on", "always", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("harness: --alert-on: no [alerts]")
    assert not (tmp_path / "results").exists()


def test_a_run_that_could_judge_no_step_is_the_event_inconclusive() -> None:
    from harness.report import notify as alerts
    d = {"judged": 0, "skipped": [10, 100], "skipped_why": ["client-bound", "shared core"],
         "degraded_at": None}
    why = alerts.reasons({"degradation": d, "thresholds": {"failed": []}}, False, None)
    assert why == {"inconclusive": ["no step could be judged (client-bound, shared core or cut "
                                    "short): 10 client-bound, 100 shared core"]}
    assert alerts.to_send(alert_spec.AlertSpec(), why, {}) == why  # on by default
    judged = dict(d, judged=2, skipped=[])
    assert alerts.reasons({"degradation": judged}, False, {"judged": False, "base": "b"}) == {
        "inconclusive": ["against b: no compared step could be judged"]}
    assert alerts.reasons({"degradation": judged}, False, {"judged": True}) == {}


def test_inconclusive_is_sent_only_when_nothing_worse_happened_as_exit_4() -> None:
    from harness.report import notify as alerts
    d = {"judged": 0, "skipped": [10], "skipped_why": ["client-bound"], "degraded_at": None}
    failed = alerts.reasons({"degradation": d, "thresholds": {"failed": ["p50_ms: 2 > 1"]}},
                            False, None)
    assert list(failed) == ["threshold"]
    cut = dict(d, skipped_why=["cut short"])
    assert list(alerts.reasons({"degradation": cut}, True, None)) == ["cut_short"]
