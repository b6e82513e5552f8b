"""Measurement semantics against real servers on loopback: latency, coordinated omission,
exact error, loss and duplicate counts, multiprocess runs.

Runs go through the real coordinator (forked workers, real sockets); the servers are the
fault-injecting ones in tests/servers.py, each in its own process.
"""

from __future__ import annotations

import pytest

from harness import config as cfg
from harness.coordinator import Coordinator, resolve
from harness.plan import Plan
from harness.sweep import figures
from harness.targets import launch
from tests import servers
from workloads import load


def plan_for(host: str, **run: object) -> Plan:
    flags = {"host": host, "warmup": 0.2, "duration": 1.0, "workers": 1, "conns": "4",
             "timeout": 1.0}
    flags.update(run)
    if "messages" in run:
        flags.pop("duration")  # the two exclude each other
    return cfg.build_plan(cfg.settings({}, flags))


def run_plan(plan: Plan) -> list[dict]:
    workload = load(plan.workload)(plan.size_spec or plan.size, plan.seed)
    with Coordinator(plan, workload, resolve(plan.targets)) as coord:
        outcome = coord.run()
    assert not outcome.error, outcome.error
    return [figures(plan, workload, r).summary for r in outcome.steps]


def host(handle: servers.Handle) -> str:
    return f"127.0.0.1:{handle.port}"


@pytest.mark.parametrize("framing", ["len32", "newline"])
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


def test_open_loop_shows_stalls_closed_loop_hides_them() -> None:
    """A server that stops for 100 ms every 2 s. Open loop at 100 msgs/s per connection
    measures from the intended send, so ~5% of messages carry part of the stall: p99 is
    large. Closed loop at the same rate (think 10 ms) has one message per connection caught
    in each stall (~0.5%): its p99 stays small. That gap is coordinated omission."""
    with servers.start("stall", period=2.0, pause=0.1) as srv:
        (open_,) = run_plan(plan_for(host(srv), rate=100.0, duration=4.0, conns="5"))
        (closed,) = run_plan(plan_for(host(srv), think=0.01, duration=4.0, conns="5"))
    assert open_["latency_ms"]["p99"] > 40.0, open_["latency_ms"]
    assert closed["latency_ms"]["p99"] < 20.0, closed["latency_ms"]
    assert closed["latency_ms"]["max"] > 40.0  # the stall did happen during the closed run
    assert "service_ms" in open_ and "service_ms" not in closed
    assert open_["lost"] == closed["lost"] == 0


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


def test_duplicates_are_counted_exactly() -> None:
    with servers.start("dup", every=10) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="200", inflight=5, warmup=0.0))
    assert s["sent"] == 200
    assert s["duplicates"] == 20
    assert s["received"] == 220
    assert s["lost"] == 0


def test_resets_are_counted_and_the_run_goes_on() -> None:
    with servers.start("reset_after", n=5) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="40", inflight=10, warmup=0.0))
    assert s["errors"]["reset"] == 4
    assert s["received"] == 20
    assert s["lost"] == 20


def test_clean_close_counted_as_closed() -> None:
    with servers.start("close_after", n=5, hold=0.5) as srv:
        (s,) = run_plan(plan_for(host(srv), messages="40", inflight=10, warmup=0.0))
    assert s["errors"]["closed"] == 4
    assert s["received"] == 20 and s["lost"] == 20


@pytest.mark.parametrize("framing", ["len32", "len16", "newline"])
def test_garbage_is_a_protocol_error_not_a_crash(framing: str) -> None:
    with servers.start("garbage_after", framing=framing, n=3) as srv:
        (s,) = run_plan(plan_for(host(srv), framing=framing, messages="40", inflight=10,
                                 warmup=0.0, max_frame=4096, timeout=0.5))
    assert s["errors"]["protocol"] == 4, s["errors"]
    assert s["received"] == 12
    assert s["lost"] == 28


@pytest.mark.parametrize("framing", ["len32", "newline"])
def test_mangled_stamps_are_protocol_errors_never_matches(framing: str) -> None:
    with servers.start("mangle", framing=framing, every=5) as srv:
        (s,) = run_plan(plan_for(host(srv), framing=framing, messages="100", inflight=25,
                                 warmup=0.0, timeout=0.5))
    assert s["errors"]["protocol"] == 20
    assert s["lost"] == 20
    assert s["received"] == 80


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
