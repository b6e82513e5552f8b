"""Users with state (issue 23): flows, captures, checks and cookies. The parts on their own
(JSON paths, a response read, a flow's order, a request finished at send time, bad config),
then whole runs against tests/flow_backend.py under uvicorn, checked by the app's own
counters: every request after login carries its login's token and cookie, created ids
come back exactly, a check that fails 1 in 10 by design is counted exactly, a capture
that finds nothing is counted as capture_<name>."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from harness.config import build as cfg
from harness.core.users import Sessions
from harness.protocols.http.checks import Response, SpecError, parse_capture, parse_path
from harness.protocols.http.flows import Flows
from tests.support import harness, plan_for
from tests.support import run_json as support_run_json
from tests.support.apps import app_stats, uvicorn_app

ROOT = Path(__file__).resolve().parents[1]

FLOW = """
[[users]]
name = "reg"
on_start = ["login", "create", "fetch"]
iterations = 5
on_stop = ["logout"]
{extra}

[[users.requests]]
name = "login"
method = "POST"
path = "/login"
capture = {{ token = "$.token" }}
check = {{ status = "200", json = {{ "$.ok" = true }} }}

[[users.requests]]
name = "create"
method = "POST"
path = "/reports"
headers = {{ Authorization = "Bearer {{token}}" }}
capture = {{ id = "$.id", where = "header:Location" }}

[[users.requests]]
name = "fetch"
path = "/reports/{{id}}"
headers = {{ Authorization = "Bearer {{token}}" }}
check = {{ json = {{ "$.owner" = "re:^t[0-9]+$" }} }}

[[users.requests]]
name = "status"
weight = 2
path = "/auth/status"
headers = {{ Authorization = "Bearer {{token}}" }}
{status_capture}

[[users.requests]]
name = "search"
weight = 3
path = "/search?q=x"
headers = {{ Authorization = "Bearer {{token}}" }}
check = {{ json = {{ "$.ok" = true }} }}

[[users.requests]]
name = "logout"
method = "POST"
path = "/logout"
headers = {{ Authorization = "Bearer {{token}}" }}
"""


def flow_file(tmp_path: Path, extra: str = "", status_capture: str = "") -> str:
    (tmp_path / "flow.toml").write_text(FLOW.format(extra=extra, status_capture=status_capture))
    return str(tmp_path / "flow.toml")


# ---------------------------------------------------------------------------- the parts

@pytest.mark.parametrize(("text", "steps"), [
    ("$.token", ("token",)), ("$.items[0].id", ("items", 0, "id")),
    ('$["a b"].c', ("a b", "c")), ("$[2]", (2,)),
])
def test_the_json_path_subset_reads_names_indices_and_quoted_names(text: str,
                                                                  steps: tuple) -> None:
    assert parse_path(text) == steps


@pytest.mark.parametrize("text", ["$..a", "$.a[*]", "$.a[-1]", "$.a[0:2]", "$[?(@.x)]",
                                  "a.b", "$", "$['a']"])
def test_json_paths_outside_the_subset_are_refused(text: str) -> None:
    with pytest.raises(SpecError):
        parse_path(text)


def test_captures_read_a_json_path_a_header_and_a_regex_of_a_chunked_body() -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /r/7\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n9\r\n{\"items\":\r\n11\r\n [{\"id\": 7}], \"s\"\r\n"
           b"9\r\n: \"id=42\"\r\n1\r\n}\r\n0\r\n\r\n")
    resp = Response(raw)
    assert resp.json() == {"items": [{"id": 7}], "s": "id=42"}
    assert parse_capture("a", "$.items[0].id").take(resp) == b"7"
    assert parse_capture("b", "header:location").take(resp) == b"/r/7"
    assert parse_capture("c", r"re:id=(\d+)").take(resp) == b"42"
    assert parse_capture("d", "$.items[1].id").take(resp) is None
    assert parse_capture("e", "$.items").take(resp) == b'[{"id":7}]'


def users_of(tmp_path: Path, **flags: object) -> tuple:
    plan = plan_for("http://127.0.0.1:9/", requests=flow_file(tmp_path), **flags)
    return plan.users, plan.requests


def test_a_flow_sends_on_start_then_its_loop_then_on_stop_and_starts_again(
        tmp_path: Path) -> None:
    (u,), reqs = users_of(tmp_path)
    names = [r.name.split(".")[1] for r in reqs]
    s = Sessions((u,), np.zeros(1, dtype=np.int64))
    rng = np.random.default_rng(1)
    sent = [names[int(s.next(np.array([0]), np.array([1]), rng.random(1))[0])]
            for _ in range(18)]
    loop = {"status", "search"}
    assert sent[:3] == ["login", "create", "fetch"] and set(sent[3:8]) <= loop
    assert sent[8] == "logout" and sent[9:12] == ["login", "create", "fetch"]
    assert set(sent[12:17]) <= loop and sent[17] == "logout"
    assert [r.weight for r in reqs] == [0, 0, 0, 2, 3, 0]  # in a flow: no weight of its own


def test_a_request_with_captured_values_is_finished_at_send_time(tmp_path: Path) -> None:
    (u,), reqs = users_of(tmp_path)
    flows = Flows((u,), [r.uses for r in reqs], np.zeros(2, dtype=np.int64),
                  np.ones(1000, dtype=bool))
    assert [r.uses for r in reqs][2] == ("id", "token")
    flows.response(0, 0, 200, b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=9; Path=/\r\n"
                   b"Content-Length: 28\r\n\r\n{\"token\": \"t9\", \"ok\": true}")
    flows.response(0, 1, 201, b"HTTP/1.1 201 Created\r\nContent-Length: 9\r\n\r\n{\"id\": 5}")
    out = flows.finish(reqs[2].pool[0], 2, 0)
    assert out.startswith(b"GET /reports/5 HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t9\r\n" in out and out.endswith(b"\r\nCookie: sid=9\r\n\r\n")
    assert flows.finish(reqs[2].pool[0], 2, 1).startswith(b"GET /reports/ HTTP")  # none yet
    assert flows.take()[0] == {"capture_where": 1}  # no Location header: counted once


def test_a_missing_capture_restarts_the_flow_when_the_class_says_so(tmp_path: Path) -> None:
    plan = plan_for("http://127.0.0.1:9/", requests=flow_file(
        tmp_path, 'on_capture_missing = "restart"', 'capture = { nope = "$.nope" }'))
    (u,), reqs = plan.users, plan.requests
    accept = np.zeros(1000, dtype=bool)
    accept[200:300] = True  # --accept 2xx
    flows = Flows((u,), [r.uses for r in reqs], np.zeros(1, dtype=np.int64), accept)
    one, rng = (np.array([0]), np.array([1])), np.random.default_rng(2)
    sent = [int(flows.kinds(*one, rng.random(1))[0]) for _ in range(4)]
    assert sent[:3] == [0, 1, 2] and sent[3] in (3, 4)  # login, create, fetch, loop
    flows.response(0, 3, 200, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    flows.response(0, 3, 401, b"HTTP/1.1 401 No\r\nContent-Length: 2\r\n\r\n{}")
    assert flows.take()[0] == {"capture_nope": 1}  # the 401 is http_401's alone
    assert int(flows.kinds(*one, rng.random(1))[0]) == 0  # back to the login


@pytest.mark.e2e
def test_a_bad_flow_on_the_command_line_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(FLOW.format(extra="", status_capture="").replace(
        'on_start = ["login", "create", "fetch"]', 'on_start = ["nope"]'))
    r = harness("run", "--host", "http://127.0.0.1:9/", "--requests", "bad.toml",
                "--duration", "1", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "no request named 'nope' in this class" in r.stderr


@pytest.mark.parametrize(("extra", "says"), [
    ('on_start = ["nope"]', "users[0] (reg).on_start: no request named 'nope' in this class"),
    ("iterations = -1", "users[0] (reg).iterations: -1 must be a whole number"),
    ('on_capture_missing = "retry"', "on_capture_missing: 'retry' must be"),
    ("cookies = 1", "users[0] (reg).cookies: 1 must be true or false"),
])
def test_a_bad_flow_is_refused_in_one_line_naming_it(tmp_path: Path, extra: str,
                                                      says: str) -> None:
    text = FLOW.format(extra=extra, status_capture="")
    key = extra.partition(" ")[0]
    text = text.replace(next(ln for ln in text.splitlines() if ln.startswith(key + " ")) + "\n",
                        "", 1) if text.count(key + " =") > 1 else text
    (tmp_path / "f.toml").write_text(text)
    with pytest.raises(cfg.ConfigError) as err:
        plan_for("http://127.0.0.1:9/", requests=str(tmp_path / "f.toml"))
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("capture", "says"), [
    ('capture = { t = "$..x" }', "requests[3] (status).capture: '$..x': only $.name"),
    ('capture = { id = "$.x" }', "requests[3] (status).capture.id: also captured by 'create'"),
    ('capture = { q = "$.q" }\nvalues = { q = "1-9" }',
     "requests[3] (status).capture.q: also a placeholder with values"),
    ('capture = { t = "cookie:x" }', "expected \"$.path\", \"header:NAME\" or \"re:PATTERN\""),
    ('capture = { t = "re:(" }', "not a regular expression"),
    ('check = { json = { "$.a" = 1 }, bogus = 2 }', "requests[3] (status).check: unknown key"),
    ('check = { status = "ok" }', "(status).check: 'ok' is not a status class"),
    ('check = { max_bytes = -1 }', "max_bytes: -1 must be a whole number of bytes"),
])
def test_a_bad_capture_or_check_is_refused_in_one_line(tmp_path: Path, capture: str,
                                                       says: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        plan_for("http://127.0.0.1:9/", requests=flow_file(tmp_path, status_capture=capture))
    assert says in str(err.value) and "\n" not in str(err.value)


def test_on_stop_needs_iterations_and_a_flow_needs_one_request_at_a_time(
        tmp_path: Path) -> None:
    text = FLOW.format(extra="", status_capture="").replace("iterations = 5\n", "")
    (tmp_path / "f.toml").write_text(text)
    with pytest.raises(cfg.ConfigError, match=r"on_stop: needs iterations = N"):
        plan_for("http://127.0.0.1:9/", requests=str(tmp_path / "f.toml"))
    with pytest.raises(cfg.ConfigError, match=r"^\[\[users\]\] reg: a flow .* needs "
                                              r"--inflight 1 \(got 3\)"):
        plan_for("http://127.0.0.1:9/", requests=flow_file(tmp_path), inflight=3)
    with pytest.raises(cfg.ConfigError, match=r"no open-loop --rate"):
        plan_for("http://127.0.0.1:9/", requests=flow_file(tmp_path), rate=10.0)


def test_a_capture_in_a_plain_request_table_points_to_users(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('[[requests]]\npath = "/"\ncheck = { status = "200" }\n')
    with pytest.raises(cfg.ConfigError, match=r"requests\[0\]\.check: captures and checks "
                                              r"belong to a \[\[users\]\] class"):
        plan_for("http://127.0.0.1:9/", requests=str(tmp_path / "r.toml"))


def test_a_class_without_state_keeps_its_pre_rendered_requests(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('[[users]]\nname = "a"\n[[users.requests]]\npath = "/x"\n')
    plan = plan_for("http://127.0.0.1:9/", requests=str(tmp_path / "p.toml"))
    (u,) = plan.users
    assert not u.reads and not u.stateful and not u.cookies
    assert plan.requests[0].uses == ()


# ---------------------------------------------------------------------------- against the app

def flow_app() -> contextlib.AbstractContextManager[int]:
    """uvicorn serving tests/flow_backend.py on a free port."""
    return uvicorn_app("tests.flow_backend:app")


def run(port: int, tmp_path: Path, *args: str) -> tuple[int, dict]:
    r, doc = support_run_json("--host", f"http://127.0.0.1:{port}/", "--workers", "1",
                              "--conns", "4", "--duration", "1", "--warmup", "0", *args,
                              cwd=tmp_path, results=tmp_path)
    assert r.returncode in (0, 1, 4) and doc is not None, r.stderr
    return r.returncode, doc


def kinds(s: dict) -> dict[str, int]:
    return {k["kind"].split(".")[1]: k["sent"] for k in s["kinds"]}


@pytest.mark.e2e
def test_a_flow_carries_its_token_and_cookie_and_fetches_back_what_it_created(
        tmp_path: Path) -> None:
    with flow_app() as port:
        _, doc = run(port, tmp_path, "--requests", flow_file(tmp_path))
        app = app_stats(port)
    (s,) = doc["steps"]
    c, sent = app["counts"], kinds(s)
    assert c.get("unauthorized", 0) == 0 and c.get("wrong_cookie", 0) == 0, c
    assert c.get("fetch_wrong", 0) == 0 and c["login"] == sent["login"] >= 4
    # every route as often as harness sent it (--warmup 0: the window holds every request)
    assert (c["create"], c["fetch"], c["status"], c["search"], c["logout"]) == (
        sent["create"], sent["fetch"], sent["status"], sent["search"], sent["logout"])
    fetched = {int(k): v for k, v in app["fetched"].items()}
    assert set(fetched.values()) == {1} and len(fetched) == c["fetch"]  # each id once
    assert set(fetched) <= set(app["created"])
    assert len(app["created"]) - len(fetched) <= 4  # at most one per connection, cut at the end
    assert all(n <= 8 for n in app["per_token"].values())  # one session: 8 requests at most
    # the search that says {"ok": false} on every 10th is counted exactly, and kept
    assert s["errors"]["check_search"] == c["search_not_ok"] == c["search"] // 10
    assert s["failed_bodies"]["check_search"].endswith('{"ok": false, "hits": []}')
    assert s["status"] == {"200": c["code_200"], "201": c["code_201"]}


@pytest.mark.e2e
def test_a_missing_capture_is_counted_and_cookies_can_be_turned_off(tmp_path: Path) -> None:
    with flow_app() as port:
        _, doc = run(port, tmp_path, "--requests",
                     flow_file(tmp_path, "cookies = false", 'capture = { nope = "$.nope" }'))
        app = app_stats(port)
    (s,) = doc["steps"]
    c = app["counts"]
    assert s["errors"]["capture_nope"] == c["status"] == kinds(s)["status"] > 0
    assert c.get("unauthorized", 0) == 0
    authed = sum(app["per_token"].values())  # every request after a login: no cookie sent
    assert c["wrong_cookie"] == authed > 0


@pytest.mark.e2e
def test_the_seed_plan_shortened_runs_every_class_logged_in(tmp_path: Path) -> None:
    with flow_app() as port:
        r, doc = support_run_json("--plan", "seed", "--host", f"http://127.0.0.1:{port}/",
                                  "--workers", "1", "--conns", "8", "--think", "0.02-0.05",
                                  "--duration", "1", "--warmup", "0", cwd=tmp_path,
                                  results=tmp_path)
        app = app_stats(port)
    assert r.returncode in (0, 4) and doc is not None, r.stderr
    (s,) = doc["steps"]
    c = app["counts"]
    assert s["users"] == {"regular": 4, "admin": 1, "api": 1, "mobile": 2}
    assert {k["kind"].split(".")[0] for k in s["kinds"] if k["sent"]} == {
        "regular", "admin", "api", "mobile"}
    assert c.get("unauthorized", 0) == 0 and c.get("wrong_cookie", 0) == 0
    assert c.get("fetch_wrong", 0) == 0 and c["login"] >= 8
    assert s["errors"]["check_search"] == c.get("search_not_ok", 0)


def test_the_seed_plan_loads_four_classes_that_log_in_first() -> None:
    plan = cfg.build_plan(cfg.settings(cfg.load_file(str(ROOT / "workloads/plans/seed.toml")),
                                       {}))
    assert [u.name for u in plan.users] == ["regular", "admin", "api", "mobile"]
    names = [r.name for r in plan.requests]
    for u in plan.users:
        assert names[u.on_start[0]] == f"{u.name}.login" and u.iterations == 20
        assert names[u.on_stop[0]] == f"{u.name}.logout" and u.cookies and u.restart
    assert {n.split(".")[1] for n in names} == {
        "login", "auth-status", "dashboard", "create-report", "open-report", "search", "logout"}
