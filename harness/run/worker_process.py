"""A worker process: pinned to its core, it runs the steps the coordinator hands it over
its pipe (the messages are harness.run.coordinator's), ignoring SIGINT and SIGTERM, and
dies with the coordinator. Only its result, its progress or its traceback go back."""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

from harness.core.interrupts import die_with_parent, ignore_in_worker
from harness.core.plan import Plan
from harness.wire.poller import Poller
from harness.worker.worker import Worker
from workloads import Workload


def worker_main(index: int, cpu: int | None, pipe: Connection, plan: Plan,
                workload: Workload, addrs: list[tuple], parent: int) -> None:
    if not die_with_parent(parent):  # a coordinator killed outright takes its workers along
        return
    ignore_in_worker()  # the coordinator decides when to stop
    if cpu is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})
    try:
        worker = Worker(index, plan, workload, addrs)
        sel = Poller()
        while True:
            msg = pipe.recv()
            if msg[0] == "exit":
                break
            if msg[0] != "step":
                continue
            _, share, deadline = msg
            worker.connect(share, sel, deadline, lambda: _stop_requested(pipe))
            pipe.send(("connected", worker.res.connected))
            msg = pipe.recv()
            if msg[0] != "go":
                worker.close_all()
                pipe.send(("result", worker.res))
                continue
            pipe.send(("result", worker.run(msg[1], _poller(pipe))))
    except (EOFError, BrokenPipeError):
        pass
    except Exception:
        with contextlib.suppress(OSError):
            pipe.send(("error", traceback.format_exc()))


def _stop_requested(pipe: Connection) -> bool:
    """Did the coordinator ask us to stop? (Only "stop" can arrive while connecting.)"""
    stop = False
    while pipe.poll():
        stop = pipe.recv()[0] == "stop" or stop
    return stop


def _poller(pipe: Connection) -> Callable[[dict], bool]:
    def poll(progress: dict) -> bool:
        pipe.send(("progress", progress))
        stop = False
        while pipe.poll():
            if pipe.recv()[0] == "stop":
                stop = True
        return not stop
    return poll
