"""Server-Sent Events against a real SSE chat room (tests/sse_chat.py, starlette under
uvicorn, started here on a free loopback port): exact fan-out (m·(s+n) deliveries, matched by
stamp), every 10th message dropped on one receiver and reported there exactly, streams the
server ends resumed with Last-Event-ID (each reconnect counted, nothing lost or doubled),
and hostile streams and POSTs: each fault one error kind, counted, the run going on."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support import harness, plan_for, run_plan, stop
from tests.support.apps import app_stats, uvicorn_app

pytestmark = pytest.mark.e2e  # every test here starts a server
ROOT = Path(__file__).resolve().parent.parent
# HARNESS_SSE_FULL=1: the fan-out tests at the full size (3 senders and 100 streams,
# 1,000 messages: 103,000 deliveries; a room of 99 senders, a listener and the one receiver
# that drops); without it a reduced size that runs in a second or two
FULL = os.environ.get("HARNESS_SSE_FULL") == "1"


def sse_room() -> contextlib.AbstractContextManager[int]:
    """tests/sse_chat.py under uvicorn on a free port (streams and POSTs left hanging hold a
    graceful stop: SIGKILL after 1 s)."""
    return uvicorn_app("tests.sse_chat:app", needs=("uvicorn", "starlette"), grace_s=1.0)


@pytest.fixture(scope="module")
def room() -> Iterator[int]:
    with sse_room() as port:
        yield port


def stats(port: int) -> dict:
    return app_stats(port)


def chat(hosts: str, messages: int, senders: int = 3, listen: int = 7, **run: object) -> dict:
    """One --messages step of the chat workload over SSE, no warm-up: its summary."""
    run = {"timeout": 2.0 if FULL else 0.5, **run}
    (step,) = run_plan(plan_for(hosts, workload="chat", conns=str(senders), listen=listen,
                                messages=str(messages), warmup=0.0, **run))
    return step


def errors(step: dict) -> dict:
    """The step's errors (at full size, reply timeouts aside: on a loaded machine a delivery
    may come after --timeout; it still counts, and lost stays exact)."""
    return {k: v for k, v in step["errors"].items() if v and not (FULL and k == "timeout")}


@pytest.mark.parametrize("query", ["", "?crlf=1&multiline=1&other=1"])
def test_every_message_reaches_every_stream_exactly_once(room: int, query: str) -> None:
    m, listen = (1000, 100) if FULL else (600, 7)
    step = chat(f"sse://127.0.0.1:{room}/events{query}", m, listen=listen)
    assert step["sent"] == m
    assert step["deliveries_expected"] == step["deliveries"] == m * (3 + listen)
    assert step["lost"] == step["duplicates"] == step["surplus"] == 0
    assert errors(step) == {} and step["conns_lost"] == 0 and step["reconnects"] == 0


def test_a_receiver_that_misses_every_tenth_message_shows_exactly_that_loss(room: int
                                                                           ) -> None:
    # node 0: the 3 senders and a listener; node 1 (the same room): one listener, whose
    # stream skips every 10th message of the room: any 1,000 in a row hold 100 of them
    base = f"sse://127.0.0.1:{room}/events"
    senders = 99 if FULL else 3
    step = chat(f"{base},{base}?drop_every=10", 1000, senders=senders, listen=1)
    n0, n1 = step["per_node"]
    expect = 1000 * (senders + 1)
    assert (n0["deliveries_expected"], n0["deliveries"], n0["lost"]) == (expect, expect, 0)
    assert (n1["deliveries_expected"], n1["deliveries"], n1["lost"]) == (1000, 900, 100)
    assert step["lost"] == 100 and step["duplicates"] == 0 and errors(step) == {}


def test_streams_the_server_ends_resume_with_last_event_id_counted(room: int) -> None:
    before = stats(room)["resumed"]
    # every stream ends after 7 events: 100 events come over 15 streams, 14 reconnects
    step = chat(f"sse://127.0.0.1:{room}/events?close_after=7", 100, senders=2, listen=3)
    assert step["deliveries"] == step["deliveries_expected"] == 100 * 5
    assert step["lost"] == step["duplicates"] == 0 and errors(step) == {}
    assert step["reconnects"] == 14 * 5 and step["conns_lost"] == 0
    assert stats(room)["resumed"] - before == 14 * 5  # each with its Last-Event-ID


@pytest.mark.parametrize(("query", "kind"), [("status=404", "connect_sse_404"),
                                             ("ctype=text/plain", "connect_sse_content_type")])
def test_a_stream_that_does_not_open_is_a_failed_connect_by_kind(room: int, query: str,
                                                                 kind: str) -> None:
    base = f"sse://127.0.0.1:{room}/events"
    step = chat(f"{base},{base}?{query}", 100, listen=1)
    assert errors(step) == {kind: 1}
    n0, n1 = step["per_node"]
    assert n0["lost"] == 0 and n0["deliveries"] == 400  # the others go on
    assert n1["deliveries"] == 0


def test_an_event_over_max_frame_breaks_its_stream_once(room: int) -> None:
    base = f"sse://127.0.0.1:{room}/events"
    step = chat(f"{base},{base}?long=5000", 100, listen=1, max_frame=4096)
    assert errors(step) == {"protocol": 1} and step["conns_lost"] == 1
    n0, n1 = step["per_node"]
    assert n0["lost"] == 0 and n0["deliveries"] == 400
    assert n1["deliveries"] == 1  # the event before the endless line


def test_events_that_are_not_utf8_are_each_one_protocol_error(room: int) -> None:
    base = f"sse://127.0.0.1:{room}/events"
    step = chat(f"{base},{base}?badutf8=1", 500, listen=1)
    # every 5th event of the room has a byte that is not UTF-8: 100 of any 500 in a row
    assert errors(step) == {"protocol": 100} and step["conns_lost"] == 0
    n0, n1 = step["per_node"]
    assert (n0["lost"], n1["lost"], n1["deliveries"]) == (0, 100, 400)


@pytest.mark.parametrize("hang", ["1", "2"])
def test_posts_the_server_never_answers_are_counted_and_the_run_ends(room: int, hang: str
                                                                     ) -> None:
    # hang=1: the first POST of each sender is broadcast, then its connection hangs (the
    # POSTs behind it wait); hang=2: nothing is broadcast either
    step = chat(f"sse://127.0.0.1:{room}/events", 6, senders=2, listen=1,
                sse_post=f"/send?hang={hang}")
    errs = errors(step)
    assert errs.pop("sse_post_timeout") == 6  # every POST, once
    assert set(errs) <= {"timeout"}
    assert step["deliveries"] == (2 * 3 if hang == "1" else 0)
    assert step["lost"] == step["deliveries_expected"] - step["deliveries"]


def test_the_sse_chat_plan_runs_in_short(room: int, tmp_path: Path) -> None:
    r = harness("run", "--plan", "sse-chat", "--host", f"sse://127.0.0.1:{room}/events",
                "--push-conns", "2", "--listen", "3", "--messages", "50,100", "--warmup", "0",
                "--json", "--no-report", cwd=tmp_path)
    assert r.returncode in (0, 1, 4), r.stderr
    steps = orjson.loads(r.stdout)["steps"]
    assert [s["deliveries"] for s in steps] == [50 * 5, 100 * 5]
    assert all(s["lost"] == 0 for s in steps)


def test_posts_to_a_path_the_room_lacks_exit_3_saying_so(room: int, tmp_path: Path) -> None:
    r = harness("run", "--host", f"sse://127.0.0.1:{room}/events", "--workload", "chat",
                "--push-conns", "2", "--listen", "1", "--messages", "4", "--warmup", "0",
                "--timeout", "0.3", "--sse-post", "/nope", "--json", "--no-report", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    (step,) = orjson.loads(r.stdout)["steps"]
    assert step["errors"]["sse_post_404"] == 4  # each POST answered 404, counted once
    line = r.stderr.strip().splitlines()[-1]
    assert "sent 4 stamped JSON POSTs, read back from SSE event streams" in line
    assert "does the server broadcast what is POSTed to --sse-post" in line


@contextlib.contextmanager
def raw_server(mode: str) -> Iterator[int]:
    """tests/sse_raw.py in MODE; yields its port; stopped by its pid."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.sse_raw", mode], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield int(line.split()[2])
    finally:
        stop(proc, grace_s=1.0)


@pytest.mark.parametrize("mode", ["badchunk", "garbage"])
def test_a_stream_broken_below_http_is_one_protocol_error(room: int, mode: str) -> None:
    # node 1 is another server: its one stream breaks (a chunk-size line that is not hex,
    # or a head that is not HTTP); the room's streams go on, exact
    with raw_server(mode) as port:
        step = chat(f"sse://127.0.0.1:{room}/events,sse://127.0.0.1:{port}/events", 100,
                    listen=1)
    assert errors(step) == {"protocol": 1}
    n0, n1 = step["per_node"]
    assert (n0["deliveries"], n0["lost"], n1["deliveries"]) == (400, 0, 0)
