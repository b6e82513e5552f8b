"""The CLI as a user meets it (subprocess, ``python -m harness``): bad flags and config give
exit 2 with one line naming the culprit, an unreachable target gives 3, a short run against
a real loopback server gives 0 and the documented JSON summary."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.report import results
from tests import servers
from tests.busy import ran_ok
from tests.support import harness

SHORT_RUN = ["--conns", "1", "--duration", "0.2", "--warmup", "0"]


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line that explains the failure. click's usage and hint lines are allowed
    around it; anything else (a traceback, a second message) is not."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Usage: ", "Try '"))]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def assert_usage_error(proc: subprocess.CompletedProcess, *names: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = error_line(proc)
    for name in names:
        assert name in line, (name, line)
    assert proc.stdout == ""
    return line


@pytest.fixture
def refused_host() -> str:
    with servers.closed_port() as handle:
        yield f"127.0.0.1:{handle.port}"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return path.name


# ---------------------------------------------------------------------------- flags


@pytest.mark.e2e
def test_unknown_flag(tmp_path: Path) -> None:
    line = assert_usage_error(harness("run", "--bogus-flag", cwd=tmp_path), "--bogus-flag")
    assert line.startswith("harness: No such option")
    assert "run -h" in line


@pytest.mark.e2e
@pytest.mark.parametrize("value", ["10,abc", "0", "10,-5", ""])
def test_bad_conns(tmp_path: Path, refused_host: str, value: str) -> None:
    proc = harness("run", "--host", refused_host, "--conns", value, cwd=tmp_path)
    assert_usage_error(proc, "--conns")


@pytest.mark.e2e
def test_port_out_of_range(tmp_path: Path) -> None:
    proc = harness("run", "--host", "127.0.0.1:70000", cwd=tmp_path)
    assert_usage_error(proc, "--host", "70000")


@pytest.mark.e2e
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "[::1]",
                                  "[::1]:", ":5000", "127.0.0.1:0"])
def test_malformed_host(tmp_path: Path, host: str) -> None:
    assert_usage_error(harness("run", "--host", host, cwd=tmp_path), "--host")


@pytest.mark.e2e
def test_rate_and_inflight_exclude_each_other(tmp_path: Path, refused_host: str) -> None:
    proc = harness("run", "--host", refused_host, "--rate", "10", "--inflight", "2", cwd=tmp_path)
    assert_usage_error(proc, "--rate", "--inflight")


@pytest.mark.e2e
def test_host_that_does_not_resolve_is_unreachable(tmp_path: Path) -> None:
    """A well-formed name that does not resolve is the target's problem: exit 3, not 2."""
    t0 = time.monotonic()
    proc = harness("run", "--host", "no-such-host.invalid:5000", *SHORT_RUN, cwd=tmp_path)
    took = time.monotonic() - t0
    assert proc.returncode == 3, proc.stderr
    line = error_line(proc)
    assert "no-such-host.invalid" in line and "resolve" in line
    assert took < 10.0


@pytest.mark.e2e
def test_unknown_framing(tmp_path: Path, refused_host: str) -> None:
    proc = harness("run", "--host", refused_host, "--framing", "bogus", cwd=tmp_path)
    assert_usage_error(proc, "--framing", "bogus")


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["len32", "newline"])
def test_size_too_small(tmp_path: Path, refused_host: str, framing: str) -> None:
    proc = harness("run", "--host", refused_host, "--framing", framing, "--size", "8",
                   cwd=tmp_path)
    assert_usage_error(proc, "--size")


@pytest.mark.e2e
def test_size_beyond_len16(tmp_path: Path, refused_host: str) -> None:
    proc = harness("run", "--host", refused_host, "--framing", "len16", "--size", "70000",
                   cwd=tmp_path)
    assert_usage_error(proc, "--size")


@pytest.mark.e2e
@pytest.mark.parametrize("flag", ["--duration", "--rate", "--warmup", "--timeout",
                                  "--connect-timeout"])
def test_nan_is_not_a_number_we_accept(tmp_path: Path, refused_host: str, flag: str) -> None:
    proc = harness("run", "--host", refused_host, *SHORT_RUN, flag, "nan", cwd=tmp_path)
    assert_usage_error(proc, flag)


@pytest.mark.e2e
@pytest.mark.parametrize("flag", ["--rate", "--think"])
def test_infinity_is_refused(tmp_path: Path, refused_host: str, flag: str) -> None:
    proc = harness("run", "--host", refused_host, *SHORT_RUN, flag, "inf", cwd=tmp_path)
    assert_usage_error(proc, flag)


# ---------------------------------------------------------------------------- config files


@pytest.mark.e2e
def test_missing_config_file(tmp_path: Path) -> None:
    assert_usage_error(harness("run", "--config", "missing.toml", cwd=tmp_path),
                       "--config", "missing.toml")


@pytest.mark.e2e
def test_config_unknown_key(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[run]\nbogus = 1\n")
    assert_usage_error(harness("run", "--config", name, cwd=tmp_path), "run.bogus", name)


@pytest.mark.e2e
def test_config_unknown_key_in_another_table(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[thresholds]\np42_ms = 1\n")
    assert_usage_error(harness("run", "--config", name, cwd=tmp_path), "thresholds.p42_ms")


@pytest.mark.e2e
def test_config_unknown_table(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[runn]\nconns = 1\n")
    assert_usage_error(harness("run", "--config", name, cwd=tmp_path), "runn")


@pytest.mark.e2e
def test_config_invalid_toml(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[run\nconns = 1\n")
    assert_usage_error(harness("run", "--config", name, cwd=tmp_path), name)


@pytest.mark.e2e
def test_harness_toml_in_cwd_is_read(tmp_path: Path) -> None:
    write(tmp_path / "harness.toml", "[run]\nbogus = 1\n")
    assert_usage_error(harness("run", cwd=tmp_path), "run.bogus", "harness.toml")


@pytest.mark.e2e
def test_config_table_that_is_not_a_table(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "run = 1\n")
    assert_usage_error(harness("run", "--config", name, cwd=tmp_path), "run")


@pytest.mark.e2e
def test_config_degradation_value_not_a_number(tmp_path: Path, refused_host: str) -> None:
    name = write(tmp_path / "bad.toml", '[degradation]\nmax_error_rate = "lots"\n')
    proc = harness("run", "--host", refused_host, "--config", name, cwd=tmp_path)
    assert_usage_error(proc, "degradation.max_error_rate")


@pytest.mark.e2e
def test_config_threshold_value_not_a_number(tmp_path: Path, refused_host: str) -> None:
    name = write(tmp_path / "bad.toml", '[thresholds]\nmax_lost = "none"\n')
    proc = harness("run", "--host", refused_host, "--config", name, cwd=tmp_path)
    assert_usage_error(proc, "thresholds.max_lost")


@pytest.mark.e2e
def test_config_bad_run_value_names_the_key(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", '[run]\nconns = "10,abc"\n')
    assert_usage_error(harness("run", "--config", name, cwd=tmp_path), "run.conns")


# ---------------------------------------------------------------------------- workloads


@pytest.mark.e2e
def test_unknown_workload(tmp_path: Path, refused_host: str) -> None:
    proc = harness("run", "--host", refused_host, "--workload", "nonexistent", cwd=tmp_path)
    assert_usage_error(proc, "nonexistent")


@pytest.mark.e2e
def test_workload_file_that_raises_on_import(tmp_path: Path, refused_host: str) -> None:
    write(tmp_path / "boom.py", "raise RuntimeError('kaboom at import')\n")
    proc = harness("run", "--host", refused_host, "--workload", "boom.py", cwd=tmp_path)
    assert_usage_error(proc, "boom.py", "kaboom at import")


@pytest.mark.e2e
def test_workload_file_with_a_syntax_error(tmp_path: Path, refused_host: str) -> None:
    write(tmp_path / "broken.py", "def oops(:\n")
    proc = harness("run", "--host", refused_host, "--workload", "broken.py", cwd=tmp_path)
    assert_usage_error(proc, "broken.py", "SyntaxError")


@pytest.mark.e2e
def test_workload_file_without_workload(tmp_path: Path, refused_host: str) -> None:
    write(tmp_path / "empty.py", "X = 1\n")
    proc = harness("run", "--host", refused_host, "--workload", "empty.py", cwd=tmp_path)
    assert_usage_error(proc, "empty.py", "WORKLOAD")


# ---------------------------------------------------------------------------- exit 3, help, serve


@pytest.mark.e2e
def test_target_refusing_every_connection(tmp_path: Path, refused_host: str) -> None:
    t0 = time.monotonic()
    proc = harness("run", "--host", refused_host, *SHORT_RUN,
                   "--results-dir", str(tmp_path / "res"), cwd=tmp_path)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    line = error_line(proc)
    assert refused_host in line
    assert "refused" in line.lower()
    assert time.monotonic() - t0 < 10.0


@pytest.mark.e2e
def test_help_documents_exit_codes(tmp_path: Path) -> None:
    for args in (["--help"], ["run", "--help"]):
        proc = harness(*args, cwd=tmp_path)
        assert proc.returncode == 0
        text = " ".join(proc.stdout.split())
        assert "Exit codes" in text
        for code in ("0 ran", "1 ran", "2 usage", "3 the target"):
            assert code in text, (args, code)


@pytest.mark.e2e
def test_serve_port_out_of_range(tmp_path: Path) -> None:
    proc = harness("serve", "echo", "--port", "70000", cwd=tmp_path)
    assert_usage_error(proc, "--port")


# ---------------------------------------------------------------------------- happy paths

STEP_KEYS = {"conns", "duration_s", "sent", "received", "throughput_msgs_s", "throughput_mb_s",
             "latency_ms", "connect_ms", "errors", "lost", "duplicates", "client_cpu_pct",
             "partial"}
LATENCY_KEYS = {"p50", "p90", "p99", "p999", "max", "mean"}
CONNECT_KEYS = {"p50", "p99", "max"}
ERROR_KEYS = {"connect_refused", "connect_timeout", "reset", "closed", "timeout", "protocol"}


def check_summary(doc: dict, target: str, conns: int) -> None:
    assert doc["schema_version"] == 1
    assert doc["partial"] is False
    assert doc["target"] == target
    assert len(doc["steps"]) == 1
    step = doc["steps"][0]
    assert not STEP_KEYS - set(step)
    assert not LATENCY_KEYS - set(step["latency_ms"])
    assert not CONNECT_KEYS - set(step["connect_ms"])
    assert not ERROR_KEYS - set(step["errors"])
    assert step["conns"] == conns
    assert step["partial"] is False
    assert step["sent"] > 0 and step["received"] > 0
    assert step["throughput_msgs_s"] > 0
    assert all(v == 0 for v in step["errors"].values()), step["errors"]
    assert step["lost"] == 0 and step["duplicates"] == 0
    lat = step["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"]
    assert not {"degraded_at", "last_healthy", "rule"} - set(doc["degradation"])


@pytest.mark.e2e
def test_run_against_echo_server(tmp_path: Path) -> None:
    results = tmp_path / "res"
    with servers.start("echo") as srv:
        target = f"127.0.0.1:{srv.port}"
        proc = harness("run", "--host", target, "--conns", "2", "--duration", "0.5",
                       "--warmup", "0.1", "--json", "--results-dir", str(results), cwd=tmp_path,
                       timeout=60)
    assert ran_ok(proc.returncode, json.loads(proc.stdout)), proc.stderr
    check_summary(json.loads(proc.stdout), target, 2)
    folders = list(results.iterdir())
    assert len(folders) == 1
    assert (folders[0] / "run.json").is_file()
    assert json.loads((folders[0] / "run.json").read_text())["schema_version"] == 1
    rows = (folders[0] / "steps.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("conns,")


def _echo_v6(lsock: socket.socket, deadline: float) -> None:
    """A tiny byte echo on an already listening socket; runs in the forked child."""
    sel = selectors.DefaultSelector()
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ)
    parent = os.getppid()
    while time.monotonic() < deadline and os.getppid() == parent:
        for key, _ in sel.select(0.1):
            if key.fileobj is lsock:
                with contextlib.suppress(BlockingIOError):
                    conn, _ = lsock.accept()
                    conn.settimeout(5.0)
                    sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
                if data:
                    conn.sendall(data)
                    continue
            except OSError:
                pass
            sel.unregister(conn)
            conn.close()


@pytest.fixture
def echo_v6() -> int:
    try:
        lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        lsock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    lsock.listen(64)
    port = lsock.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            _echo_v6(lsock, time.monotonic() + 60)
            code = 0
        finally:
            os._exit(code)
    lsock.close()
    try:
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


@pytest.mark.e2e
def test_run_against_ipv6_loopback(tmp_path: Path, echo_v6: int) -> None:
    target = f"[::1]:{echo_v6}"
    proc = harness("run", "--host", target, "--conns", "2", "--duration", "0.3",
                   "--warmup", "0.1", "--json", "--results-dir", str(tmp_path / "res"),
                   cwd=tmp_path, timeout=60)
    assert ran_ok(proc.returncode, json.loads(proc.stdout)), proc.stderr
    check_summary(json.loads(proc.stdout), target, 2)


# ---------------------------------------------------------------------------- issue 7: bad input


@pytest.mark.e2e
@pytest.mark.parametrize("args", [
    ["--seed", "18446744073709551616"], ["--max-frame", "18446744073709551616"],
    ["--server-pid", "18446744073709551616"], ["--increment", "18446744073709551616"],
    ["--connect-timeout", "1e10"], ["--connect-rate", "1e-300"], ["--messages", "1" * 30],
    ["--rate", "1e-10"], ["--think", "1e10"], ["--timeout", "1e300"],
    ["--host", "a" * 64 + ":5000"],
])
def test_values_that_used_to_crash_are_usage_errors(tmp_path: Path, refused_host: str,
                                                    args: list[str]) -> None:
    host = [] if args[0] == "--host" else ["--host", refused_host]
    assert_usage_error(harness("run", *host, "--conns", "1", *args, cwd=tmp_path), args[0])


@pytest.mark.e2e
def test_config_that_is_not_utf8_or_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_bytes(b'[run]\nname = "\xff"\n')
    assert_usage_error(harness("run", "--config", "bad.toml", cwd=tmp_path), "bad.toml", "UTF-8")
    assert_usage_error(harness("run", "--config", str(tmp_path), cwd=tmp_path), "--config")


@pytest.mark.e2e
def test_serve_bind_to_a_name_that_does_not_resolve(tmp_path: Path) -> None:
    assert_usage_error(harness("serve", "echo", "--bind", "nosuchhost.invalid", cwd=tmp_path),
                       "--bind", "nosuchhost.invalid")


@pytest.mark.e2e
def test_search_with_an_infinite_bound(tmp_path: Path, refused_host: str) -> None:
    proc = harness("search", "--slo", "p99<5ms", "--host", refused_host, "--lo", "1",
                   "--hi", "inf", cwd=tmp_path)
    assert_usage_error(proc, "--lo/--hi")


@pytest.mark.e2e
def test_slo_error_is_one_line_and_the_grammar_is_in_help(tmp_path: Path) -> None:
    line = assert_usage_error(harness("search", "--slo", "p99<5kb", cwd=tmp_path), "--slo", "kb")
    assert "METRIC" not in line
    helped = harness("search", "-h", cwd=tmp_path)
    assert helped.returncode == 0 and "SLO grammar" in helped.stdout


@pytest.mark.e2e
def test_click_type_errors_are_one_line(tmp_path: Path) -> None:
    proc = harness("run", "--workers", "abc", cwd=tmp_path)
    line = assert_usage_error(proc, "--workers", "abc")
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1, proc.stderr
    assert "run -h" in line


@pytest.mark.e2e
def test_report_on_a_run_json_with_a_mistyped_field(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"schema_version": 1, "steps": [], "degradation": 5}')
    assert_usage_error(harness("report", str(tmp_path), cwd=tmp_path), "degradation")


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.e2e
@pytest.mark.parametrize("content", [b"{}", b"[1,2]", b'{"schema_version": 1, "steps": [1]}',
                                     b'{"schema_version": "1", "steps": []}', b"not json"])
def test_report_and_merge_refuse_folders_that_are_not_runs(tmp_path: Path,
                                                           content: bytes) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_bytes(content)
    rep = harness("report", "a", cwd=tmp_path)
    assert rep.returncode == 2, (rep.returncode, rep.stderr)
    assert "not a harness run folder" in one_error_line(rep)
    assert not (tmp_path / "a" / "report.html").exists()
    mer = harness("merge", "a", "b", "--results-dir", "out", cwd=tmp_path)
    assert mer.returncode == 2, (mer.returncode, mer.stderr)
    assert "not a harness run folder" in one_error_line(mer)
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_a_folder_without_run_json_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    rep = harness("report", "empty", cwd=tmp_path)
    assert rep.returncode == 2 and "not a harness run folder" in one_error_line(rep)
    mer = harness("merge", "empty", "empty", cwd=tmp_path)
    assert mer.returncode == 2 and "not a harness run folder" in one_error_line(mer)


def test_read_run_says_why_a_document_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_bytes(b'{"schema_version": 1, "steps": {}}')
    with pytest.raises(ValueError, match="steps"):
        results.read_run(tmp_path)
    (tmp_path / "run.json").write_bytes(b'{"schema_version": 1, "steps": [{}]}')
    assert results.read_run(tmp_path)["steps"] == [{}]


@pytest.mark.e2e
def test_listen_with_an_echo_workload_is_a_usage_error(tmp_path: Path) -> None:
    with servers.closed_port() as closed:
        r = harness("run", "--host", f"127.0.0.1:{closed.port}", "--listen", "1",
                    "--conns", "1", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "--listen" in one_error_line(r)
    assert r.stdout == ""


@pytest.mark.e2e
def test_escape_sequences_in_errors_are_shown_not_sent(tmp_path: Path) -> None:
    evil = "x\x1b]0;pwned\x07\x1b[2J.toml"  # a file name quoted raw in the error line
    (tmp_path / evil).write_text("[run\n")
    proc = harness("run", "--config", evil, cwd=tmp_path)
    line = assert_usage_error(proc, "not valid TOML")
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "x\\x1b]0;pwned\\x07" in line


# ---------------------------------------------------------------------------- issue 8: CLI surface


@pytest.mark.e2e
def test_presets_work_from_any_folder(tmp_path: Path, refused_host: str) -> None:
    proc = harness("run", "--scenario", "spike", "--host", refused_host, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr  # resolved the built-in preset, then unreachable
    assert refused_host in error_line(proc)


@pytest.mark.e2e
def test_duration_with_a_staged_scenario_is_refused(tmp_path: Path) -> None:
    proc = harness("run", "--scenario", "spike", "--duration", "2", cwd=tmp_path)
    assert_usage_error(proc, "--duration", "stages")


@pytest.mark.e2e
def test_messages_and_duration_exclude_each_other(tmp_path: Path) -> None:
    proc = harness("run", "--messages", "100", "--duration", "2", cwd=tmp_path)
    assert_usage_error(proc, "--messages", "--duration")


def help_text(*args: str) -> str:
    from click.testing import CliRunner

    from harness.cli import main
    result = CliRunner().invoke(main, list(args), prog_name="harness")
    assert result.exit_code == 0, result.output
    return result.output


def test_run_help_groups_options_and_shows_resolved_defaults(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "harness.toml", "[run]\nduration = 3.5\n")
    text = help_text("run", "-h")
    heads = ["Target options", "Load options", "Pacing options", "Step options",
             "Measurement options", "Output options", "Capacity options"]
    assert [text.index(h) for h in heads] == sorted(text.index(h) for h in heads)
    capacity = text[text.index("Capacity options"):text.index("Config options")]
    for flag in ("--until-degraded", "--grow", "--max-conns"):
        assert flag in capacity
    assert "[newline|len16|len32]" in text and "[double|add]" in text
    flat = " ".join(text.split())
    assert "--duration FLOAT seconds of the measure window per step [default: 3.5]" in flat
    assert "[default: 10,100,1000]" in flat  # from the built-ins


def test_search_help_lists_only_what_applies() -> None:
    text = help_text("search", "--help")
    for flag in ("--until-degraded", "--messages", "--no-report", "--scenario", "--name",
                 "--results-dir", "--max-conns"):
        assert f"{flag} " not in text, flag
    assert "print the search result as JSON" in text
    assert "print the run summary" not in text


def test_other_commands_state_their_own_exit_codes() -> None:
    for cmd in ("serve", "report", "calibrate", "merge"):
        text = " ".join(help_text(cmd, "-h").split())
        assert "3 the target" not in text, cmd
        assert "Exit codes" in text, cmd
    serve = help_text("serve", "-h")
    assert "port to listen on" in serve and "address to listen on" in serve


# ---------------------------------------------------------------------------- fuzz (hypothesis)


NASTY = ["", "0", "-1", "1e300", "-1e300", "nan", "inf", "-inf", "1e-300", "1.5", "abc",
         "18446744073709551616", "1" * 30, "\x1b]0;x\x07\x1b[2J", "10,abc", "1,,2", "64-",
         "-64", "0x10", " ", "true", "a" * 64 + ":1", "[::1]", "spike", "10,100", "64-1024"]
FUZZ_VALUES = st.one_of(st.sampled_from(NASTY), st.integers(-2**70, 2**70).map(str),
                        st.floats().map(repr), st.text(max_size=16))


def _fuzz_flags() -> list[str]:
    from harness.config.table import RUN_KEYS
    # the flags that take a value; never --server-cmd (it would run a shell command) nor
    # --host (always a closed port)
    return [s.flag for s in RUN_KEYS if s.spec is not None and s.spec.kind != "bool"
            and s.flag not in ("--server-cmd", "--host")] + [
        "--scenario", "--env", "--push-conns"]


FLAG_ARGS = st.lists(st.tuples(st.sampled_from(_fuzz_flags()), FUZZ_VALUES), max_size=4)
SEARCH_ARGS = st.lists(st.tuples(st.sampled_from(["--slo", "--lo", "--hi", "--max-errors",
                                                  "--over", "--tolerance", "--max-probes"]),
                                 st.one_of(st.sampled_from(["p99<5ms", "errors<0.1%", "conns",
                                                            "rate"]), FUZZ_VALUES)), max_size=3)


def assert_one_clean_line(result: object, allowed: tuple[int, ...]) -> None:
    exc = result.exception  # type: ignore[attr-defined]
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    assert result.exit_code in allowed, (result.exit_code, result.stderr)  # type: ignore
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]  # type: ignore
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr  # type: ignore


@pytest.mark.e2e
@settings(max_examples=700, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=st.sampled_from(["run", "search"]), flags=FLAG_ARGS, search_args=SEARCH_ARGS)
def test_fuzz_flags_give_exit_2_with_one_line(closed_port: int, command: str,
                                              flags: list[tuple[str, str]],
                                              search_args: list[tuple[str, str]]) -> None:
    """Any mix of flag values: a usage error (2) in one line, or, when every value is valid,
    the closed port's one-line 'unreachable' (3). Never a traceback, never a worker."""
    from click.testing import CliRunner

    from harness.cli import main
    args = [command, f"--host=127.0.0.1:{closed_port}"]
    args += [f"{flag}={value}" for flag, value in flags]
    if command == "search":
        args += [f"{flag}={value}" for flag, value in search_args]
        args = [a for a in args if not a.startswith(("--scenario", "--env"))]
    result = CliRunner().invoke(main, args, prog_name="harness")
    assert_one_clean_line(result, (2, 3))


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v > 0 else "-inf") if abs(v) == float("inf") \
            else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return str(v)


SCALARS = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(),
                    st.sampled_from(NASTY), st.text(max_size=12))
TOML_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["conns", "duration", "rate", "label", "name", "weight", "size", "x"]), inner,
        max_size=3)), max_leaves=6)


def _toml_keys() -> list[str]:
    from harness.config import build as cfg
    keys = [f"run.{k}" for k in cfg.RUN_SPEC if k not in ("server_cmd", "host")]
    keys += [f"{t}.{k}" for t in ("degradation", "thresholds") for k in cfg.TABLES[t]]
    keys += ["scenarios.x.stages", "scenarios.x.conns", "scenarios.x.description", "mix.by",
             "mix.kinds", "env.x.thresholds", "env.x.degradation", "env.x.thresholds.p99_ms",
             "run.bogus", "scenarios.x", "mix"]
    return keys


TOML_ENTRIES = st.dictionaries(st.sampled_from(_toml_keys()), TOML_VALUES, max_size=4)


def toml_text(entries: dict[str, object]) -> str:
    tables: dict[str, list[str]] = {}
    for dotted, value in entries.items():
        table, _, key = dotted.rpartition(".")
        tables.setdefault(table, []).append(f"{json.dumps(key)} = {toml_value(value)}")
    return "".join(f"[{t}]\n" + "\n".join(lines) + "\n" if t else "\n".join(lines) + "\n"
                   for t, lines in sorted(tables.items()))


@pytest.mark.e2e
@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(entries=TOML_ENTRIES, pick=st.sampled_from([[], ["--scenario=x"], ["--env=x"]]),
       garbage=st.one_of(st.just(b""), st.binary(max_size=8)))
def test_fuzz_toml_keys_give_exit_2_with_one_line(closed_port: int, tmp_path_factory: Any,
                                                  entries: dict[str, object], pick: list[str],
                                                  garbage: bytes) -> None:
    from click.testing import CliRunner

    from harness.cli import main
    path = tmp_path_factory.getbasetemp() / "fuzz.toml"
    try:
        text = toml_text(entries).encode()
    except (ValueError, TypeError):
        return
    path.write_bytes(text + garbage)
    args = ["run", f"--host=127.0.0.1:{closed_port}", f"--config={path}", *pick]
    result = CliRunner().invoke(main, args, prog_name="harness")
    assert_one_clean_line(result, (2, 3))
# ---------------------------------------------------------------------------- results folder
# A results folder that cannot take the run is found before the run (exit 2, one line); one
# that fails at the end (a full disk) still shows the figures, then one line, exit 1.


@contextlib.contextmanager
def mounted(where: Path, *options: str):
    """A mount for the test's lifetime; skipped where mounting is not allowed (not root)."""
    where.mkdir(exist_ok=True)
    done = subprocess.run(["mount", *options, str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here: {done.stderr.strip() or done.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.e2e
def test_results_dir_that_cannot_be_created_is_refused_before_the_run(
        tmp_path: Path, refused_host: str) -> None:
    proc = harness("run", "--host", refused_host, *SHORT_RUN, "--results-dir", "/proc/x",
                   cwd=tmp_path)
    assert "/proc/x" in assert_usage_error(proc, "--results-dir")


@pytest.mark.e2e
def test_read_only_results_dir_is_refused_before_the_run(tmp_path: Path,
                                                         refused_host: str) -> None:
    (tmp_path / "ro").mkdir()
    with mounted(tmp_path / "ro", "--bind", "-o", "ro", str(tmp_path / "ro")) as ro:
        proc = harness("run", "--host", refused_host, *SHORT_RUN, "--results-dir",
                       str(ro / "results"), cwd=tmp_path)
    assert "Read-only" in assert_usage_error(proc, "--results-dir")


@pytest.mark.e2e
def test_full_results_filesystem_is_refused_before_the_run(tmp_path: Path,
                                                           refused_host: str) -> None:
    with mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=64k", "tmpfs") as full:
        with contextlib.suppress(OSError), open(full / "filler", "wb") as f:
            f.write(bytes(64 * 1024))
        proc = harness("run", "--host", refused_host, *SHORT_RUN, "--results-dir",
                       str(full), cwd=tmp_path)
        leftovers = [p.name for p in full.iterdir()]
    assert "No space left" in assert_usage_error(proc, "--results-dir")
    assert leftovers == ["filler"]


@pytest.mark.e2e
def test_a_name_too_long_for_a_folder_is_refused_before_the_run(tmp_path: Path,
                                                              refused_host: str) -> None:
    proc = harness("run", "--host", refused_host, *SHORT_RUN, "--name", "n" * 300, cwd=tmp_path)
    assert "300" in assert_usage_error(proc, "--name")


@pytest.mark.e2e
def test_a_disk_full_at_the_end_still_shows_the_table_then_one_line(tmp_path: Path) -> None:
    # 8 KiB left: the up-front check (4 KiB) passes, steps.csv and the series take the
    # rest, and run.json no longer fits
    with mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=64k", "tmpfs") as full, \
            servers.start("echo") as srv:
        (full / "filler").write_bytes(bytes(56 * 1024))
        proc = harness("run", "--host", f"127.0.0.1:{srv.port}", "--conns", "2",
                       "--duration", "0.5", "--warmup", "0", "--results-dir",
                       str(full / "r"), cwd=tmp_path, timeout=60)
        leftovers = [p.name for p in (full / "r").rglob("*")]
    assert proc.returncode == 1, proc.stderr
    assert "msgs/s" in proc.stdout and "results:" not in proc.stdout  # the table, no path
    line = error_line(proc)
    assert line.startswith("harness: results not written to") and "No space left" in line
    assert not [n for n in leftovers if ".tmp" in n], leftovers


# ---------------------------------------------------------------------------- limits


def over_the_fd_limit() -> int:
    """More connections than one process may open; skipped where the limit is huge."""
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard > 500_000:
        pytest.skip(f"open-files hard limit {hard}: too high to exceed in a test")
    return hard + 500


@pytest.mark.e2e
def test_more_connections_than_a_worker_may_open_are_refused_with_the_figure(
        tmp_path: Path, refused_host: str) -> None:
    conns = over_the_fd_limit()
    proc = harness("run", "--host", refused_host, "--conns", str(conns), "--workers", "1",
                   cwd=tmp_path)
    line = assert_usage_error(proc, "--conns", "--workers 2")
    assert f"allows {conns - 500 - 64} per worker" in line


@pytest.mark.e2e
def test_more_connections_than_the_embedded_server_may_hold_are_refused(tmp_path: Path) -> None:
    conns = over_the_fd_limit()
    proc = harness("run", "--conns", str(conns), "--workers", "2", cwd=tmp_path)
    assert "embedded server" in assert_usage_error(proc, "--conns")


@pytest.mark.e2e
@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "directory"])
def test_corpus_that_is_not_a_regular_file_is_refused_at_once(
        tmp_path: Path, refused_host: str, source: str) -> None:
    # /dev/zero never ends (it reached 2.9 GB), a FIFO without a writer blocks forever
    if source == "fifo":
        os.mkfifo(tmp_path / "fifo")
    if source == "directory":
        (tmp_path / "directory").mkdir()
    path = source if source.startswith("/") else str(tmp_path / source)
    proc = harness("run", "--host", refused_host, *SHORT_RUN, "--corpus", path, cwd=tmp_path,
                   timeout=10)
    assert "not a regular file" in assert_usage_error(proc, "--corpus", path)


@pytest.mark.e2e
def test_corpus_over_the_size_or_line_limit_is_refused(tmp_path: Path,
                                                       refused_host: str) -> None:
    from harness.config.build import MAX_CORPUS_BYTES, MAX_CORPUS_LINES
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(MAX_CORPUS_BYTES + 1)  # sparse: costs no disk
    proc = harness("run", "--host", refused_host, *SHORT_RUN, "--corpus", str(big),
                   cwd=tmp_path, timeout=10)
    assert "at most" in assert_usage_error(proc, "--corpus")
    many = tmp_path / "many"
    many.write_bytes(b"x\n" * (MAX_CORPUS_LINES + 1))
    proc = harness("run", "--host", refused_host, *SHORT_RUN, "--corpus", str(many),
                   cwd=tmp_path, timeout=10)
    assert f"{MAX_CORPUS_LINES:,}" in assert_usage_error(proc, "--corpus")
