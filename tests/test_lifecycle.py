"""harness.run.lifecycle: a run's target started, probed and stopped, with typed errors
(no click, no exits) that the CLI maps to exit 3. Real sockets and processes on loopback."""

from __future__ import annotations

import socket
import sys

import pytest

from harness.core.plan import Plan, Step, Target
from harness.run.coordinator import Unreachable
from harness.run.lifecycle import Targets
from workloads import load

pytestmark = pytest.mark.e2e  # real servers and processes


def plan_for(*targets: Target, **kw: object) -> Plan:
    return Plan(targets=targets, steps=(Step(0, 1, 1.0, None),), connect_timeout_s=1.0,
                **kw)  # type: ignore[arg-type]


def echo() -> object:
    return load("echo")(64, 1)


def test_a_refused_target_raises_unreachable_naming_it(closed_port: int) -> None:
    port = closed_port
    with pytest.raises(Unreachable, match=f"target 127.0.0.1:{port} cannot be reached: "
                                          "Connection refused"), \
            Targets(plan_for(Target("127.0.0.1", port)), echo()):
        pass


def test_a_name_that_does_not_resolve_raises_unreachable() -> None:
    with pytest.raises(Unreachable, match="the name 'no-such-host.invalid' does not resolve"), \
            Targets(plan_for(Target("no-such-host.invalid", 5000)), echo()):
        pass


def test_a_server_cmd_that_exits_at_once_raises_unreachable(closed_port: int) -> None:
    plan = plan_for(Target("127.0.0.1", closed_port), server_cmd=f"{sys.executable} -c "
                    "'raise SystemExit(4)'")
    with pytest.raises(Unreachable, match=r"--server-cmd exited at once \(code 4\)"), \
            Targets(plan, echo()):
        pass


def test_a_server_cmd_that_exits_after_the_grace_is_named_not_the_refused_connect(
        closed_port: int) -> None:
    # as on a loaded machine, where the command starts slowly: it exits (code 5) while the
    # probes wait for it to listen, and its exit is the reason given
    plan = plan_for(Target("127.0.0.1", closed_port), server_cmd=f"{sys.executable} -c "
                    "'import time; time.sleep(1.0); raise SystemExit(5)'")
    with pytest.raises(Unreachable, match=r"--server-cmd exited at once \(code 5\)"), \
            Targets(plan, echo()):
        pass


def test_the_embedded_server_is_started_watched_and_stopped() -> None:
    plan = plan_for(Target("127.0.0.1", 0), embedded="echo")
    with Targets(plan, echo()) as targets:
        (target,) = targets.plan.targets
        assert target.port != 0 and targets.watch["server"] > 0
        with socket.create_connection((target.host, target.port), timeout=2):
            pass
    with pytest.raises(OSError):
        socket.create_connection((target.host, target.port), timeout=2).close()
