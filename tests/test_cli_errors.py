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
import sys
import time
from pathlib import Path

import pytest

from tests import servers
from tests.busy import ran_ok

TIMEOUT_S = 30.0  # per CLI call; usage errors take well under a second
SHORT_RUN = ["--conns", "1", "--duration", "0.2", "--warmup", "0"]


def harness(args: list[str], cwd: Path, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


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


def test_unknown_flag(tmp_path: Path) -> None:
    line = assert_usage_error(harness(["run", "--bogus-flag"], tmp_path), "--bogus-flag")
    assert line.startswith("Error:")


@pytest.mark.parametrize("value", ["10,abc", "0", "10,-5", ""])
def test_bad_conns(tmp_path: Path, refused_host: str, value: str) -> None:
    proc = harness(["run", "--host", refused_host, "--conns", value], tmp_path)
    assert_usage_error(proc, "--conns")


def test_port_out_of_range(tmp_path: Path) -> None:
    proc = harness(["run", "--host", "127.0.0.1:70000"], tmp_path)
    assert_usage_error(proc, "--host", "70000")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "[::1]",
                                  "[::1]:", ":5000", "127.0.0.1:0"])
def test_malformed_host(tmp_path: Path, host: str) -> None:
    assert_usage_error(harness(["run", "--host", host], tmp_path), "--host")


def test_rate_and_inflight_exclude_each_other(tmp_path: Path, refused_host: str) -> None:
    proc = harness(["run", "--host", refused_host, "--rate", "10", "--inflight", "2"], tmp_path)
    assert_usage_error(proc, "--rate", "--inflight")


def test_host_that_does_not_resolve(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = harness(["run", "--host", "no-such-host.invalid:5000", *SHORT_RUN], tmp_path)
    took = time.monotonic() - t0
    assert_usage_error(proc, "--host", "no-such-host.invalid")
    assert took < 10.0


def test_unknown_framing(tmp_path: Path, refused_host: str) -> None:
    proc = harness(["run", "--host", refused_host, "--framing", "bogus"], tmp_path)
    assert_usage_error(proc, "--framing", "bogus")


@pytest.mark.parametrize("framing", ["len32", "newline"])
def test_size_too_small(tmp_path: Path, refused_host: str, framing: str) -> None:
    proc = harness(["run", "--host", refused_host, "--framing", framing, "--size", "8"],
                   tmp_path)
    assert_usage_error(proc, "--size")


def test_size_beyond_len16(tmp_path: Path, refused_host: str) -> None:
    proc = harness(["run", "--host", refused_host, "--framing", "len16", "--size", "70000"],
                   tmp_path)
    assert_usage_error(proc, "--size")


@pytest.mark.parametrize("flag", ["--duration", "--rate", "--warmup", "--timeout",
                                  "--connect-timeout"])
def test_nan_is_not_a_number_we_accept(tmp_path: Path, refused_host: str, flag: str) -> None:
    proc = harness(["run", "--host", refused_host, *SHORT_RUN, flag, "nan"], tmp_path)
    assert_usage_error(proc, flag)


@pytest.mark.parametrize("flag", ["--rate", "--think"])
def test_infinity_is_refused(tmp_path: Path, refused_host: str, flag: str) -> None:
    proc = harness(["run", "--host", refused_host, *SHORT_RUN, flag, "inf"], tmp_path)
    assert_usage_error(proc, flag)


# ---------------------------------------------------------------------------- config files


def test_missing_config_file(tmp_path: Path) -> None:
    assert_usage_error(harness(["run", "--config", "missing.toml"], tmp_path),
                       "--config", "missing.toml")


def test_config_unknown_key(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[run]\nbogus = 1\n")
    assert_usage_error(harness(["run", "--config", name], tmp_path), "run.bogus", name)


def test_config_unknown_key_in_another_table(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[thresholds]\np42_ms = 1\n")
    assert_usage_error(harness(["run", "--config", name], tmp_path), "thresholds.p42_ms")


def test_config_unknown_table(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[runn]\nconns = 1\n")
    assert_usage_error(harness(["run", "--config", name], tmp_path), "runn")


def test_config_invalid_toml(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "[run\nconns = 1\n")
    assert_usage_error(harness(["run", "--config", name], tmp_path), name)


def test_harness_toml_in_cwd_is_read(tmp_path: Path) -> None:
    write(tmp_path / "harness.toml", "[run]\nbogus = 1\n")
    assert_usage_error(harness(["run"], tmp_path), "run.bogus", "harness.toml")


def test_config_table_that_is_not_a_table(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", "run = 1\n")
    assert_usage_error(harness(["run", "--config", name], tmp_path), "run")


def test_config_degradation_value_not_a_number(tmp_path: Path, refused_host: str) -> None:
    name = write(tmp_path / "bad.toml", '[degradation]\nmax_error_rate = "lots"\n')
    proc = harness(["run", "--host", refused_host, "--config", name], tmp_path)
    assert_usage_error(proc, "degradation.max_error_rate")


def test_config_threshold_value_not_a_number(tmp_path: Path, refused_host: str) -> None:
    name = write(tmp_path / "bad.toml", '[thresholds]\nmax_lost = "none"\n')
    proc = harness(["run", "--host", refused_host, "--config", name], tmp_path)
    assert_usage_error(proc, "thresholds.max_lost")


def test_config_bad_run_value_names_the_key(tmp_path: Path) -> None:
    name = write(tmp_path / "bad.toml", '[run]\nconns = "10,abc"\n')
    assert_usage_error(harness(["run", "--config", name], tmp_path), "run.conns")


# ---------------------------------------------------------------------------- workloads


def test_unknown_workload(tmp_path: Path, refused_host: str) -> None:
    proc = harness(["run", "--host", refused_host, "--workload", "nonexistent"], tmp_path)
    assert_usage_error(proc, "nonexistent")


def test_workload_file_that_raises_on_import(tmp_path: Path, refused_host: str) -> None:
    write(tmp_path / "boom.py", "raise RuntimeError('kaboom at import')\n")
    proc = harness(["run", "--host", refused_host, "--workload", "boom.py"], tmp_path)
    assert_usage_error(proc, "boom.py", "kaboom at import")


def test_workload_file_with_a_syntax_error(tmp_path: Path, refused_host: str) -> None:
    write(tmp_path / "broken.py", "def oops(:\n")
    proc = harness(["run", "--host", refused_host, "--workload", "broken.py"], tmp_path)
    assert_usage_error(proc, "broken.py", "SyntaxError")


def test_workload_file_without_workload(tmp_path: Path, refused_host: str) -> None:
    write(tmp_path / "empty.py", "X = 1\n")
    proc = harness(["run", "--host", refused_host, "--workload", "empty.py"], tmp_path)
    assert_usage_error(proc, "empty.py", "WORKLOAD")


# ---------------------------------------------------------------------------- exit 3, help, serve


def test_target_refusing_every_connection(tmp_path: Path, refused_host: str) -> None:
    t0 = time.monotonic()
    proc = harness(["run", "--host", refused_host, *SHORT_RUN,
                    "--results-dir", str(tmp_path / "res")], tmp_path)
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    line = error_line(proc)
    assert refused_host in line
    assert "refused" in line.lower()
    assert time.monotonic() - t0 < 10.0


def test_help_documents_exit_codes(tmp_path: Path) -> None:
    for args in (["--help"], ["run", "--help"]):
        proc = harness(args, tmp_path)
        assert proc.returncode == 0
        text = " ".join(proc.stdout.split())
        assert "Exit codes" in text
        for code in ("0 ran", "1 ran", "2 usage", "3 the target"):
            assert code in text, (args, code)


def test_serve_port_out_of_range(tmp_path: Path) -> None:
    proc = harness(["serve", "echo", "--port", "70000"], tmp_path)
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


def test_run_against_echo_server(tmp_path: Path) -> None:
    results = tmp_path / "res"
    with servers.start("echo") as srv:
        target = f"127.0.0.1:{srv.port}"
        proc = harness(["run", "--host", target, "--conns", "2", "--duration", "0.5",
                        "--warmup", "0.1", "--json", "--results-dir", str(results)], tmp_path,
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


def test_run_against_ipv6_loopback(tmp_path: Path, echo_v6: int) -> None:
    target = f"[::1]:{echo_v6}"
    proc = harness(["run", "--host", target, "--conns", "2", "--duration", "0.3",
                    "--warmup", "0.1", "--json", "--results-dir", str(tmp_path / "res")],
                   tmp_path, timeout=60)
    assert ran_ok(proc.returncode, json.loads(proc.stdout)), proc.stderr
    check_summary(json.loads(proc.stdout), target, 2)
