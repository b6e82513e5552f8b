"""harness.analysis.aggregate verdicts on synthetic step summaries: the error rate, steps that are
never healthy, steps left out of the verdict (client-bound, shared core), stage figures and
the one-line diagnosis of a run without a single valid reply. No sockets."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import aggregate, bottleneck, judge
from harness.core.histogram import Histogram
from harness.core.plan import Degradation, Stage, Step, Thresholds

RULES = Degradation()


def step(conns: int = 10, sent: int = 1000, received: int | None = None, p99: float = 1.0,
         lost: int = 0, **extra: object) -> dict:
    errors = {"connect_refused": 0, "connect_timeout": 0, "reset": 0, "closed": 0,
              "timeout": 0, "protocol": 0}
    errors.update(extra.pop("errors", {}))  # type: ignore[arg-type]
    received = sent - lost if received is None else received
    lat = {"p50": p99 / 2, "p90": p99, "p95": p99, "p99": p99, "p999": p99, "max": p99,
           "mean": p99 / 2}
    s = {"conns": conns, "sent": sent, "received": received, "replies": received,
         "sent_all": sent, "throughput_msgs_s": received / 1.0, "latency_ms": lat,
         "errors": errors, "lost": lost, "late": 0, "client_bound": False, "partial": False,
         "client_cpu_pct": 20.0, "throughput_mb_s": received * 64 / 1e6, "duplicates": 0,
         "connect_ms": {"p50": 0.1, "p99": 0.2, "max": 0.3}}
    s.update(extra)
    return s


# ---------------------------------------------------------------------------- error rate


def test_protocol_errors_count_in_the_error_rate_and_fire_the_rule() -> None:
    # the chat case: every reply arrived, but far more foreign frames came too
    s = step(errors={"protocol": 210_918}, sent=10_000)
    assert judge.error_rate(s) == 1.0  # capped: at most every message failed
    v = judge.degradation([step(conns=1), s], RULES)
    assert v["rule"] == "error_rate" and v["degraded_at"] == 10


def test_timeouts_count_in_the_error_rate_without_double_counting_the_lost() -> None:
    assert judge.error_rate(step(errors={"timeout": 30})) == pytest.approx(0.03)
    # 20 dropped replies: lost 20 and timed out 20 is one fault each, not two
    assert judge.error_rate(step(lost=20, errors={"timeout": 20})) == pytest.approx(0.02)


def test_connections_lost_count_in_the_error_rate_reconnects_do_not() -> None:
    assert judge.error_rate(step(conns=10, conns_lost=3)) == pytest.approx(0.3)
    assert judge.error_rate(step(conns=10, reconnects=500)) == 0.0
    # a refused reopen is a failed connect and a lost connection: at most every connection
    both = step(conns=4, conns_lost=4, errors={"connect_refused": 4})
    assert judge.error_rate(both) == 1.0


def test_connections_lost_within_the_limit_are_named_by_the_verdict() -> None:
    from harness.report.table import verdict_line
    steps = [step(conns=10, sent=1000), step(conns=200, sent=20_000, conns_lost=1),
             step(conns=400, sent=40_000, conns_lost=40)]
    v = judge.degradation(steps, RULES)
    assert v["degraded_at"] == 400 and v["rule"] == "error_rate"
    assert v["detail"] == "error rate 10.00% > 1.00% (40 of 400 connections lost)"
    assert v["conns_lost"] == [[200, 1]]
    assert "last healthy step: 200 conns (but connections lost, within max_error_rate: " \
        "1 at 200 conns)" in verdict_line(v)
    healthy = judge.degradation(steps[:1], RULES)
    assert healthy["conns_lost"] == [] and "lost" not in verdict_line(healthy)


# ---------------------------------------------------------------------------- never healthy


def test_a_step_without_a_valid_reply_is_never_healthy() -> None:
    silent = [step(conns=10, received=0), step(conns=100, received=0)]
    v = judge.degradation(silent, RULES)
    assert v["degraded_at"] == 10 and v["rule"] == "no_replies"
    assert v["last_healthy"] is None
    assert "no valid reply in the measure window (1000 sent)" in v["detail"]


def test_nothing_measured_says_messages_went_out_in_the_warm_up() -> None:
    s = step(sent=0, received=0, sent_all=10)
    (line,) = judge.threshold_failures([s], Thresholds(max_lost=None))
    assert line == ("nothing measured: no message was sent in the window at step conns=10 "
                    "(10 sent before it, in the warm-up, were never answered)")


def test_threshold_lines_name_the_step_by_what_the_sweep_varies() -> None:
    steps = [step(conns=3, messages=m, p99=p) for m, p in ((10, 1.0), (100, 9.0), (1000, 9.0))]
    lines = judge.threshold_failures(steps, Thresholds(p99_ms=5.0))
    assert [ln.rsplit(" at ", 1)[1] for ln in lines] == ["step messages=100",
                                                         "step messages=1000"]
    rates = [step(conns=3, rate=r, p99=9.0) for r in (50.0, 100.0)]
    assert judge.threshold_failures(rates, Thresholds(p99_ms=5.0))[1].endswith(
        "at step rate=100")


def test_a_step_under_a_minute_is_too_short_to_be_called_stable() -> None:
    """The issue's "stable (p99 +90106.519 ms/h)" on a 10 s step: a slope per hour from
    ten noisy seconds; below TREND_JUDGE_SECONDS nothing is called stable."""
    rng = np.random.default_rng(1)
    flat = [1.0 + 0.3 * x for x in rng.random(10)]
    t = aggregate.trend_figures({"second": list(range(10)), "p99_ms": flat}, [])
    assert t is not None and t["verdict"] == aggregate.TOO_SHORT
    assert t["seconds"] == 10 and t["judge_s"] == aggregate.TREND_JUDGE_SECONDS == 60
    n = aggregate.TREND_JUDGE_SECONDS
    long = aggregate.trend_figures({"second": list(range(n)), "p99_ms": [1.0] * n}, [])
    assert long is not None and long["verdict"] == "stable"
    rows = [{"role": "server", "second": float(k), "rss_bytes": 1e6 * (1 + k)} for k in range(11)]
    grows = aggregate.trend_figures({"second": list(range(11)), "p99_ms": [1.0] * 11}, rows)
    assert grows is not None and grows["verdict"] == "memory growing"  # a clear rise is said
    assert aggregate.trend_figures({"second": list(range(9)), "p99_ms": [1.0] * 9}, []) is None


# ---------------------------------------------------------------------------- left out


def test_client_bound_names_the_rule_that_fired_and_its_figure() -> None:
    assert bottleneck.client_bound_rule(95.0, 0, 100, False) == (
        "client_cpu", "a worker used 95% of its core (>= 90%)")
    rule, detail = bottleneck.client_bound_rule(18.0, 50, 1000, True)
    assert rule == "behind_schedule"
    assert detail == ("5.0% of sends went out over 5 ms behind schedule (> 1%), "
                      "client CPU 18%")
    assert bottleneck.client_bound_rule(18.0, 5, 1000, True) is None


def test_a_worker_busy_or_waiting_for_its_core_is_client_bound_not_only_at_90_pct_cpu() -> None:
    rule = bottleneck.client_bound_rule
    # 86% CPU and 2% waiting: no longer judged by luck below 90%
    assert rule(86.0, 0, 100, False, (86.0, 2.0)) == (
        "client_busy", "a worker ran 86% and waited for its core 2% of the time (together >= "
        "80%: idle, waiting on the server, under a fifth of it)")
    # a quarter of the time runnable but not running: replies sat unread
    assert rule(30.0, 0, 100, False, (30.0, 25.0)) == (
        "run_queue", "a worker waited for its core 25% of the time (>= 10%; it ran 30%): "
        "replies sat unread meanwhile")
    assert rule(60.0, 0, 100, False, (60.0, 5.0)) is None  # idle 35% of the time: judged


def test_a_step_on_a_shared_core_is_flagged_and_left_out() -> None:
    busy = step(conns=100) | bottleneck.resource_fields({
        "worker0": {"core": 0, "others_on_core_pct": 45.2, "cpu_pct_mean": 50.0},
        "server": {"core": 1, "others_on_core_pct": 3.0, "cpu_pct_mean": 30.0}})
    assert busy["core_shared"] is True
    assert busy["shared_core"] == {"role": "worker0", "core": 0, "others_pct": 45.2,
                                   "limit_pct": 30.0, "processes": []}
    quiet = step(conns=10) | bottleneck.resource_fields(
        {"worker0": {"core": 0, "others_on_core_pct": 12.0}})
    assert quiet["core_shared"] is False
    v = judge.degradation([quiet, busy, step(conns=1000)], RULES)
    assert v["skipped"] == [100] and v["skipped_why"] == ["shared core"]
    assert v["judged"] == 2


def test_the_shared_core_limit_is_a_setting_and_such_steps_can_be_judged_anyway() -> None:
    from harness.report import facts, table
    hog = [{"pid": 4242, "name": "stress", "cpu_pct": 97.5}]
    worker = {"worker0": {"core": 0, "others_on_core_pct": 45.2}}
    assert bottleneck.resource_fields(worker, limit=50.0)["core_shared"] is False
    judged = step(conns=100) | bottleneck.resource_fields(worker, None, hog, 30.0, judge=True)
    assert judged["core_shared"] is False and judged["judged_shared_core"] is True
    assert judge.degradation([judged], RULES)["judged"] == 1
    notes = facts.step_notes(dict(judged, latency_ms={"p99": 1.0}))
    assert any("shared core: 45% of core 0 (worker0's) used by other processes (>= 30%), top: "
               "stress pid 4242 98%, judged all the same (--judge-shared-core)" in n
               for n in notes), notes
    assert "SHARED CORE (judged)" in table.step_cells(judged)[-1]


def test_every_step_left_out_means_no_step_was_judged() -> None:
    steps = [step(conns=c, client_bound=True) for c in (10, 100)]
    v = judge.degradation(steps, RULES)
    assert v["judged"] == 0 and v["degraded_at"] is None and v["last_healthy"] is None
    assert v["skipped_why"] == ["client-bound", "client-bound"]


# ---------------------------------------------------------------------------- stages


def test_each_stage_gets_its_own_figures() -> None:
    st = Step(index=0, conns=200, duration_s=6.0, messages=None, stages=(
        Stage(conns=20, duration_s=2.0), Stage(conns=200, duration_s=2.0, label="spike"),
        Stage(conns=20, duration_s=2.0)))
    series = {"second": list(range(6)), "sent": [10, 10, 100, 100, 10, 10],
              "received": [10, 10, 90, 100, 10, 10], "errors": [0, 0, 5, 0, 0, 0],
              "p99_ms": [1.0, 1.0, 9.0, 9.0, 1.0, 1.0]}
    hists = []
    for ms in (1, 1, 9, 9, 1, 1):
        h = Histogram()
        h.record(np.full(10, ms * 1_000_000, dtype=np.int64))
        hists.append(h)
    rows, rec = aggregate.stage_figures(st, series, hists)
    assert [r["label"] for r in rows] == ["20 conns", "spike", "20 conns"]
    assert [r["received"] for r in rows] == [20, 190, 20]
    assert [r["throughput_msgs_s"] for r in rows] == [10.0, 95.0, 10.0]
    assert rows[1]["errors"] == 5
    assert rows[1]["latency_ms"]["p99"] == pytest.approx(9.0, rel=0.01)
    assert rows[0]["latency_ms"]["p99"] == pytest.approx(1.0, rel=0.01)
    assert rec is not None and rec["spike_stage"] == 1


# ---------------------------------------------------------------------------- diagnosis


def test_an_http_answer_names_the_url_to_use_instead() -> None:
    line = aggregate.no_reply_diagnosis(_silent(b"HTTP/1.1 400 Bad Request\r\n", protocol=2),
                                        "len32", "http://127.0.0.1:8080/")
    assert line is not None
    assert line.endswith("the target answered with HTTP: use --host http://127.0.0.1:8080/")


def test_an_http_answer_among_valid_replies_is_one_warning_line() -> None:
    from harness.analysis.diagnosis import http_answer_warning, http_url
    steps = [step(), step()]
    assert http_answer_warning(steps, "http://h:1/") is None
    steps[1]["first_unparsed"] = aggregate.escape_bytes(b"HTTP/1.1 400 Bad Request\r\nServer")
    assert http_answer_warning(steps, "http://h:1/") == (
        'some replies were HTTP (first bytes: "HTTP/1.1 400 Bad Request\\r\\nServer"): the '
        "target answered with HTTP: use --host http://h:1/")
    steps[1]["first_unparsed"] = aggregate.escape_bytes(b"\x00\x00HTTP/1.1")
    assert http_answer_warning(steps, "http://h:1/") is None  # only at the start
    assert http_url([("::1", 80)]) == "http://[::1]:80/"
    assert http_url([("a", 1), ("b", 2)]) == "http://HOST:PORT/"


def _silent(first: bytes | None, **errors: int) -> list[dict]:
    s = step(received=0, replies=0, errors=errors)
    if first is not None:
        s["first_unparsed"] = aggregate.escape_bytes(first)
    return [s]


@pytest.mark.parametrize(("first", "framing", "guess"), [
    (b"HTTP/1.0 400 Bad request\r\n", "newline", "the target answered with HTTP"),
    (b"<!DOCTYPE HTML>\n<html lang=", "newline", "the target answered with HTTP"),
    (b"-ERR unknown command '7a79e8bf00000008", "newline",
     "the target answered in RESP (the Redis protocol): it is not an echo server"),
    (b"\x00\x00\x00<\n", "len32",
     "framing mismatch: the replies look like newline frames (try --framing newline)"),
    (b"hello there\n", "len16",
     "framing mismatch: the replies look like newline frames (try --framing newline)"),
    (b"\x00\x00\x00\x3c\x01\x02\xff\xfe\x00\x00\x00\x00", "newline",
     "framing mismatch: the replies look binary, not newline frames (try --framing len32 "
     "or len16)"),
    (b"0123456789abcdef0123456789", "len32", "replies carry no stamp: is it an echo server?"),
])
def test_the_diagnosis_guesses_from_the_first_bytes(first: bytes, framing: str,
                                                    guess: str) -> None:
    line = aggregate.no_reply_diagnosis(_silent(first, protocol=7), framing)
    assert line is not None and line.endswith(guess)
    assert line.startswith(f"no valid reply in the whole run: sent 1000 stamped {framing} "
                           "messages on 10 connections; got back 7 replies that did not parse")
    assert f'first bytes received: "{aggregate.escape_bytes(first)}"' in line


def test_the_diagnosis_when_nothing_came_back() -> None:
    line = aggregate.no_reply_diagnosis(_silent(None, timeout=20), "len32")
    assert line == ("no valid reply in the whole run: sent 1000 stamped len32 messages on 10 "
                    "connections; got back 20 reply timeouts; no bytes came back; the target "
                    "took the messages and never answered: is it an echo server, and does it "
                    "expect this framing?")


def test_the_diagnosis_when_the_target_hung_up() -> None:
    line = aggregate.no_reply_diagnosis(_silent(None, closed=3), "newline")
    assert line is not None and line.endswith(
        "got back 3 connections closed by it; no bytes came back; the target hung up without "
        "a reply: does it expect newline frames (--framing)?")


def test_an_http_run_is_said_to_send_http_requests_not_stamped_frames() -> None:
    line = aggregate.no_reply_diagnosis(_silent(None, timeout=20), "len32", speaks="http")
    assert line == ("no valid reply in the whole run: sent 1000 HTTP requests on 10 "
                    "connections; got back 20 reply timeouts; no bytes came back; the target "
                    "took the requests and never answered: is it an HTTP/1.1 server?")
    line = aggregate.no_reply_diagnosis(_silent(b"+PONG\r\n", protocol=3), "len32",
                                        speaks="http")
    assert line is not None and "stamped" not in line and line.endswith("--workload redis")


def test_a_broken_websocket_handshake_is_not_told_to_use_http() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    line = aggregate.no_reply_diagnosis(_silent(head, protocol=4), "len32", speaks="ws")
    assert line is not None and "--host http" not in line, line
    assert "stamped len32 messages in WebSocket messages" in line
    assert line.endswith("the WebSocket handshake broke: the response is not a valid upgrade "
                         "(its Sec-WebSocket-Accept, Upgrade and Connection headers)")


def test_a_handshake_that_never_completes_is_not_said_to_have_taken_messages() -> None:
    s = step(conns=4, sent=0, received=0, errors={"connect_timeout": 4}, connected=0)
    line = aggregate.no_reply_diagnosis([s], "len32", speaks="ws")
    assert line == ("no valid reply in the whole run: no message was sent: none of the 4 "
                    "connections finished its WebSocket handshake (4 connect_timeout): does "
                    "the target answer the upgrade request at this path?")
    line = aggregate.no_reply_diagnosis([s], "len32")
    assert line is not None and "took the messages" not in line
    assert line.endswith("none of the 4 connections opened (4 connect_timeout)")


def test_a_certificate_that_fails_with_ca_given_is_not_told_to_use_ca() -> None:
    def line(why: str, ca: bool) -> str:
        s = step(conns=4, sent=0, received=0, errors={"tls_cert": 4},
                 tls_reasons={"tls_cert": f"certificate verify failed: {why}"})
        got = aggregate.no_reply_diagnosis([s], "len32", ca=ca)
        assert got is not None
        return got.rsplit("; ", 1)[1]
    assert line("certificate has expired", True) == \
        "the target's certificate has expired: renew it (or --insecure)"
    assert line("certificate has expired", False) == \
        "the target's certificate has expired: renew it (or --insecure)"
    assert line("self-signed certificate", True) == (
        "the certificate does not verify against --ca FILE: is that the CA that signed it? "
        "(or --insecure)")
    assert line("self-signed certificate", False) == \
        "use --ca FILE (the CA that signed it) or --insecure"


def test_no_diagnosis_when_a_valid_reply_came_even_outside_the_window() -> None:
    assert aggregate.no_reply_diagnosis([step(received=0, replies=3)], "len32") is None


def test_escaped_bytes_round_trip() -> None:
    raw = bytes(range(256))
    text = aggregate.escape_bytes(raw)
    assert text.isascii() and text.isprintable()
    assert aggregate.unescape_bytes(text) == raw
    assert aggregate.escape_bytes(b"-ERR x\r\n") == "-ERR x\\r\\n"


def test_judging_a_shared_core_judges_a_worker_on_its_own_cpu_not_its_wait() -> None:
    from dataclasses import replace

    from harness.report import facts
    from tests.test_summary import plain
    waited = replace(plain(), client_cpu_pct=20.0, client_bound=True,
                     client_wait_pct=65.0, client_bound_rule="client_busy",
                     client_bound_detail="...")
    judged = bottleneck.judge_waits(waited)
    assert not judged.client_bound and judged.judged_shared_core
    assert judged.client_bound_rule is None
    assert "waited for its core 65% of the time: judged on its own CPU alone" in " ".join(
        facts.step_notes(judged.to_json()))
    busy = bottleneck.judge_waits(replace(waited, client_cpu_pct=95.0))
    assert busy.client_bound and busy.client_bound_rule == "client_cpu"


def test_a_step_bound_only_by_its_wait_for_a_shared_core_is_said_to_be_on_a_shared_core() -> None:
    from harness.analysis.bottleneck import step_skipped
    base = {"received": 10, "core_shared": True, "client_bound": True}
    assert step_skipped({**base, "client_bound_rule": "run_queue"}) == "shared core"
    assert step_skipped({**base, "client_bound_rule": "client_busy"}) == "shared core"
    assert step_skipped({**base, "client_bound_rule": "client_cpu"}) == "client-bound"
    assert step_skipped({**base, "core_shared": False, "client_bound_rule": "run_queue"}) \
        == "client-bound"
