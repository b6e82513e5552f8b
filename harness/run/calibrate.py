"""Measure this machine as a load generator: the ceiling (echoed msgs/s one worker core
sustains against the built-in echo target) and the latency floor (p50/p99 at a low rate).

Returns figures; printing is the CLI's job. The echo server's own CPU is sampled with psutil
so the report can say when the server, not the client, set the ceiling. The whole machine is
sampled too: when other processes took a material share (bottleneck.SHARED_CORE_PCT) of the
worker's or the server's core during the ceiling run, no ceiling is reported (``busy``).
"""

from __future__ import annotations

import os
from dataclasses import replace

import psutil

from harness.analysis import aggregate, bottleneck
from harness.config import build as cfg
from harness.core.plan import Plan, Target
from harness.run.coordinator import resolve
from harness.run.sweep import Session
from harness.targets import launch
from workloads import load


def _plan(targets: tuple[Target, ...], **run: object) -> Plan:
    flags = {"host": targets[0].label, "workers": 1, "warmup": 1.0, "timeout": 2.0}
    flags.update(run)
    return cfg.build_plan(cfg.settings({}, flags))


def _run(plan: Plan, reserve: int, server_pid: int) -> dict:
    """One step's summary, with the machine's load on the worker's and server's cores."""
    workload = load(plan.workload)(plan.size, plan.seed)
    with Session(plan, workload, resolve(plan.targets), {"server": server_pid},
                 reserve_cores=reserve) as session:
        outcome = session.sweep()
        if outcome.error or not outcome.steps:
            raise RuntimeError(outcome.error or "calibration step did not run")
        r = outcome.steps[0]
        watched = session.watched(r)
    summary = aggregate.step_figures(r.step, r.results, r.receivers, "echo", ["msg"],
                                     plan.pacing.mode == "open").summary
    if watched.summary:
        summary = bottleneck.with_resources(summary, watched.summary, watched.cores)
    return summary.to_json()


def calibrate(duration: float = 5.0, conns: int = 100, inflight: int = 16, size: int = 64,
              floor_conns: int = 10, floor_rate: float = 100.0) -> dict:
    cores = sorted(os.sched_getaffinity(0))
    server_cpu = cores[-1] if len(cores) > 1 else None
    server = launch("echo", framing="len32", cpu=server_cpu)
    try:
        targets = tuple(Target(h, p) for h, p in server.addresses)
        proc = psutil.Process(server.pids[0])
        ceiling_plan = _plan(targets, conns=str(conns), inflight=inflight, size=size,
                             duration=duration)
        t0 = proc.cpu_times()
        ceiling = _run(ceiling_plan, 1 if server_cpu is not None else 0, server.pids[0])
        t1 = proc.cpu_times()
        wall = ceiling_plan.warmup_s + duration
        server_pct = 100.0 * ((t1.user - t0.user) + (t1.system - t0.system)) / wall
        floor_plan = replace(_plan(targets, conns=str(floor_conns), rate=floor_rate, size=size,
                                   duration=min(duration, 3.0)))
        floor = _run(floor_plan, 1 if server_cpu is not None else 0, server.pids[0])
    finally:
        server.stop()
    busy = ceiling.get("shared_core") if ceiling.get("core_shared") else None
    return {
        "ceiling_msgs_s": None if busy else ceiling["throughput_msgs_s"],
        "ceiling_mb_s": None if busy else ceiling["throughput_mb_s"],
        "busy": busy,
        "measured_msgs_s": ceiling["throughput_msgs_s"],
        "ceiling_latency_ms": ceiling["latency_ms"],
        "ceiling_lost": ceiling["lost"],
        "client_cpu_pct": ceiling["client_cpu_pct"],
        "server_cpu_pct": round(server_pct, 1),
        "server_bound": server_pct >= 90.0,
        "floor_p50_ms": floor["latency_ms"]["p50"],
        "floor_p99_ms": floor["latency_ms"]["p99"],
        "floor_rate_msgs_s": floor["throughput_msgs_s"],
        "setup": {"conns": conns, "inflight": inflight, "size": size, "framing": "len32",
                  "duration_s": duration, "floor_conns": floor_conns,
                  "floor_rate_per_conn": floor_rate, "worker_core": cores[0],
                  "server_core": server_cpu},
    }
