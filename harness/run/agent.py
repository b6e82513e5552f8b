"""A client machine's side of ``harness run --cluster``: a Dask worker (``harness agent``)
that runs its share of one step with the ordinary coordinator (its own pinned worker
processes), starting at the wall-clock time every machine agreed on.

Dask and distributed are imported lazily: harness runs without the ``cluster`` extra.
Units: ns (``time.time_ns`` wall clock, ``time.monotonic_ns`` for this machine's phases).
Nothing here prints or exits; the ``serve_*`` functions return when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing.util
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import __version__
from harness.core.limits import FD_RESERVE, raise_nofile
from harness.core.plan import Plan, Step
from harness.core.result import WorkerResult
from harness.core.units import SEC
from harness.run.coordinator import Coordinator, StepRun, resolve
from harness.run.monitor import Monitor
from harness.run.sweep import local_targets

GO_MARGIN_NS = 2_000_000  # the start must be at least this far ahead to be kept
PROGRESS_EVERY_NS = SEC
STOP_POLL_NS = 200_000_000
RESOURCE = "harness"  # the Dask worker resource that marks a harness agent


class ClusterMissing(Exception):
    """The ``cluster`` extra (dask, distributed) is not installed."""


def need_distributed() -> Any:
    """The distributed module, or ClusterMissing saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ClusterMissing("--cluster needs Dask distributed: pip install "
                             "'harness[cluster]'") from None
    return distributed


def is_address(text: str) -> bool:
    """``tcp://HOST:PORT`` or ``tls://HOST:PORT`` (HOST may be ``[v6]``)."""
    scheme, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    return scheme in ("tcp", "tls") and bool(host) and "/" not in rest and port.isdigit() \
        and 0 < int(port) < 65536


def versions() -> dict[str, str]:
    """What must agree between the machines of one run."""
    import dask
    import distributed
    return {"harness": __version__, "dask": dask.__version__,
            "distributed": distributed.__version__}


def info() -> dict[str, Any]:
    """This agent's host, usable cores and versions (run through ``Client.run``)."""
    return {"host": socket.gethostname(), "cores": len(os.sched_getaffinity(0)),
            "versions": versions(), "pid": os.getpid()}


def wall_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class Job:
    """One machine's share of one step. ``plan`` holds only this machine's step."""

    run_id: str
    machine: str
    plan: Plan
    workload: Any
    wait_s: float  # the longest wait for the agreed start time


@dataclass(slots=True)
class Part:
    """What one machine hands back for one step."""

    machine: str
    step: Step
    results: list[WorkerResult] = field(default_factory=list)
    receivers: np.ndarray | None = None
    partial: bool = False
    refused: str | None = None  # why the step was not started here ("late by X ms")
    error: str | None = None  # a worker lost on this machine
    begin_mono: int = 0  # this machine's monotonic ns at the agreed start
    start_wall: int = 0  # the agreed start (wall-clock ns)
    # this machine's resource samples over the measure window, as one machine's Session
    # takes them (roles worker0..: its own workers), times in its monotonic ns
    resources: dict = field(default_factory=dict)  # role -> Monitor.summary
    cores: dict = field(default_factory=dict)  # core -> busy and others' CPU % (means)
    samples: list[dict] = field(default_factory=list)  # Monitor.samples rows
    warnings: list[str] = field(default_factory=list)  # the monitor's


def names(run_id: str, index: int) -> tuple[str, str, str]:
    """The distributed Queue (connected), Variable (start time) and progress Queue names."""
    base = f"harness-{run_id}"
    return f"{base}-{index}-connected", f"{base}-{index}-start", f"{base}-progress"


def stop_name(run_id: str) -> str:
    """The distributed Event the coordinator sets on Ctrl-C: the agents stop their step."""
    return f"harness-{run_id}-stop"


class RemoteStop:
    """What the coordinator reads as its ``interrupts``: ``requested`` once the run's stop
    Event is set (asked at most every STOP_POLL_NS); ``fileno`` never becomes readable."""

    def __init__(self, run_id: str) -> None:
        from distributed import Event
        self.event = Event(stop_name(run_id))
        self._r, self._w = os.pipe()
        self._seen, self._asked = False, 0

    @property
    def requested(self) -> bool:
        now = time.monotonic_ns()
        if not self._seen and now - self._asked >= STOP_POLL_NS:
            self._asked = now
            self._seen = bool(self.event.is_set())
        return self._seen

    def fileno(self) -> int:
        return self._r

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class _DieWithAgent:
    """Registered as an after-fork hook: a pinned worker forked by this agent gets SIGKILL
    when the agent's task thread dies. Otherwise a killed agent's workers live on holding
    its inherited connection to the scheduler, which then never sees the agent go."""

    def __call__(self, _: object) -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


PR_SET_PDEATHSIG = 1
_DIE_WITH_AGENT = _DieWithAgent()


def run_share(job: Job) -> Part:
    """The Dask task: this machine's share of the step, on its own pinned workers."""
    from distributed import Queue, Variable
    step = job.plan.steps[0]
    part = Part(job.machine, step)
    multiprocessing.util.register_after_fork(_DIE_WITH_AGENT, _DIE_WITH_AGENT)
    connected_q, start_v, progress_q = (names(job.run_id, step.index))
    raise_nofile()

    def start_at(connected: int) -> int | None:
        clock = time.monotonic_ns() - time.time_ns()  # our monotonic ns at wall-clock 0
        Queue(connected_q).put((job.machine, connected, clock))
        agreed = Variable(start_v).get(timeout=job.wait_s)
        now_mono = time.monotonic_ns()
        start_wall, clocks = agreed if isinstance(agreed, (tuple, list)) else (agreed, ())
        if start_wall is None or start_wall <= 0:  # the run is called off
            part.refused = "called off by the coordinator"
            return None
        begin = start_wall + clock  # exactly as the other machines read our start
        part.begin_mono, part.start_wall = begin, start_wall
        if begin - now_mono < GO_MARGIN_NS:
            late = (now_mono + GO_MARGIN_NS - begin) / 1e6
            part.refused = f"late by {late:.1f} ms"
            return None
        # another machine's stamp times, read in our clock (its wall-clock 0 is ours)
        coord.shifts = tuple((int(first), clock - int(theirs)) for first, theirs in clocks)
        return begin

    stop = RemoteStop(job.run_id)
    coord = Coordinator(job.plan, job.workload, resolve(job.plan.targets),
                        progress_to(progress_q, job.machine, step.index),
                        interrupts=stop)  # type: ignore[arg-type]  # duck-typed Interrupts
    coord.start_at = start_at
    try:
        run = run_watched(coord, step, part, job.plan)
    finally:
        stop.close()
    if coord.lost:
        part.error = "; ".join(coord.lost[i] for i in sorted(coord.lost))
    if run is not None:
        part.results, part.receivers, part.partial = run.results, run.receivers, run.partial
    part.partial = part.partial or part.refused is not None or part.error is not None
    return part


def progress_to(queue: str, machine: str, index: int) -> Callable[[Step, list[dict]], None]:
    """The coordinator's progress hook on an agent: its workers' rows onto the Dask queue
    ``queue``, at most once per PROGRESS_EVERY_NS."""
    from distributed import Queue
    last = [0]

    def progress(_: Step, rows: list[dict]) -> None:
        now = time.monotonic_ns()
        if now - last[0] >= PROGRESS_EVERY_NS:
            last[0] = now
            Queue(queue).put((machine, index, rows))
    return progress


def run_watched(coord: Coordinator, step: Step, part: Part, plan: Plan) -> StepRun | None:
    """The step on this machine's workers, its resources sampled into ``part``; a stop the
    coordinator asked for keeps what the workers measured."""
    with coord:
        monitor = watch(coord, plan)
        try:
            run = coord.run_step(step)
        except KeyboardInterrupt:  # the coordinator asked every agent to stop
            run = coord._collect_after_stop(step)
        finally:
            monitor.stop()  # before the workers exit, so their exit is no "death"
        sampled(part, monitor, plan.warmup_s)
    return run


def watch(coord: Coordinator, plan: Plan) -> Monitor:
    """This machine's monitor of its workers (roles worker0, worker1, ...) and cores, as
    :class:`harness.run.sweep.Session` has on one machine; a loopback target's processes here
    count as known, not as other load."""
    roles = {f"worker{i}": p.pid for i, p in enumerate(coord.procs) if p.pid is not None}
    monitor = Monitor(roles, interval=plan.monitor_interval_s, known=local_targets(plan))
    monitor.start()
    return monitor


def sampled(part: Part, monitor: Monitor, warmup_s: float) -> None:
    """The samples of the step's measure window (from the agreed start plus the warm-up to
    now) into ``part``; none when the step was not started here."""
    part.warnings = list(monitor.warnings)
    if not part.begin_mono:
        return
    since, until = part.begin_mono + int(warmup_s * SEC), time.monotonic_ns()
    part.resources = monitor.summary(since_ns=since, until_ns=until)
    part.cores = monitor.cores(since, until)
    part.samples = monitor.samples(since_ns=since, until_ns=until)


def workers_for(cores: int, conns: int, limit: int | None = None) -> int:
    """Worker processes on this machine: one per usable core, more when one worker's share
    of ``conns`` would pass the open-files limit."""
    room = max((limit or raise_nofile()) - FD_RESERVE, 1)
    return max(cores, -(-conns // room), 1)


# ---------------------------------------------------------------------------- servers


def serve_scheduler(host: str, port: int, on_ready: Any = None) -> None:
    """A Dask scheduler on ``host:port`` only (no dashboard), with allowed-failures 0: a
    task whose machine dies fails at once, naming it. Returns on SIGINT or SIGTERM."""
    import dask
    from distributed import Scheduler
    dask.config.set({"distributed.scheduler.http.routes": []})  # its HTTP port serves nothing

    async def main() -> None:
        async with Scheduler(host=host, port=port, dashboard=False, allowed_failures=0,
                             dashboard_address=f"{_bracket(host)}:0") as s:
            if on_ready is not None:
                on_ready(s.address)
            await _until_signal(s.finished())

    asyncio.run(main())


def serve_agent(address: str, name: str | None, host: str | None, on_ready: Any = None
                ) -> None:
    """A Dask worker in this process (no nanny: it forks the pinned workers itself), one
    thread, named after the host, holding the ``harness`` resource, listening on ``host``
    (by default the local address that routes to the scheduler). Returns on SIGINT or
    SIGTERM, or when the scheduler goes away."""
    import dask
    from distributed import Worker
    from distributed.utils import get_ip
    dask.config.set({"distributed.worker.http.routes": []})
    if host is None:  # the local address that routes to the scheduler, not every interface
        host = get_ip(address.partition("://")[2].rpartition(":")[0].strip("[]"))

    async def main() -> None:
        async with Worker(address, nthreads=1, name=name or socket.gethostname(),
                          resources={RESOURCE: 1}, host=host, dashboard=False,
                          dashboard_address=f"{_bracket(host)}:0",
                          death_timeout=30) as w:
            if on_ready is not None:
                on_ready(w.address)
            await _until_signal(w.finished())

    asyncio.run(main())


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _until_signal(finished: Any) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    done = asyncio.ensure_future(finished)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait([done, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
