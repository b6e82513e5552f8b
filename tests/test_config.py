"""Config validation at the boundary (harness/config/build.py): every TOML value type-checked
without coercion, every setting range-checked, the built-in defaults and presets shipped in
the package, and flags that a run would otherwise ignore refused. In-process: these build a
Plan or raise ConfigError, no load is run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import build as cfg


def plan_from(tmp_path: Path, toml: str = "", scenario: str | None = None,
              env: str | None = None, **flags: object):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    file = cfg.load_file(str(path))
    return cfg.build_plan(cfg.settings(file, {"host": "127.0.0.1:9", **flags}, scenario, env))


def refused(tmp_path: Path, toml: str = "", *names: str, **kwargs: object) -> str:
    with pytest.raises(cfg.ConfigError) as exc:
        plan_from(tmp_path, toml, **kwargs)
    text = str(exc.value)
    assert "\n" not in text
    for name in names:
        assert name in text, (name, text)
    return text


# ---------------------------------------------------------------------------- wrong TOML types


@pytest.mark.parametrize("toml, names", [
    ('[run]\nuntil_degraded = "false"\n', ("run.until_degraded", "true or false", "string")),
    ("[run]\nhost = false\n", ("run.host", "expected a string", "boolean")),
    ("[run]\nserver_cmd = []\n", ("run.server_cmd", "expected a string", "list")),
    ("[run]\nduration = true\n", ("run.duration", "expected a number", "boolean")),
    ("[run]\nconns = [1.5]\n", ("run.conns", "list of integers")),
    ("[run]\nconns = [true]\n", ("run.conns",)),
    ("[run]\nworkers = 2.0\n", ("run.workers", "an integer")),
    ("[run]\nsize = []\n", ("run.size", "at least one size")),
    ("[run]\nsize = 1.5\n", ("run.size",)),
    ("[run]\nsource_addrs = [1]\n", ("run.source_addrs",)),
    ("[thresholds]\nmax_lost = 0.5\n", ("thresholds.max_lost", "an integer")),
    ('[degradation]\np99_factor = "10"\n', ("degradation.p99_factor", "a number")),
    ("[scenarios.x]\nstages = 5\n", ("scenarios.x.stages", "list of tables")),
    ("[scenarios.x]\nstages = [5]\n", ("scenarios.x.stages[0]", "table")),
    ('[scenarios.x]\nstages = [{ conns = "5" }]\n', ("scenarios.x.stages[0].conns",)),
    ("[scenarios.x]\ndescription = 5\n", ("scenarios.x.description",)),
    ("[scenarios.x]\nconns = [1]\nstages = [{ conns = 5 }]\n", ("scenarios.x.conns", "stages")),
    ("[mix]\nkinds = 5\n", ("mix.kinds", "list of tables")),
    ("[mix]\nkinds = [{ name = 1, size = 64 }]\n", ("mix.kinds[0].name", "a string")),
    ("[mix]\nby = 1\n", ("mix.by",)),
    ("[env.x]\nthresholds = 5\n", ("env.x.thresholds", "table")),
    ("[env.x.thresholds]\np99_ms = true\n", ("env.x.thresholds.p99_ms",)),
    ("run = 5\n", ("[run]", "table")),
])
def test_wrongly_typed_toml_values_are_refused(tmp_path: Path, toml: str,
                                              names: tuple[str, ...]) -> None:
    text = refused(tmp_path, toml, *names)
    assert "c.toml" in text


def test_a_boolean_is_not_a_number_even_from_a_flag_dict(tmp_path: Path) -> None:
    refused(tmp_path, "", "--rate", rate=True)


# ---------------------------------------------------------------------------- ranges


@pytest.mark.parametrize("flag, value", [
    ("seed", 2**64), ("max_frame", 2**40), ("server_pid", 2**40), ("increment", 10**30),
    ("connect_timeout", 1e10), ("connect_rate", 1e-300), ("rate", 1e-10), ("rate", 1e12),
    ("think", 1e10), ("timeout", 1e300), ("duration", 1e300), ("warmup", -1.0),
    ("workers", 10**6), ("inflight", 0), ("listen", -1), ("max_conns", 0),
    ("monitor_interval", 0.0),
])
def test_values_a_worker_or_run_json_cannot_hold_are_refused(tmp_path: Path, flag: str,
                                                             value: object) -> None:
    refused(tmp_path, "", cfg.FLAG[flag], "out of range", **{flag: value})


def test_a_thirty_digit_message_count_is_refused(tmp_path: Path) -> None:
    text = refused(tmp_path, "", "--messages", messages="1" * 30)
    assert len(text) < 200


def test_a_huge_threshold_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, f"[thresholds]\nmax_lost = {2**62}0\n", "thresholds.max_lost")


def test_zero_still_means_off_for_rate_and_connect_rate(tmp_path: Path) -> None:
    plan = plan_from(tmp_path, rate=0.0, connect_rate=0.0)
    assert plan.pacing.mode == "closed" and plan.connect_rate == 0.0


def test_a_disabled_p99_factor_is_none_not_infinity() -> None:
    plan = cfg.build_plan(cfg.settings({"degradation": {"p99_factor": 0.0}}, {}))
    assert plan.degradation.p99_factor is None
    assert cfg.build_plan(cfg.settings({}, {})).degradation.p99_factor == 10.0


@pytest.mark.parametrize("host", ["a" * 64 + ":5000", "a..b:5000", "x" * 254 + ":1",
                                  "bad host:1", "[nonsense]:5000"])
def test_malformed_host_names_are_usage_errors(tmp_path: Path, host: str) -> None:
    refused(tmp_path, "", "--host", host=host)


def test_a_well_formed_name_is_left_to_the_resolver(tmp_path: Path) -> None:
    plan = plan_from(tmp_path, host="no-such-host.invalid:5000,[::1]:5,127.0.0.1:6")
    assert [t.host for t in plan.targets] == ["no-such-host.invalid", "::1", "127.0.0.1"]


# ---------------------------------------------------------------------------- the file itself


def test_a_non_utf8_config_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[run]\nname = "\xff"\n')
    with pytest.raises(cfg.ConfigError, match=r"not UTF-8 .*0xff"):
        cfg.load_file(str(path))


def test_a_directory_or_fifo_is_not_a_config(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (tmp_path, fifo):
        with pytest.raises(cfg.ConfigError, match="not a regular file"):
            cfg.load_file(str(path))


# ---------------------------------------------------------------------------- built-in presets


def test_presets_ship_in_the_package_and_work_from_any_folder(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.chdir(tmp_path)  # no harness.toml here
    plan = cfg.build_plan(cfg.settings(cfg.load_file(None), {}, "spike"))
    assert [s.conns for s in plan.steps[0].stages] == [20, 200, 20]
    cfg.check_file(dict(cfg.BUILTIN), "default.toml")  # the shipped file passes its own checks
    assert set(cfg.RUN_DEFAULTS) == set(cfg.RUN_SPEC)


def test_a_local_harness_toml_layers_over_the_built_ins(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "harness.toml").write_text(
        "[run]\nduration = 2.0\n[scenarios.spike]\nconns = [7]\n[scenarios.mine]\nconns = [3]\n")
    file = cfg.load_file(None)
    spike = cfg.build_plan(cfg.settings(file, {}, "spike"))
    assert [s.conns for s in spike.steps] == [7]  # the user's spike replaces the built-in one
    assert spike.steps[0].duration_s == 2.0 and not spike.steps[0].stages
    assert [s.conns for s in cfg.build_plan(cfg.settings(file, {}, "mine")).steps] == [3]
    soak = cfg.build_plan(cfg.settings(file, {}, "soak"))  # built-in presets stay available
    assert soak.steps[0].duration_s == 3600.0
    with pytest.raises(cfg.ConfigError, match="known: .*mine.*spike"):
        cfg.settings(file, {}, "nope")


# ---------------------------------------------------------------------------- ignored flags


def test_duration_with_a_staged_scenario_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "", "--duration", "stages", scenario="spike", duration=2.0)
    refused(tmp_path, "", "--conns", "stages", scenario="spike", conns="5")


def test_a_stage_rate_still_wins_over_the_run_rate() -> None:
    merged = cfg.settings({"scenarios": {"s": {"stages": [{"conns": 1, "duration": 1.0},
                                                          {"conns": 1, "duration": 1.0,
                                                           "rate": 5.0}]}}},
                          {"rate": 20.0}, "s")
    plan = cfg.build_plan(merged)
    assert [st.rate for st in plan.steps[0].stages] == [20.0, 5.0]
    assert plan.pacing.mode == "open"
    closed = cfg.build_plan(cfg.settings({"scenarios": {"s": {"stages": [{"conns": 1}]}}},
                                         {}, "s"))
    assert closed.pacing.mode == "closed" and closed.steps[0].stages[0].rate == 0.0


def test_messages_and_duration_exclude_each_other(tmp_path: Path) -> None:
    refused(tmp_path, "", "--duration", "--messages", messages="100", duration=2.0)
    refused(tmp_path, "[run]\nmessages = [100]\n", "--duration", "run.messages", duration=2.0)
    # a duration from a file is only a default: --messages ends the step
    plan = plan_from(tmp_path, "[run]\nduration = 3.0\n", messages="100")
    assert plan.steps[0].messages == 100 and plan.steps[0].duration_s is None


# ---------------------------------------------------------------------------- accepted = runnable


NS_INT64 = 2**63 - 1
NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(), st.sampled_from(
    [0, 1, 1e-300, 1e-10, 1e-3, 1e6, 1e7, 1e10, 1e300, 2**63, 2**64]))
NUMERIC_KEYS = [k for k, s in cfg.RUN_SPEC.items() if s.kind in ("int", "float")]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(values=st.dictionaries(st.sampled_from(NUMERIC_KEYS), NUMBERS, max_size=5),
       conns=st.integers(1, 2**40), messages=st.one_of(st.none(), st.integers(1, 2**70)))
def test_every_plan_that_validates_fits_the_worker_and_run_json(values: dict, conns: int,
                                                                messages: int | None) -> None:
    """What passes validation must not crash a worker or run.json later: times fit int64 ns,
    an open-loop period is at least 1 ns, the connect phase is finite, and every integer fits
    a signed 64-bit JSON number."""
    import orjson

    from harness.report.document import plan_dict
    flags = {"host": "127.0.0.1:9", "conns": str(conns), **values}
    if messages is not None:
        flags.update(messages=str(messages), duration=None)
    try:
        plan = cfg.build_plan(cfg.settings({}, flags))
    except cfg.ConfigError as exc:
        assert "\n" not in str(exc)
        return
    seconds = [plan.timeout_s, plan.connect_timeout_s, plan.warmup_s, plan.pacing.think_s,
               plan.monitor_interval_s] + [s.duration_s or 0 for s in plan.steps]
    assert all(0 <= s * 1e9 < NS_INT64 for s in seconds)
    if plan.pacing.rate:
        assert 1e9 / plan.pacing.rate >= 1
    if plan.connect_rate:
        assert max(s.conns for s in plan.steps) / plan.connect_rate * 1e9 < NS_INT64
    assert all((s.messages or 0) < NS_INT64 for s in plan.steps)
    orjson.dumps(plan_dict(plan))  # raises on an integer beyond 64 bits


# ---------------------------------------------------------------------------- [[requests]]

HTTP = "http://127.0.0.1:9/"
TABLE = """
[[requests]]
name = "list"
weight = 3
path = "/api/items/"

[[requests]]
name = "user"
weight = 1
method = "POST"
path = "/users/{user_id}/"
headers = { Content-Type = "application/json" }
body = '{"id": {user_id}, "tag": "{tag}"}'
values = { user_id = "1-50", tag = ["a", "b"] }
"""


def test_a_request_table_is_a_mix_of_kinds_rendered_ahead_seeded(tmp_path: Path) -> None:
    import json
    import re
    plan = plan_from(tmp_path, TABLE, host=HTTP)
    assert [(k.name, k.weight) for k in plan.mix] == [("list", 3.0), ("user", 1.0)]
    listing, user = plan.requests
    assert listing.pool == (b"GET /api/items/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n",)
    assert 50 < len(user.pool) <= 1024  # distinct renderings only
    ids = set()
    for raw in user.pool:
        head, _, body = raw.partition(b"\r\n\r\n")
        m = re.match(rb"POST /users/(\d+)/ HTTP/1\.1\r\n", head)
        assert m and int(m.group(1)) == json.loads(body)["id"]
        assert json.loads(body)["tag"] in ("a", "b")
        assert f"Content-Length: {len(body)}".encode() in head
        ids.add(int(m.group(1)))
    assert ids == set(range(1, 51))  # 1,024 draws over 50 values
    assert plan_from(tmp_path, TABLE, host=HTTP).requests == plan.requests  # seeded
    assert plan_from(tmp_path, TABLE, host=HTTP, seed=2).requests != plan.requests


def test_a_requests_file_replaces_the_config_table(tmp_path: Path) -> None:
    other = tmp_path / "reqs.toml"
    other.write_text('[[requests]]\nname = "only"\npath = "/x/{n}"\nvalues = { n = [7] }\n')
    plan = plan_from(tmp_path, TABLE, host=HTTP, requests=str(other))
    assert [r.name for r in plan.requests] == ["only"]
    assert plan.requests[0].pool == (b"GET /x/7 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n",)
    (tmp_path / "names.txt").write_text("ann\nbob\n")
    corpus = ('[[requests]]\npath = "/u/{who}"\n'
              f'values = {{ who = {{ file = "{tmp_path}/names.txt" }} }}\n')
    pool = plan_from(tmp_path, corpus, host=HTTP).requests[0].pool
    assert {p.split(b" ")[1] for p in pool} == {b"/u/ann", b"/u/bob"}


@pytest.mark.parametrize(("toml", "names"), [
    ('[[requests]]\npath = "/users/{user_id}/"\n', ("requests[0]", "unknown placeholder",
                                                     "{user_id}")),
    ('[[requests]]\nname = "p"\nmethod = "POST"\nbody = \'{"id": {n}\'\n'
     'headers = { Content-Type = "application/json" }\nvalues = { n = "1-3" }\n',
     ("requests[0] (p).body", "not valid JSON after substitution")),
    ('[[requests]]\nname = "p"\nurl = "/"\n', ("unknown key requests[0].url", "known: body")),
    ('[[requests]]\nweight = -1\n', ("requests[0]", ".weight", "-1")),
    ('[[requests]]\nweight = "heavy"\n', ("requests[0]", ".weight", "heavy")),
    ('[[requests]]\nweight = true\n', ("requests[0]", ".weight")),
    ('[[requests]]\nweight = 0\n', ("requests", "positive weight")),
    ('[[requests]]\npath = "/{n}"\nvalues = { n = "9-1" }\n', ("values.n", "9-1")),
    ('[[requests]]\nmethod = "get it"\n', ("method", "get it")),
    ('[[requests]]\nname = "a"\n[[requests]]\nname = "a"\n', ("'a'", "twice")),
    ('requests = 5\n', ("requests", "list of tables")),
    ('[mix]\nkinds = [{ size = 64 }]\n[[requests]]\n', ("[mix]", "[[requests]]")),
])
def test_a_bad_request_table_is_refused_naming_it(tmp_path: Path, toml: str,
                                                   names: tuple[str, ...]) -> None:
    refused(tmp_path, toml, *names, host=HTTP)


def test_a_request_table_needs_an_http_target(tmp_path: Path) -> None:
    refused(tmp_path, '[[requests]]\npath = "/"\n', "[[requests]]", "http://")


def test_a_config_plan_layers_over_harness_toml_key_by_key_and_table_by_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("harness.toml").write_text(
        '[run]\nduration = 3.0\nname = "local"\nhost = "http://127.0.0.1:9/"\n'
        '[thresholds]\np99_ms = 9.0\n[alerts]\nwebhook = "http://127.0.0.1:9/x"\n'
        '[env.ci.thresholds]\nmax_lost = 5\n[[requests]]\nname = "a"\npath = "/a"\n')
    Path("plan.toml").write_text(
        '[run]\nname = "plan"\n[thresholds]\nmax_error_rate = 0.2\n'
        '[[users]]\nname = "u"\nweight = 1\n[[users.requests]]\nname = "b"\npath = "/b"\n')
    file = cfg.load_file("plan.toml")
    merged = cfg.settings(file, {"warmup": 0.5}, None, "ci")
    assert (merged["run"]["duration"], merged["run"]["name"], merged["run"]["warmup"]) == (
        3.0, "plan", 0.5)
    assert merged["thresholds"]["p99_ms"] == 9.0 and merged["thresholds"]["max_error_rate"] == 0.2
    assert merged["thresholds"]["max_lost"] == 5  # ./harness.toml's [env.ci]
    assert file["alerts"] == {"webhook": "http://127.0.0.1:9/x"}
    assert cfg.origin_of(file, "alerts") == "harness.toml"
    assert "requests" not in file and cfg.origin_of(file, "users") == "plan.toml"  # one slot
    assert merged["names"]["duration"] == "harness.toml: run.duration"
    assert merged["names"]["name"] == "plan.toml: run.name"
    plan = cfg.build_plan(merged)
    assert plan.users and plan.users[0].name == "u"
    assert cfg.load_file("harness.toml")["__files__"][0]["__path__"] == "harness.toml"
    assert len(cfg.load_file("harness.toml")["__files__"]) == 1  # the same file once
