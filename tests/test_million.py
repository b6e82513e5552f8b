"""Issue 26 end to end: `harness serve echo --port A-B` holding a port range, a run over a
destination pool from several 127.0.0.x source addresses (every pair used, evenly), the
connect ramp in run.json, and the preflight refusing a step the machine cannot fit (exit
2), with limits lowered in a child process or a network namespace."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

pytestmark = pytest.mark.e2e

ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))


def free_run(count: int) -> int:
    """The first of ``count`` consecutive free ports (bound and released: a short race)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + count > 65535:
            continue
        socks = []
        try:
            for p in range(first, first + count):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free run of ports")


@contextlib.contextmanager
def serve_range(count: int) -> Iterator[tuple[int, int]]:
    """`harness serve echo --port A-B`, stopped (by pid) when done."""
    first = free_run(count)
    last = first + count - 1
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "echo", "--port",
                             f"{first}-{last}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(count)]
        assert all("listening on 127.0.0.1:" in line for line in lines), lines
        yield first, last
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def harness_run(*args: str, preexec: object = None, prefix: tuple[str, ...] = (),
                timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "harness", "run", *args],
                          capture_output=True, text=True, env=ENV, timeout=timeout,
                          preexec_fn=preexec)  # type: ignore[arg-type]


def pairs_seen(ports: range, want: int, within: float) -> Counter:
    """(source address, destination port) of the client connections to ``ports``, once
    ``want`` of them are established (or ``within`` seconds passed)."""
    deadline = time.monotonic() + within
    seen: Counter = Counter()
    while time.monotonic() < deadline:
        seen = Counter((c.laddr.ip, c.raddr.port) for c in psutil.net_connections("tcp4")
                       if c.raddr and c.raddr.port in ports and c.status == "ESTABLISHED")
        if sum(seen.values()) >= want:
            break
        time.sleep(0.1)
    return seen


def test_a_destination_pool_from_a_source_pool_uses_every_pair_evenly(tmp_path: Path) -> None:
    with serve_range(3) as (first, last):
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", "--host", f"127.0.0.1:{first}-{last}",
             "--source-addrs", "127.0.0.2-4,127.0.0.5/32", "--conns", "24", "--rate", "5",
             "--duration", "2", "--warmup", "0.2", "--workers", "2", "--json",
             "--no-report", "--results-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
        seen = pairs_seen(range(first, last + 1), 24, 15)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 4), err
    # 3 ports x 4 sources: 12 pairs, 2 connections each
    assert len(seen) == 12 and set(seen.values()) == {2}, seen
    assert {ip for ip, _ in seen} == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
    (step,) = orjson.loads(out)["steps"]
    assert step["connected"] == 24 and step["lost"] == 0 and step["sent"] > 0
    assert step["received"] >= step["sent"] - 24  # the last replies land in the drain
    ramp = step["ramp"]
    assert ramp["connected"] == 24 and ramp["failed"] == {}
    assert sum(p["connected"] for p in ramp["per_second"]) == 24
    assert all(p["p99_ms"] > 0 for p in ramp["per_second"])
    (folder,) = tmp_path.iterdir()
    saved = orjson.loads((folder / "run.json").read_bytes())
    assert saved["steps"][0]["ramp"]["connected"] == 24


def test_the_connect_rate_is_held_across_the_workers(tmp_path: Path) -> None:
    with serve_range(2) as (first, last):
        done = harness_run("--host", f"127.0.0.1:{first}-{last}", "--conns", "60",
                           "--connect-rate", "40", "--rate", "1", "--duration", "0.5",
                           "--warmup", "0", "--workers", "2", "--json", "--no-report",
                           "--results-dir", str(tmp_path))
    assert done.returncode in (0, 4), done.stderr
    ramp = orjson.loads(done.stdout)["steps"][0]["ramp"]
    # 60 connects at 40/s: 1.5 s from the first to the last, never more than 40 a second
    # (each worker paces its half from its own start: they may lag by one connect)
    assert 1.3 < ramp["time_to_connect_s"] < 2.2, ramp
    assert all(p["connected"] <= 42 for p in ramp["per_second"]), ramp
    assert ramp["connected"] == 60


def test_refused_connects_are_counted_by_kind_in_the_ramp(tmp_path: Path) -> None:
    # a third port that takes harness's probe, then stops listening: its share is refused
    gone = socket.create_server(("127.0.0.1", 0))
    dead = gone.getsockname()[1]

    def probe_then_close() -> None:
        conn, _ = gone.accept()
        conn.close()
        gone.close()
    waiter = threading.Thread(target=probe_then_close, daemon=True)
    waiter.start()
    with serve_range(2) as (first, last):
        done = harness_run("--host", f"127.0.0.1:{first}-{last},127.0.0.1:{dead}",
                           "--conns", "9", "--rate", "1", "--duration", "0.5", "--warmup", "0",
                           "--workers", "1", "--json", "--no-report",
                           "--results-dir", str(tmp_path))
    waiter.join(timeout=5)
    step = orjson.loads(done.stdout)["steps"][0]
    assert step["ramp"]["failed"] == {"connect_refused": 3}, (step["ramp"], done.stderr)
    assert step["ramp"]["connected"] == 6 == step["connected"]


def test_an_address_that_cannot_be_bound_is_one_line_naming_it() -> None:
    done = harness_run("--host", "127.0.0.1:9", "--source-addrs", "127.0.0.1,192.0.2.7",
                       "--conns", "2", "--duration", "0.2")
    assert done.returncode == 2
    assert done.stderr.strip() == ("harness: --source-addrs: cannot bind 192.0.2.7: "
                                   "Cannot assign requested address")


def test_one_source_address_cannot_carry_more_connections_than_it_has_ports() -> None:
    # no server: the preflight refuses the step before any connect
    done = harness_run("--host", "127.0.0.1:9", "--source-addrs", "127.0.0.1",
                       "--conns", "60000", "--duration", "0.2")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    (ports,) = [x for x in lines if x.startswith("harness: preflight shortfall: ports:")]
    assert "put 60,000 on one (source, destination) pair" in ports
    assert "fix: --source-addrs with 3 address(es) or more" in ports
    assert lines[-1] == ("harness: preflight: a step of 60,000 connections cannot fit this "
                         "machine (1 shortfall above)")
    assert "Traceback" not in done.stderr


def test_a_low_open_files_limit_in_the_child_is_a_shortfall_with_its_fix() -> None:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
    done = harness_run("--host", "127.0.0.1:9", "--source-addrs", "127.0.0.1-8",
                       "--conns", "60000", "--duration", "0.2", preexec=lower)
    assert done.returncode == 2, done.stderr
    assert "harness: preflight shortfall: open files: 60,000 connections need 1,667 worker " \
           "processes at the open-files limit 100" in done.stderr
    assert "fix: ulimit -Hn 123" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a network namespace needs root and unshare")
def test_a_narrow_port_range_and_a_low_somaxconn_in_a_namespace_are_shortfalls() -> None:
    setup = ("ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range='40000 40999' "
             "&& sysctl -qw net.core.somaxconn=128 && exec \"$@\"")
    done = harness_run("--host", "127.0.0.1:1-4", "--source-addrs", "127.0.0.1-4",
                       "--conns", "60000", "--duration", "0.2",
                       prefix=("unshare", "-n", "sh", "-c", setup, "sh"))
    if "unshare failed" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert done.returncode == 2, done.stderr
    assert "preflight shortfall: ports: 60,000 connections over 4 source address(es) × 4 " \
           "destination(s) put 3,750 on one (source, destination) pair; " \
           "ip_local_port_range 40000-40999 gives 1,000" in done.stderr
    assert "preflight shortfall: somaxconn: net.core.somaxconn 128" in done.stderr
    assert "(2 shortfalls above)" in done.stderr


def test_serve_refuses_a_bad_port_range_in_one_line() -> None:
    for port, says in (("7005-7001", "going up"), ("x", "not a port")):
        done = subprocess.run([sys.executable, "-m", "harness", "serve", "echo", "--port", port],
                              capture_output=True, text=True, env=ENV, timeout=20)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
