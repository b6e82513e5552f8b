"""Kernel receive stamps (SO_TIMESTAMPNS) and the open loop's deferred reads.

A read's time is its bytes' arrival as the kernel stamped it, not the moment the client got
round to reading, in both builds of the read round. So the open loop may read at its send
instants only (fewer wake-ups), and a client that was stopped mid-run does not add its stop
to the service time it reports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.wire import hot
from tests import servers
from tests.bench.peers import worker_pids
from tests.support import tcp_pairs, wait_process_connections

PURE = types.SimpleNamespace(recv_fixed=hot.py_recv_fixed)  # (hot.recv_fixed: C when built)
IMPLS: dict[str, Any] = {"pure": PURE, **({"native": hot.native} if hot.native is not None else {})}
FRAME = (60).to_bytes(4, "big") + b"x" * 60  # one len32 frame of 64 bytes


def _send(peer: socket.socket, data: bytes) -> tuple[int, int]:
    """Send ``data`` (loopback delivers it within the call): the clock before and after."""
    a = time.monotonic_ns()
    peer.sendall(data)
    return a, time.monotonic_ns()


@pytest.fixture(scope="module", autouse=True)
def stamping_on() -> Iterator[None]:
    """A stamped socket held open, and one read seen stamped: the kernel turns stamping on
    a moment after the first socket asks (a deferred static-key switch), and a read before
    that carries no stamp (it takes the clock after the read: tested below)."""
    with tcp_pairs(1) as (ours, peers):
        ours[0].setsockopt(hot.SOL_SOCKET, hot.SO_TIMESTAMPNS, 1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sent = _send(peers[0], FRAME)
            time.sleep(0.01)
            _n, t = hot.recv_stamped(ours[0], memoryview(bytearray(4096)), hot.real_offset_ns())
            if t <= sent[1]:
                break
        yield


def test_the_constants_are_the_kernels() -> None:
    assert hot.SOL_SOCKET == socket.SOL_SOCKET
    assert socket.CMSG_SPACE(16) == hot.STAMP_SPACE
    assert getattr(socket, "SO_TIMESTAMPNS", 35) == hot.SO_TIMESTAMPNS  # (named in 3.13)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_a_stamped_read_round_times_each_read_by_its_arrival(impl: str) -> None:
    with tcp_pairs(4) as (ours, peers):
        for s in ours[:3]:
            s.setsockopt(hot.SOL_SOCKET, hot.SO_TIMESTAMPNS, 1)
        sent_a = _send(peers[0], FRAME)
        time.sleep(0.03)
        sent_b = _send(peers[1], FRAME)
        time.sleep(0.03)
        _send(peers[2], FRAME)  # two frames, 30 ms apart, read at once
        time.sleep(0.03)
        sent_c2 = _send(peers[2], FRAME)
        _send(peers[3], FRAME)  # no SO_TIMESTAMPNS on ours[3]
        time.sleep(0.03)
        before_read = time.monotonic_ns()
        buf = bytearray(1 << 16)
        seg_conn: list[int] = []
        seg_end: list[int] = []
        seg_t: list[int] = []
        k, off, status, _n, _t = IMPLS[impl].recv_fixed(
            ours, [b""] * 4, [0, 1, 2, 3], 0, buf, 0, 1 << 15, 4096, 64, seg_conn, seg_end,
            seg_t, True)
        after_read = time.monotonic_ns()
    assert (k, off, status) == (4, 5 * 64, hot.DONE)
    assert seg_conn == [0, 1, 2, 3] and seg_end == [64, 128, 256, 320]
    assert sent_a[0] <= seg_t[0] <= sent_a[1]  # arrival, not the read 120 ms later
    assert sent_b[0] <= seg_t[1] <= sent_b[1]
    assert sent_c2[0] <= seg_t[2] <= sent_c2[1]  # a read of two: the later one's arrival
    assert before_read <= seg_t[3] <= after_read  # not stamped: the clock after the read


def test_a_read_round_without_stamps_reads_the_clock_as_before() -> None:
    for impl in IMPLS.values():
        with tcp_pairs(1) as (ours, peers):
            ours[0].setsockopt(hot.SOL_SOCKET, hot.SO_TIMESTAMPNS, 1)
            _send(peers[0], FRAME)
            time.sleep(0.03)
            before_read = time.monotonic_ns()
            seg_t: list[int] = []
            impl.recv_fixed(ours, [b""], [0], 0, bytearray(1 << 16), 0, 1 << 15, 4096, 64, [],
                            [], seg_t)
        assert seg_t[0] >= before_read


@pytest.mark.e2e
def test_an_open_loop_reads_at_its_send_instants_only() -> None:
    """200 connections at 20 msgs/s: send instants 2 ms apart (harness.worker.schedule),
    each connection's period 50 ms, so replies wait for the next instant: about 500 rounds
    a second, where reading on arrival wakes for the replies as well."""
    from tests.bench.worker_rounds import run_once
    got = run_once(200, "@20", 1.5)
    assert got["errors"] == 0 and got["lost"] == 0
    assert 3800 <= got["msgs_s"] <= 4200, got
    assert 1e6 / got["us_round"] <= 600, got  # rounds a second in the window


OPEN_LOOP = ("--rate", "1")  # each connection sends once a second
CLOSED_LOOP = ("--think", "0.1-0.3")  # one in flight, a think time after each reply


def _stopped_run(port: int, tmp: Path, stamps: str, pacing: tuple[str, ...] = OPEN_LOOP
                 ) -> dict:
    """A run of 40 connections (``pacing``: open loop at 1/s, so at most one reply reaches
    a connection in the stop; or closed loop, one in flight and a think time of 0.1 to
    0.3 s, so that the replies to the sends of the last 200 ms before the stop arrive in
    it) against a server that answers 200 ms late; its worker stopped (SIGSTOP) for
    500 ms, 1 s into the window. The step's record."""
    cmd = [sys.executable, "-m", "harness", "run", "--host", f"127.0.0.1:{port}", "--conns",
           "40", *pacing, "--duration", "3", "--warmup", "0.5", "--workers", "1",
           "--timeout", "5", "--json", "--no-report", "--results-dir",
           str(tmp / (stamps + pacing[0]))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL,
                            env={**os.environ, "HARNESS_RX_STAMPS": stamps})
    try:
        (worker, *_) = worker_pids(proc.pid, time.monotonic() + 30)
        wait_process_connections(proc.pid, port, 40)
        time.sleep(1.5)
        os.kill(worker, signal.SIGSTOP)
        time.sleep(0.5)
        os.kill(worker, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 1, 4), err
    return json.loads(out)["steps"][0]


@pytest.mark.e2e
def test_a_stopped_client_does_not_add_its_stop_to_service_time(tmp_path: Path) -> None:
    with servers.start("delay", delay=0.2) as srv:
        stamped = _stopped_run(srv.port, tmp_path, "1")
        clocked = _stopped_run(srv.port, tmp_path, "0")
    for s in (stamped, clocked):
        assert s["lost"] == 0 and s["received"] > 0
        assert s["latency_ms"]["max"] > 500  # sends due in the stop went late (CO)
    # replies that arrived while the client was stopped: their arrival, 200 ms after the send
    assert stamped["service_ms"]["max"] < 350, stamped["service_ms"]
    # read with the clock: their read, after the stop
    assert clocked["service_ms"]["max"] > 550, clocked["service_ms"]


@pytest.mark.e2e
def test_a_stopped_client_does_not_add_its_stop_to_closed_loop_latency(tmp_path: Path) -> None:
    """A closed loop times a reply by its arrival as well: a reply that came while the
    client was stopped is 200 ms late (the server's delay), not 200 ms plus the rest of the
    stop (how long the client took to read it)."""
    with servers.start("delay", delay=0.2) as srv:
        stamped = _stopped_run(srv.port, tmp_path, "1", CLOSED_LOOP)
        clocked = _stopped_run(srv.port, tmp_path, "0", CLOSED_LOOP)
    for s in (stamped, clocked):
        assert s["lost"] == 0 and s["received"] > 0
        assert s["latency_ms"]["p50"] < 250  # the server's 200 ms, most of the time
    assert stamped["latency_ms"]["max"] < 350, stamped["latency_ms"]
    assert clocked["latency_ms"]["max"] > 550, clocked["latency_ms"]  # read after the stop


def test_the_clock_offset_retries_a_reading_that_lost_its_core(monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """A reading whose two monotonic reads lie far apart (the thread was preempted between
    them: the midpoint may be that far from the realtime read) is tried again; when every
    try is wide, the last tight reading stands. A suite run under load once put a reply's
    arrival before its send this way (a latency under the histogram's floor)."""
    mono = iter([0, 10_000_000,  # wide: preempted for 10 ms
                 20_000_000, 20_000_100,  # tight
                 30_000_000, 40_000_000] + [50_000_000, 60_000_000] * 4)  # wide, then all wide
    real = iter([5_000_000_000, 5_020_000_050, 5_030_000_000] + [5_050_000_000] * 4)
    monkeypatch.setattr(hot, "_last_offset", [])  # (this module's own, put back after)
    monkeypatch.setattr(hot.time, "monotonic_ns", lambda: next(mono))
    monkeypatch.setattr(hot.time, "time_ns", lambda: next(real))
    assert hot.real_offset_ns() == 5_000_000_000  # the tight second try (its midpoint)
    assert hot.real_offset_ns() == 5_000_000_000  # four wide tries: the last tight one
