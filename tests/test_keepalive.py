"""Connections a server closes: an HTTP server's keep-alive close between requests is
reopened when the next request is due (a reconnect, not an error), a close with a request
outstanding is an error, and a connection that went down and stayed down is counted as
lost, in the error rate, named by the verdict. Against real uvicorn (its
``--timeout-keep-alive``), a small HTTP server that misbehaves on cue, and a raw-TCP
server that closes every connection (tests/servers.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.analysis import judge
from harness.core.plan import Degradation
from harness.report import facts, table
from tests import servers
from tests.support import plan_for, run_plan, stop
from tests.test_backend import stats, uvicorn

ROOT = Path(__file__).resolve().parent.parent


def nonzero(errors: dict) -> dict:
    return {k: v for k, v in errors.items() if v}


@pytest.fixture(scope="module")
def uvicorn_1s() -> Iterator[int]:
    """uvicorn serving tests/asgi_backend.py, closing connections idle for 1 s."""
    with uvicorn("--timeout-keep-alive", "1") as port:
        yield port


@pytest.mark.e2e
def test_users_thinking_past_the_keep_alive_timeout_reconnect_and_keep_sending(
        uvicorn_1s: int) -> None:
    """6 users think 1.3-1.8 s, uvicorn closes after 1 s idle: every request after a
    user's first goes on a reopened connection. Without reopening each user would send one
    request and vanish (6 in all); here they keep going, every request arrives (the app's
    own count), none is an error, and the reopens are counted as reconnects."""
    before = stats(uvicorn_1s)["routes"].get("list_posts", 0)
    plan = plan_for(f"http://127.0.0.1:{uvicorn_1s}/posts/", conns="6", think="1.3-1.8",
                    warmup=0.0, duration=3.0, timeout=5.0)
    (s,) = run_plan(plan)
    arrived = stats(uvicorn_1s)["routes"]["list_posts"] - before
    assert s["sent_all"] == s["replies"] == arrived >= 12, (s["sent_all"], arrived)
    assert nonzero(s["errors"]) == {} and s["lost"] == 0 and s["conns_lost"] == 0
    # each reopen carried the next request: at most one per request after the first
    assert 0.7 * (s["sent_all"] - 6) <= s["reconnects"] <= s["sent_all"] - 6, s["reconnects"]
    assert judge.error_rate(s) == 0.0


@pytest.mark.e2e
@pytest.mark.alone
def test_an_open_loop_keeps_its_schedule_across_the_servers_closes(uvicorn_1s: int) -> None:
    """4 connections at 0.5 requests/s (2 s apart, past the 1 s keep-alive timeout): each
    message goes out on schedule on a reopened connection; none is missed or late."""
    plan = plan_for(f"http://127.0.0.1:{uvicorn_1s}/posts/", conns="4", rate=0.5,
                    warmup=0.0, duration=4.0, timeout=5.0)
    (s,) = run_plan(plan)
    assert s["sent"] == s["received"] == 8 and s["lost"] == 0  # 2 per connection in 4 s
    assert nonzero(s["errors"]) == {} and s["conns_lost"] == 0
    assert s["reconnects"] == 4 and s["behind_schedule"] == 0


ON_CUE_SERVER = """
import selectors, socket, sys, time
answers, mode = int(sys.argv[1]), sys.argv[2]
RESPONSE = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"
sel = selectors.DefaultSelector()
ls = socket.create_server(("127.0.0.1", 0))
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
print(ls.getsockname()[1], flush=True)
conns = {}  # socket -> [bytes read, requests answered, answered last at]

def close(c):
    sel.unregister(c)
    c.close()
    conns.pop(c, None)

while True:
    for key, _ in sel.select(0.02):
        if key.data is None:
            c, _ = ls.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, 1)
            conns[c] = [b"", 0, time.monotonic()]
            continue
        c, st = key.fileobj, conns[key.fileobj]
        data = c.recv(65536)
        if not data:
            close(c)
            continue
        st[0] += data
        while b"\\r\\n\\r\\n" in st[0]:
            st[0] = st[0].split(b"\\r\\n\\r\\n", 1)[1]
            if mode == "outstanding" and st[1] == answers:
                close(c)  # a request read, never answered
                break
            c.sendall(RESPONSE)
            st[1] += 1
            st[2] = time.monotonic()
    if mode == "gone":  # close connections idle 0.2 s, and from then on accept no more
        for c, st in list(conns.items()):
            if time.monotonic() - st[2] > 0.2:
                close(c)
                if ls.fileno() >= 0:
                    sel.unregister(ls)
                    ls.close()
"""


def on_cue(answers: int, mode: str) -> tuple[subprocess.Popen, int]:
    """The small HTTP server above: ``outstanding`` closes a connection on reading its
    request number ``answers + 1``; ``gone`` closes connections idle for 0.2 s and stops
    listening at the first such close."""
    proc = subprocess.Popen([sys.executable, "-c", ON_CUE_SERVER, str(answers), mode],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


@pytest.mark.e2e
def test_a_close_with_a_request_outstanding_is_an_error_and_the_connection_is_lost() -> None:
    proc, port = on_cue(2, "outstanding")
    try:
        (s,) = run_plan(plan_for(f"http://127.0.0.1:{port}/", conns="2", warmup=0.0,
                                 duration=1.0, timeout=2.0))
    finally:
        stop(proc)
    assert (s["sent"], s["received"], s["lost"]) == (6, 4, 2)  # each: 2 answered, 1 not
    assert nonzero(s["errors"]) == {"closed": 2}
    assert s["reconnects"] == 0 and s["conns_lost"] == 2
    assert judge.error_rate(s) == 1.0  # every connection lost


@pytest.mark.e2e
def test_a_reopen_the_server_refuses_leaves_the_connection_lost() -> None:
    """The server closes idle connections and stops listening: the users, thinking, find
    their connections closed (no error), try to reopen them when their next request is
    due, are refused (an error), and stay down: lost, and the step is not healthy."""
    proc, port = on_cue(0, "gone")
    try:
        (s,) = run_plan(plan_for(f"http://127.0.0.1:{port}/", conns="3", think="0.5",
                                 warmup=0.0, duration=1.5, timeout=2.0))
    finally:
        stop(proc)
    assert s["sent"] == s["received"] == 3 and s["lost"] == 0  # one request each
    assert nonzero(s["errors"]) == {"connect_refused": 3}
    assert s["reconnects"] == 0 and s["conns_lost"] == 3
    verdict = judge.degradation([s], Degradation())
    assert verdict["degraded_at"] == 3 and verdict["rule"] == "error_rate"


@pytest.mark.e2e
def test_a_raw_tcp_server_closing_every_connection_between_messages_is_never_healthy(
) -> None:
    """close_after(2): each connection gets two replies, then a FIN while the client
    thinks, with nothing outstanding; nothing is lost, and before connections lost were
    counted the step was healthy, at a third of its load. Now each is lost, in the error
    rate, and the verdict says so."""
    with servers.start("close_after", n=2, hold=0.0) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="4", think="0.2",
                                 warmup=0.0, duration=1.0))
    assert s["received"] == 8 and s["lost"] == 0
    assert nonzero(s["errors"]) == {"closed": 4} and s["conns_lost"] == 4
    verdict = judge.degradation([s], Degradation())
    assert verdict["degraded_at"] == 4 and verdict["rule"] == "error_rate"
    assert "4 of 4 connections lost" in verdict["detail"]
    assert "Degradation: at 4 conns" in table.verdict_line(verdict)
    notes = "\n".join(facts.step_notes(s))
    assert "4 of 4 connections LOST" in notes
