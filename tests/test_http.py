"""HTTP/1.1 keep-alive (harness/protocols/http/http1.py, workloads/http.py, the http://
target of config): the URL parsed, the response parser on hand-made bytes, and runs against
a real nginx started by the test on a free loopback port (Debian ``nginx-light``,
tests/setup.sh) with exact counts by status code."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from harness.config.build import ConfigError, parse_target
from harness.core.plan import Target
from harness.protocols.http.http1 import Http
from harness.wire import framing as framing_mod
from harness.wire.batch import Outbound
from tests import nginx as nginx_mod
from tests.support import free_port, harness, plan_for, run_plan, stop
from workloads import Kind

# ---------------------------------------------------------------------------- the target


def test_an_http_url_keeps_host_port_scheme_and_path() -> None:
    assert parse_target("http://127.0.0.1:8000/base") == Target("127.0.0.1", 8000, "http",
                                                                  "/base")
    assert parse_target("http://localhost") == Target("localhost", 80, "http", "/")
    assert parse_target("http://[::1]:81/a?b=1") == Target("::1", 81, "http", "/a?b=1")
    assert parse_target("127.0.0.1:8000") == Target("127.0.0.1", 8000)  # raw TCP
    assert parse_target("http://127.0.0.1:8000/x").label == "http://127.0.0.1:8000/x"


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://127.0.0.1/", "unknown URL scheme 'ftp'"),
    ("http://127.0.0.1:99999/", "not a valid URL"),
    ("http://:80/", "not a valid URL"),
    ("http://127.0.0.1:80/a b", "not a valid URL"),
])
def test_a_bad_url_is_a_config_error_naming_it(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_target(url)
    assert str(err.value).startswith(f"--host: {url!r}: ")
    assert says in str(err.value)


def test_http_and_raw_targets_do_not_mix() -> None:
    with pytest.raises(ConfigError, match="cannot be mixed"):
        plan_for("http://127.0.0.1:8000/,127.0.0.1:8001")
    assert plan_for("http://127.0.0.1:8000/").workload == "http"
    assert plan_for("127.0.0.1:8000").workload == "echo"


# ---------------------------------------------------------------------------- the parser


def http(max_frame: int = 1 << 20) -> Http:
    fr = framing_mod.get("len32")
    out = Outbound(fr, [Kind("msg", 1.0, 64)], [b"x" * 64], 0, 0, 1)
    return Http(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", fr, out, max_frame, 0, 2, 0)


def cut(p: Http, data: bytes, i: int = 0) -> tuple[int, int, list[int], list[int]]:
    buf = bytearray(data)
    walk: list[int] = []
    broken: list[int] = []
    c, e = p.cut(buf, i, 0, len(buf), walk, broken)
    return c, e, walk, broken


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")


def test_whole_responses_are_cut_and_a_partial_one_waits() -> None:
    p = http()
    data = OK + CHUNKED + OK[:20]
    c, e, walk, broken = cut(p, data)
    assert (c, e, walk, broken) == (len(OK) + len(CHUNKED), len(data), [0, len(OK)], [])
    assert p.round_codes == [200, 200]


def test_a_chunked_body_split_anywhere_waits_for_its_last_chunk() -> None:
    for k in range(1, len(CHUNKED)):
        c, e, walk, broken = cut(http(), CHUNKED[:k])
        assert (c, walk, broken) == (0, [], []), k
    assert cut(http(), CHUNKED + b"x")[:3] == (len(CHUNKED), len(CHUNKED) + 1, [0])


def test_1xx_joins_the_final_response_and_codes_are_kept() -> None:
    p = http()
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    assert cut(p, data)[:3] == (len(data), len(data), [0])
    assert p.round_codes == [404]


def test_connection_close_ends_the_stream_and_names_the_connection() -> None:
    p = http()
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    assert cut(p, OK + close + OK, i=1)[:3] == (len(OK + close), len(OK + close), [0, len(OK)])
    assert p.take_closing() == [1] and p.take_closing() == []


@pytest.mark.parametrize("data", [
    b"SSH-2.0-OpenSSH_9.2\r\n",  # not HTTP at all
    b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",  # a bad status line
    b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n",  # a body over --max-frame
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a bad chunk size
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * 1100,  # headers over the limit (--max-frame here)
])
def test_a_response_that_breaks_http_breaks_the_stream_after_the_good_ones(data: bytes) -> None:
    p = http(max_frame=1024)
    assert cut(p, OK + data, i=1) == (len(OK), len(OK), [0], [1])


def test_a_body_without_a_length_waits_for_the_close_and_ends_there() -> None:
    p = http()
    data = OK + b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"
    assert cut(p, data)[:4] == (len(OK), len(data), [0], [])  # the second waits
    buf = bytearray(data[len(OK):])
    walk: list[int] = []
    assert p.at_eof(buf, 1, 0, len(buf), walk) == len(buf) and walk == [0]
    assert p.round_codes == [200, 200] and p.take_closing() == [1]
    assert p.at_eof(bytearray(OK[:20]), 1, 0, 20, []) == 0  # a cut-off response: not taken


# ---------------------------------------------------------------------------- read to EOF

NO_LENGTH_SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):  # HTTP/1.0: no Content-Length, then close
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"to the end of the stream\\n")
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


@pytest.mark.e2e
def test_responses_without_a_length_are_read_to_the_close_and_counted() -> None:
    """Python's http.server answers HTTP/1.0 with no Content-Length and closes: each body
    runs to the close, every response counts, and each close reopens the connection."""
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", NO_LENGTH_SERVER], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        s = run(f"http://127.0.0.1:{port}/", 40, conns=2)
    finally:
        stop(proc)
    assert (s["sent"], s["received"], s["lost"]) == (40, 40, 0)
    assert nonzero(s["errors"]) == {} and s["reconnects"] == 38  # the last: nothing to send


# ---------------------------------------------------------------------------- against nginx

SERVERS = """
  log_format line '$request_method $request_uri $status';
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 10000;
    location = / {{ return 200 "hello\\n"; }}
    location = /post {{ return 200 "posted\\n"; }}
    location = /missing {{ return 404 "no\\n"; }}
    location = /busy {{ return 503 "busy\\n"; }}
    location = /close {{ keepalive_timeout 0; return 200 "bye\\n"; }}
    location = /chunked {{ ssi on; default_type text/html; alias {d}/c.html; }}
    location = /api/items/ {{ access_log {d}/items.log line; return 200 "items\\n"; }}
    location ~ ^/users/([0-9]+)/$ {{ access_log {d}/users.log line; return 200 "$1\\n"; }}
  }}
  server {{
    listen 127.0.0.1:{port2};
    keepalive_requests 10;
    location / {{ return 200 "ten\\n"; }}
  }}"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    """A real nginx (one worker) on two free loopback ports: (port, port with
    keepalive_requests 10, its folder, which holds items.log and users.log: one line
    per request, "METHOD URI STATUS")."""
    if nginx_mod.executable() is None:
        pytest.skip("nginx not installed (tests/setup.sh installs nginx-light)")
    d = tmp_path_factory.mktemp("nginx")
    (d / "c.html").write_text('<!--# echo var="request_uri" --> and more\n')
    port, port2 = free_port(), free_port()
    proc = nginx_mod.start(d, SERVERS.format(d=d, port=port, port2=port2), (port, port2),
                           worker_connections=256)  # its worker reads d
    try:
        yield port, port2, d
    finally:
        stop(proc)


def run(url: str, messages: int, conns: int = 4, **flags: object) -> dict:
    plan = plan_for(url, messages=str(messages), conns=str(conns), warmup=0.0, timeout=2.0,
                    **flags)
    (step,) = run_plan(plan)
    return step


def nonzero(errors: dict) -> dict:
    return {k: v for k, v in errors.items() if v}


@pytest.mark.e2e
def test_get_keep_alive_every_response_counted_with_its_latency(
        nginx: tuple[int, int, Path]) -> None:
    s = run(f"http://127.0.0.1:{nginx[0]}/", 400)
    assert (s["sent"], s["received"], s["lost"]) == (400, 400, 0)
    assert nonzero(s["errors"]) == {}
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["max"] < 2000


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "code"), [("/missing", 404), ("/busy", 503)])
def test_non_2xx_responses_are_errors_counted_exactly_by_code(
        nginx: tuple[int, int, Path], path: str, code: int) -> None:
    s = run(f"http://127.0.0.1:{nginx[0]}{path}", 300, conns=3)
    assert (s["sent"], s["received"], s["lost"]) == (300, 300, 0)
    assert nonzero(s["errors"]) == {f"http_{code}": 300}


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "accept", "errors"), [
    ("/missing", "2xx,404", {}), ("/busy", "2xx,404", {"http_503": 120}),
    ("/", "404", {"http_200": 120}), ("/busy", "500-503", {})])
def test_accepted_codes_are_not_errors_and_the_others_still_are(
        nginx: tuple[int, int, Path], path: str, accept: str, errors: dict) -> None:
    s = run(f"http://127.0.0.1:{nginx[0]}{path}", 120, conns=2, accept=accept)
    assert (s["sent"], s["received"], s["lost"]) == (120, 120, 0)
    assert nonzero(s["errors"]) == errors
    code = {"/missing": "404", "/busy": "503", "/": "200"}[path]
    assert s["status"] == {code: 120} and s["status_classes"] == {f"{code[0]}xx": 120}


def test_accept_takes_classes_codes_and_ranges_and_refuses_anything_else() -> None:
    from harness.core.specs import ConfigError
    from harness.wire.reqtable import parse_accept
    assert parse_accept("2xx, 404,500-502", "--accept") == (*range(200, 300), 404, 500, 501, 502)
    for bad in ("2x", "299-200", "ok", "", "1000", "099", "2xx;404"):
        with pytest.raises(ConfigError, match="--accept"):
            parse_accept(bad, "--accept")


@pytest.mark.e2e
def test_chunked_responses_are_read_whole(nginx: tuple[int, int, Path]) -> None:
    s = run(f"http://127.0.0.1:{nginx[0]}/chunked", 200, inflight=4)
    assert (s["sent"], s["received"], s["lost"]) == (200, 200, 0)
    assert nonzero(s["errors"]) == {}


@pytest.mark.e2e
def test_connection_close_reopens_and_counts_the_reconnect(nginx: tuple[int, int, Path]) -> None:
    s = run(f"http://127.0.0.1:{nginx[0]}/close", 30, conns=1)
    assert (s["sent"], s["received"], s["lost"]) == (30, 30, 0)
    # every response closes; the last one comes after the sending ended: nothing to reopen
    assert nonzero(s["errors"]) == {} and s["reconnects"] == 29


@pytest.mark.e2e
def test_a_timed_run_sending_early_books_every_request_once(
        nginx: tuple[int, int, Path]) -> None:
    """A timed closed loop sends a connection's next request as soon as its response is
    read (harness.wire.rounds.Early): nginx logs exactly the requests harness booked, each
    answered once; on the port closing every tenth, the closes still reopen, nothing lost."""
    log = nginx[2] / "items.log"
    before = len(log_lines(log))
    plan = plan_for(f"http://127.0.0.1:{nginx[0]}/api/items/", warmup=0.2, duration=0.5,
                    timeout=2.0)
    (s,) = run_plan(plan)
    assert nonzero(s["errors"]) == {} and s["lost"] == 0
    assert s["sent_all"] == s["replies"] > s["sent"] > 0 and s["received"] > 0
    time.sleep(0.2)  # nginx writes its log line after the response
    assert len(log_lines(log)) - before == s["sent_all"]
    (s,) = run_plan(plan_for(f"http://127.0.0.1:{nginx[1]}/", warmup=0.2, duration=0.5,
                             timeout=2.0))
    assert s["sent_all"] == s["replies"] > 0 and s["lost"] == 0
    assert nonzero(s["errors"]) == {} and s["reconnects"] > 0


@pytest.mark.e2e
def test_keepalive_requests_closes_every_tenth_and_nothing_is_lost(
        nginx: tuple[int, int, Path]) -> None:
    s = run(f"http://127.0.0.1:{nginx[1]}/", 100, conns=2)
    assert (s["sent"], s["received"], s["lost"]) == (100, 100, 0)
    # 50 requests per connection: closed after the 10th, 20th, 30th, 40th, (50th: the end)
    assert nonzero(s["errors"]) == {} and s["reconnects"] == 8


@pytest.mark.e2e
def test_a_post_workload_file_sends_its_body(nginx: tuple[int, int, Path], tmp_path: Path) -> None:
    (tmp_path / "post.py").write_text(
        "from workloads.http import Http\n\n\n"
        "class Post(Http):\n"
        "    method = 'POST'\n"
        "    body = b'{\"text\": \"hello\"}'\n"
        "    headers = {'Content-Type': 'application/json'}\n\n\n"
        "WORKLOAD = Post\n")
    r = harness("run", "--host", f"http://127.0.0.1:{nginx[0]}/post", "--workload",
                str(tmp_path / "post.py"), "--conns", "2", "--messages", "100", "--warmup",
                "0", "--workers", "1", "--json", "--no-report", "--results-dir",
                str(tmp_path), cwd=tmp_path)
    assert r.returncode in (0, 1, 4), r.stderr
    doc = orjson.loads(r.stdout)
    if r.returncode == 4:  # a 100-message step on a busy 2-core machine: client-bound
        assert doc["degradation"]["skipped_why"] == ["client-bound"], doc["degradation"]
    (s,) = doc["steps"]
    assert doc["target"] == f"http://127.0.0.1:{nginx[0]}/post"
    assert (s["sent"], s["received"], s["lost"]) == (100, 100, 0)
    assert nonzero(s["errors"]) == {}


# ---------------------------------------------------------------------------- [[requests]]

ITEMS = """
[[requests]]
name = "list"
weight = 3
path = "/api/items/"

[[requests]]
name = "create"
weight = 1
method = "POST"
path = "/api/items/"
headers = { Content-Type = "application/json" }
body = '{"name": "item {n}", "price": {n}}'
values = { n = "1-100" }
"""


def log_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def table_run(url: str, toml: str, tmp_path: Path, messages: int, conns: int = 4) -> dict:
    (tmp_path / "reqs.toml").write_text(toml)
    return run(url, messages, conns=conns, requests=str(tmp_path / "reqs.toml"), seed=3)


@pytest.mark.e2e
def test_a_weighted_request_table_counts_each_request_as_a_kind(
        nginx: tuple[int, int, Path], tmp_path: Path) -> None:
    before = len(log_lines(nginx[2] / "items.log"))
    s = table_run(f"http://127.0.0.1:{nginx[0]}/", ITEMS, tmp_path, 2000)
    assert (s["sent"], s["received"], s["lost"]) == (2000, 2000, 0)
    assert nonzero(s["errors"]) == {}
    rows = {k["kind"]: k for k in s["kinds"]}
    assert set(rows) == {"list", "create"}
    assert rows["list"]["sent"] + rows["create"]["sent"] == 2000
    assert all(k["received"] == k["sent"] for k in rows.values())
    # 3 : 1 over 2,000 draws: 1,500 GETs, sd 19.4; 5 sd either side
    assert abs(rows["list"]["sent"] - 1500) < 97, rows["list"]["sent"]
    assert all(k["latency_ms"]["p50"] > 0 for k in rows.values())
    time.sleep(0.2)  # nginx writes its log line after the response
    lines = log_lines(nginx[2] / "items.log")[before:]
    methods = [m for m, _, _ in lines]
    assert (methods.count("GET"), methods.count("POST")) == (rows["list"]["sent"],
                                                            rows["create"]["sent"])
    assert {code for _, _, code in lines} == {"200"}


@pytest.mark.e2e
def test_a_path_template_hits_only_paths_in_its_range(
        nginx: tuple[int, int, Path], tmp_path: Path) -> None:
    toml = ('[[requests]]\nname = "user"\npath = "/users/{user_id}/"\n'
            'values = { user_id = "5-24" }\n')
    before = len(log_lines(nginx[2] / "users.log"))
    s = table_run(f"http://127.0.0.1:{nginx[0]}/", toml, tmp_path, 400, conns=2)
    assert (s["sent"], s["received"], s["lost"]) == (400, 400, 0)
    assert nonzero(s["errors"]) == {}
    time.sleep(0.2)
    lines = log_lines(nginx[2] / "users.log")[before:]
    assert len(lines) == 400
    ids = {int(uri.split("/")[2]) for _, uri, _ in lines}
    assert ids <= set(range(5, 25)) and len(ids) > 15  # 400 draws over 20 values
    assert {code for _, _, code in lines} == {"200"}


@pytest.mark.e2e
def test_a_bad_request_table_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "harness.toml").write_text('[[requests]]\nname = "u"\npath = "/u/{uid}/"\n')
    r = harness("run", "--host", "http://127.0.0.1:9/", "--conns", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "harness: harness.toml: requests[0] (u).path: unknown placeholder {uid} "
        "(no requests[0].values.uid)"]


@pytest.mark.e2e
def test_head_requests_mixed_with_gets_read_no_body(
        nginx: tuple[int, int, Path], tmp_path: Path) -> None:
    """nginx answers HEAD with the Content-Length of the GET and no body: a parser that
    waited for that body would stall the connection until the timeout."""
    toml = ('[[requests]]\nname = "head"\nmethod = "HEAD"\npath = "/"\n\n'
            '[[requests]]\nname = "get"\npath = "/"\n')
    s = table_run(f"http://127.0.0.1:{nginx[0]}/", toml, tmp_path, 400, conns=2)
    assert (s["sent"], s["received"], s["lost"]) == (400, 400, 0)
    assert nonzero(s["errors"]) == {}
    rows = {k["kind"]: k for k in s["kinds"]}
    assert rows["head"]["sent"] > 100 and rows["get"]["sent"] > 100


# ---------------------------------------------------------------------------- raw TCP at nginx


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["len32", "newline"])
def test_a_raw_tcp_run_at_an_http_server_says_use_an_http_url_and_exits_3(
        nginx: tuple[int, int, Path], tmp_path: Path, framing: str) -> None:
    port = nginx[0]
    r = harness("run", "--host", f"127.0.0.1:{port}", "--conns", "2", "--duration", "0.5",
                "--warmup", "0", "--workers", "1", "--framing", framing, "--timeout", "1",
                "--no-report", "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "no valid reply" in x]
    # len32 cuts the response's tail first; the status line is still what is quoted
    assert 'first bytes received: "HTTP/1.1 400 Bad Request' in line
    assert line.endswith(f"the target answered with HTTP: use --host http://127.0.0.1:{port}/")


@pytest.mark.e2e
def test_an_http_run_that_gets_no_response_says_it_sent_http_requests(tmp_path: Path) -> None:
    # a len32 server reads "GET " as a frame length and waits: no byte comes back
    from tests import servers
    with servers.start("drop", every=1) as srv:
        r = harness("run", "--host", f"http://127.0.0.1:{srv.port}/", "--conns", "2",
                    "--messages", "4", "--warmup", "0", "--timeout", "0.3", "--no-report",
                    "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "no valid reply" in x]
    assert "HTTP requests on 2 connections" in line and "stamped" not in line, line
    assert "--framing" not in line and "HTTP/1.1 server?" in line, line


@pytest.mark.e2e
def test_valid_replies_beside_an_http_answer_warn_in_one_line(
        nginx: tuple[int, int, Path], tmp_path: Path) -> None:
    """Two raw targets, an echo server and nginx: the echoes are valid replies (no exit 3),
    and one warning line says some target answered with HTTP."""
    from tests import servers
    with servers.start("echo", framing="len32") as echo:
        r = harness("run", "--host", f"127.0.0.1:{echo.port},127.0.0.1:{nginx[0]}",
                    "--conns", "4", "--duration", "0.5", "--warmup", "0", "--workers", "1",
                    "--json", "--no-report", "--results-dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode in (0, 1, 4), r.stderr
    (s,) = orjson.loads(r.stdout)["steps"]
    assert s["received"] > 0 and s["errors"]["protocol"] > 0
    warnings = [x for x in r.stderr.splitlines() if "answered with HTTP" in x]
    assert warnings == [
        'harness: warning: some replies were HTTP (first bytes: "HTTP/1.1 400 Bad Request\\r\\n'
        'Server"): the target answered with HTTP: use --host http://HOST:PORT/'], r.stderr
