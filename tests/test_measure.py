"""Measurement semantics against real servers on loopback: latency, coordinated omission,
exact error, loss and duplicate counts, multiprocess runs.

Runs go through the real coordinator (forked workers, real sockets); the servers are the
fault-injecting ones in tests/servers.py, each in its own process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import resource
import socket
import time
from pathlib import Path

import pytest

from harness.analysis import judge
from harness.core.plan import Plan
from harness.core.result import ERROR_KINDS
from harness.run.shares import build_shares
from harness.targets import launch
from harness.wire.poller import Poller
from harness.worker.worker import Worker, connect_kind
from tests import servers
from tests.busy import skip_if_busy, unless_busy
from tests.support import plan_for, run_plan, run_plans_at_once
from workloads import load


def host(handle: servers.Handle) -> str:
    return f"127.0.0.1:{handle.port}"


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["len32", "newline"])
@pytest.mark.alone
def test_known_delay_gives_p50_within_10_percent(framing: str) -> None:
    delay = 0.020
    with servers.start("delay", framing=framing, delay=delay) as srv:
        (s,) = run_plan(plan_for(host(srv), framing=framing, conns="8", duration=1.5))
    p50 = s["latency_ms"]["p50"]
    assert abs(p50 - delay * 1e3) <= 0.10 * delay * 1e3, s["latency_ms"]
    assert s["lost"] == 0 and s["duplicates"] == 0
    assert s["received"] > 0 and sum(s["errors"].values()) == 0
    # closed loop, 1 in flight: throughput follows from the delay (8 conns / 20 ms = 400/s)
    assert 300 < s["throughput_msgs_s"] <= 400


@pytest.mark.e2e
@pytest.mark.alone
def test_open_loop_shows_stalls_closed_loop_hides_them() -> None:
    """A server that stops for 100 ms every 2 s. Open loop at 100 msgs/s per connection
    measures from the intended send, so ~5% of messages carry part of the stall: p99 is
    large. Closed loop at the same rate (think 10 ms) has one message per connection caught
    in each stall (~0.5%): its p99 stays small. That gap is coordinated omission."""
    with servers.start("stall", period=2.0, pause=0.1) as srv:  # both runs at once (4 s)
        [(open_,), (closed,)] = run_plans_at_once([
            plan_for(host(srv), rate=100.0, duration=4.0, conns="5"),
            plan_for(host(srv), think=0.01, duration=4.0, conns="5")])
    assert open_["latency_ms"]["p99"] > 40.0, open_["latency_ms"]
    assert closed["latency_ms"]["p99"] < 20.0, closed["latency_ms"]
    assert closed["latency_ms"]["max"] > 40.0  # the stall did happen during the closed run
    assert "service_ms" in open_ and "service_ms" not in closed
    assert open_["lost"] == closed["lost"] == 0


@pytest.mark.e2e
def test_drops_are_counted_exactly() -> None:
    # 4 connections x 50 messages, all in flight at once; every 10th frame gets no reply
    with servers.start("drop", every=10) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="200", inflight=50, warmup=0.0,
                                 timeout=0.5))
    assert s["sent"] == 200
    assert s["received"] == 180
    assert s["lost"] == 20
    assert s["errors"]["timeout"] == 20
    assert s["duplicates"] == 0


@pytest.mark.e2e
@pytest.mark.alone
def test_warm_up_timeouts_are_not_the_windows() -> None:
    # every 7th frame of each connection gets no reply, in the warm-up as in the window: a
    # timeout belongs to the window its message was sent in, so the window's timeouts are
    # its lost messages (not also the warm-up's ~1,000 drops)
    def run() -> dict:
        with servers.start("drop", every=7) as srv:
            return {"steps": run_plan(plan_for(host(srv), conns="50", inflight=4, warmup=1.0,
                                               messages="3000", timeout=0.1))}

    doc = unless_busy(run)
    skip_if_busy(doc)
    (s,) = doc["steps"]
    assert s["sent"] == 3000 and 3000 // 7 - 60 <= s["lost"] <= 3000 // 7 + 60, s
    assert s["errors"]["timeout"] == s["lost"], s["errors"]


@pytest.mark.e2e
def test_duplicates_are_counted_exactly() -> None:
    with servers.start("dup", every=10) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="200", inflight=5, warmup=0.0))
    assert s["sent"] == 200
    assert s["duplicates"] == 20
    assert s["received"] == 220
    assert s["lost"] == 0


@pytest.mark.e2e
def test_resets_are_counted_and_the_run_goes_on() -> None:
    with servers.start("reset_after", n=5) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="40", inflight=10, warmup=0.0))
    assert s["errors"]["reset"] == 4
    assert s["received"] == 20
    assert s["lost"] == 20


@pytest.mark.e2e
def test_clean_close_counted_as_closed() -> None:
    with servers.start("close_after", n=5, hold=0.5) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="40", inflight=10, warmup=0.0))
    assert s["errors"]["closed"] == 4
    assert s["received"] == 20 and s["lost"] == 20


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["len32", "len16", "newline"])
def test_garbage_is_a_protocol_error_not_a_crash(framing: str) -> None:
    with servers.start("garbage_after", framing=framing, n=3) as srv:
        (s,) = run_plan(plan_for(host(srv), framing=framing, messages="40", inflight=10,
                                 warmup=0.0, max_frame=4096, timeout=0.5))
    assert s["errors"]["protocol"] == 4, s["errors"]
    # newline: the junk line is a mangled reply (its slot freed), the connection stays open
    # and the server answers none of the 6 messages still in flight; else the stream broke
    assert s["errors"]["timeout"] == (24 if framing == "newline" else 0)
    assert s["received"] == 12
    assert s["lost"] == 28


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["len32", "newline"])
def test_mangled_stamps_are_protocol_errors_never_matches(framing: str) -> None:
    with servers.start("mangle", framing=framing, every=5) as srv:
        (s,) = run_plan(plan_for(host(srv), framing=framing, messages="100", inflight=25,
                                 warmup=0.0, timeout=0.5))
    assert s["errors"]["protocol"] == 20
    assert s["lost"] == 20
    assert s["received"] == 80


@pytest.mark.e2e
def test_chat_room_delivers_every_message_to_every_socket() -> None:
    server = launch("chat", framing="len32")
    try:
        h, p = server.addresses[0]
        (s,) = run_plan(plan_for(f"{h}:{p}", workload="chat", conns="5", messages="100",
                                 inflight=4, warmup=0.0))
    finally:
        server.stop()
    assert s["deliveries_expected"] == 500
    assert s["deliveries"] == 500
    assert s["lost"] == 0 and s["duplicates"] == 0
    assert s["fanout_complete"] == 100


@pytest.mark.e2e
def test_two_workers_with_1000_connections() -> None:
    server = launch("echo", framing="len32")
    try:
        h, p = server.addresses[0]
        (s,) = run_plan(plan_for(f"{h}:{p}", workers=2, conns="1000", duration=1.0,
                                 connect_timeout=10.0))
    finally:
        server.stop()
    assert s["connected"] == 1000
    assert len(s["client_cpu_pct_per_worker"]) == 2
    assert sum(s["errors"].values()) == 0
    assert s["lost"] == 0 and s["received"] > 1000


# ---------------------------------------------------------------------------- counting by kind


def only(errors: dict[str, int], **want: int) -> dict[str, int]:
    """``errors`` with every kind not in ``want`` expected 0 (for one comparison)."""
    return {k: want.get(k, 0) for k in errors}


@pytest.mark.e2e
def test_an_oversized_frame_is_one_protocol_error_per_connection() -> None:
    # the first reply of every connection is a 0x7FFFFFFF prefix plus 64 junk bytes: the
    # junk lines up as a frame with a bad prefix *and* leaves a bad tail (one fault)
    with servers.start("chaos", seed=1, log=os.devnull, reset=0, fin=0, garbage=0,
                       oversize=1.0) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="40", warmup=0.0, max_frame=4096))
    assert s["errors"] == only(s["errors"], protocol=4)
    assert s["sent"] == 4 and s["lost"] == 4


@pytest.mark.e2e
def test_a_mangled_reply_is_one_protocol_error_and_frees_its_slot() -> None:
    # every reply is a junk frame of the right size: 40 protocol errors, no timeouts, and
    # no connection waits --timeout with its four slots taken by junk
    with servers.start("chaos", seed=1, log=os.devnull, reset=0, fin=0, garbage=1.0,
                       oversize=0) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="40", inflight=4, warmup=0.0,
                                 timeout=1.0))
    assert s["errors"] == only(s["errors"], protocol=40)
    assert s["sent"] == 40 and s["lost"] == 40 and s["received"] == 0


@pytest.mark.e2e
@pytest.mark.parametrize("framing", ["newline", "len32"])
def test_junk_before_a_fin_is_a_protocol_error_not_a_close(framing: str) -> None:
    with servers.start("close_after", framing=framing, n=3, junk=b"GGGGGGGGGG") as srv:
        (s,) = run_plan(plan_for(host(srv), framing=framing, messages="40", inflight=1,
                                 warmup=0.0))
    assert s["errors"] == only(s["errors"], protocol=4)
    assert s["received"] == 12


@pytest.mark.e2e
def test_whole_frames_before_a_broken_stream_still_count() -> None:
    # the 3rd reply and a 0x7FFFFFFF prefix arrive in one read (1 in flight, varied sizes:
    # the frame walk): the reply counts, then the connection closes on one protocol error
    with servers.start("garbage_after", n=3) as srv:
        (s,) = run_plan(plan_for(host(srv), size="64-128", messages="40", warmup=0.0,
                                 max_frame=4096))
    assert s["errors"] == only(s["errors"], protocol=4)
    assert (s["sent"], s["received"], s["lost"]) == (12, 12, 0)


@pytest.mark.e2e
def test_a_mangled_line_then_an_oversized_one_are_two_protocol_errors() -> None:
    # one write: a junk line (a mangled reply), then 8 KiB without a newline (oversized)
    with servers.start("garbage_after", framing="newline", n=3, tail=b"G" * 8192) as srv:
        (s,) = run_plan(plan_for(host(srv), framing="newline", messages="40", warmup=0.0,
                                 max_frame=4096))
    assert s["errors"] == only(s["errors"], protocol=8)
    assert s["received"] == 12


@pytest.mark.e2e
def test_a_huge_max_frame_does_not_stop_the_worker_reading() -> None:
    with servers.start("echo", max_frame=1 << 25) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="2", duration=1.0,
                                 max_frame=1 << 24))
    assert s["received"] > 100 and s["lost"] == 0 and sum(s["errors"].values()) == 0


@pytest.mark.e2e
def test_error_rate_counts_each_failed_message_once() -> None:
    with servers.start("mangle", every=10) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="2", messages="200",
                                 inflight=20, warmup=0.0, timeout=0.3))
    # a mangled reply arrived: one protocol error, its slot freed (no timeout as well)
    assert s["lost"] == 20 and s["errors"]["protocol"] == 20 and s["errors"]["timeout"] == 0
    assert judge.error_rate(s) == 0.1  # 20 failed messages of 200, not 60 "errors"


@pytest.mark.e2e
def test_late_replies_count_as_failed_but_warm_up_errors_do_not() -> None:
    with servers.start("delay", delay=0.05) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="1", duration=1.0,
                                 warmup=0.2, timeout=0.02))
    # every reply takes 50 ms > 20 ms: late, or lost when it lands after the 20 ms drain
    assert s["late"] + s["lost"] == s["sent"] > 0 and s["late"] > 0
    assert judge.error_rate(s) == 1.0


@pytest.mark.e2e
def test_broadcast_with_two_workers_waits_for_the_slower_sender() -> None:
    with servers.start("chat_faulty", every=7, victim=1, fault="drop") as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", workload="chat", conns="2",
                                 listen=2, messages="140", warmup=0.0, workers=2, timeout=0.3))
    assert s["deliveries_expected"] == 140 * 4
    assert s["lost"] == 20  # 140 messages to the victim, every 7th dropped


@pytest.mark.e2e
@pytest.mark.alone
def test_a_server_that_holds_the_socket_full_is_not_the_client_being_slow() -> None:
    with servers.start("stall", period=2.0, pause=0.9) as srv:
        (s,) = run_plan(plan_for(f"127.0.0.1:{srv.port}", conns="1", rate=300.0,
                                 size="65536", max_frame=1 << 20, duration=3.0, warmup=0.3))
    assert s["latency_ms"]["max"] > 300  # the stall shows in the latency
    assert not s["client_bound"], (s["behind_schedule"], s["client_cpu_pct"])


CHAOS_CASES = [(1, "len32"), (2, "newline"), (18, "newline")]


def chaos_server(seed: int, framing: str, log: Path) -> contextlib.AbstractContextManager:
    """A server that resets, closes, and sends junk and oversized frames at random
    (seeded), each fault a line in ``log``."""
    log.unlink(missing_ok=True)
    return servers.start("chaos", framing=framing, seed=seed, log=str(log), reset=0.003,
                         fin=0.003, garbage=0.03, oversize=0.003, big=8192)


def chaos_plan(srv: servers.Handle, framing: str) -> Plan:
    """16 connections x 120 messages, 4 in flight; a 5 s reply timeout."""
    return plan_for(host(srv), framing=framing, conns="16", messages="1920", inflight=4,
                    warmup=0.0, max_frame=4096, timeout=5.0)


def chaos_run(tmp_path: Path, seed: int, framing: str) -> tuple[dict, dict[str, int]]:
    """One chaos run: the step's summary and the server's fault log."""
    log = tmp_path / f"chaos-{seed}-{framing}.log"
    with chaos_server(seed, framing, log) as srv:
        (s,) = run_plan(chaos_plan(srv, framing))
    return s, servers.chaos_log(str(log))


@pytest.fixture(scope="module")
def chaos_runs(tmp_path_factory: pytest.TempPathFactory
               ) -> dict[tuple[int, str], tuple[dict, dict[str, int]]]:
    """The chaos runs of CHAOS_CASES, all at once (each waits its 5 s reply timeout out for
    the messages the server mangled, so 3 in a row took 15 s; they share no server and
    count exactly, so the others' load cannot move a figure): the summary and the fault
    log of each (seed, framing)."""
    tmp = tmp_path_factory.mktemp("chaos")
    logs = {case: tmp / f"chaos-{case[0]}-{case[1]}.log" for case in CHAOS_CASES}
    with contextlib.ExitStack() as stack:
        plans = [chaos_plan(stack.enter_context(chaos_server(seed, framing, log)), framing)
                 for (seed, framing), log in logs.items()]
        summaries = run_plans_at_once(plans)
    return {case: (s, servers.chaos_log(str(logs[case])))
            for case, (s,) in zip(CHAOS_CASES, summaries, strict=True)}


def chaos_matches(s: dict, faults: dict[str, int]) -> bool:
    want = only(s["errors"], reset=faults["reset"], closed=faults["fin"],
                protocol=faults["garbage"] + faults["oversize"])
    return s["errors"] == want


@pytest.mark.e2e
@pytest.mark.parametrize(("seed", "framing"), CHAOS_CASES)
def test_chaos_counts_by_kind_equal_the_servers_fault_log(chaos_runs: dict, seed: int,
                                                           framing: str) -> None:
    s, faults = chaos_runs[(seed, framing)]
    assert sum(faults.values()) > 10, faults  # the run did meet faults of every sort
    assert chaos_matches(s, faults), (s["errors"], faults)
    assert s["duplicates"] == 0 and s["received"] + s["lost"] == s["sent"]
    assert s["lost"] >= faults["garbage"]  # a mangled reply leaves its message unanswered


def test_each_connect_errno_has_its_own_kind() -> None:
    kinds = {e: connect_kind(e) for e in (errno.ECONNREFUSED, errno.ETIMEDOUT,
                                          errno.EADDRNOTAVAIL, errno.EMFILE, errno.ENFILE,
                                          errno.ECONNRESET, errno.ENETUNREACH,
                                          errno.EHOSTUNREACH, errno.EACCES)}
    assert kinds == {errno.ECONNREFUSED: "connect_refused",
                     errno.ETIMEDOUT: "connect_timeout",
                     errno.EADDRNOTAVAIL: "connect_no_port", errno.EMFILE: "connect_fd_limit",
                     errno.ENFILE: "connect_fd_limit", errno.ECONNRESET: "connect_reset",
                     errno.ENETUNREACH: "connect_unreachable",
                     errno.EHOSTUNREACH: "connect_unreachable", errno.EACCES: "connect_other"}
    assert set(kinds.values()) <= set(ERROR_KINDS)


def connect_only(plan: Plan, port: int) -> Worker:
    """A worker that runs only the connect phase of the plan's first step."""
    workload = load("echo")(64, 1)
    worker = Worker(0, plan, workload, [(socket.AF_INET, ("127.0.0.1", port))])
    share = build_shares(plan, plan.steps[0], type(workload), 5)[0]
    worker.connect(share, Poller(), time.monotonic_ns() + 10**10)
    return worker


@pytest.mark.e2e
def test_a_source_address_that_is_not_ours_is_connect_no_port() -> None:
    # 198.51.100.7 (TEST-NET-2) is no local address: bind fails with EADDRNOTAVAIL, no packet
    with servers.start("echo") as srv:
        plan = dataclasses.replace(plan_for(host(srv), conns="3"),
                                   source_addrs=("198.51.100.7",))
        worker = connect_only(plan, srv.port)
        worker.close_all()
    assert worker.res.connected == 0
    assert worker.res.errors == only(worker.res.errors, connect_no_port=3)


@pytest.mark.e2e
def test_connections_past_the_fd_limit_are_connect_fd_limit_and_the_rest_connect() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with servers.start("echo") as srv:
        plan = plan_for(host(srv), conns="40")
        room = len(os.listdir("/proc/self/fd")) + 20
        resource.setrlimit(resource.RLIMIT_NOFILE, (room, hard))
        try:
            worker = connect_only(plan, srv.port)
            worker.close_all()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    fd_limit = worker.res.errors["connect_fd_limit"]
    assert 0 < worker.res.connected < 40 and fd_limit == 40 - worker.res.connected
    assert worker.res.errors == only(worker.res.errors, connect_fd_limit=fd_limit)


@pytest.mark.e2e
@pytest.mark.alone  # its schedule: nothing sent 5 ms behind
def test_a_small_open_loop_with_a_budget_sends_and_counts_every_message_once() -> None:
    """3 connections x 200/s: rounds of a few messages, built and paced in plain Python
    (the worker's small open-loop path); the budget is kept exactly, nothing lost."""
    with servers.start("echo") as srv:
        (s,) = run_plan(plan_for(host(srv), rate=200.0, messages="150", conns="3",
                                 warmup=0.0, timeout=2.0))
    assert (s["sent"], s["received"], s["lost"]) == (150, 150, 0)
    assert sum(s["errors"].values()) == 0 and s["behind_schedule"] == 0
    assert 0 < s["latency_ms"]["p50"] < 100
