"""The target of one run, from start to stop: the embedded server or ``--server-cmd``
started (and stopped afterwards), the target names resolved and their reachability probed,
and the server processes to watch.

Errors are typed: a target that cannot be reached at all (a name that does not resolve, a
refused connect, a ``--server-cmd`` that exits at once) raises
:class:`harness.run.coordinator.Unreachable`, which the CLI maps to exit 3. Nothing here prints
or exits. Times in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import replace
from typing import Any

from harness.core.plan import Plan, Target
from harness.run.coordinator import Unreachable, probe, resolve
from harness.targets.cluster import ServerHandle, launch

EMBEDDED_CHAT_NODES = 3  # --workload chat without --host runs against a linked 3-node cluster
CMD_GRACE_S = 0.5  # a --server-cmd gets this long to listen before the first probe
CMD_PROBES = 20  # then this many probes, CMD_RETRY_S apart
CMD_RETRY_S = 0.25
STOP_WAIT_S = 5.0  # a --server-cmd's process group gets this long after SIGTERM


class Targets:
    """A context manager: ``plan`` (with the embedded server's addresses once started),
    ``addrs`` (family, sockaddr per target), ``watch`` (role -> pid of server processes)
    and ``reserve`` (cores kept for the embedded server)."""

    def __init__(self, plan: Plan, workload: Any) -> None:
        self.plan = plan
        self.workload = workload
        self.server: ServerHandle | None = None
        self.proc: subprocess.Popen | None = None
        self.watch: dict[str, int] = {}
        self.addrs: list[tuple] = []
        cores = len(os.sched_getaffinity(0))
        self.reserve = 1 if plan.embedded and cores > 1 else 0

    def __enter__(self) -> Targets:
        plan = self.plan
        try:
            if plan.server_cmd:
                self._start_cmd(plan.server_cmd)
            if plan.embedded:
                self.server, self.plan = start_embedded(plan, self.workload)
                self.watch.update({("server" if i == 0 else f"server{i}"): pid
                                   for i, pid in enumerate(self.server.pids)})
            if plan.server_pid:
                self.watch["server"] = plan.server_pid
            self._check()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_cmd(self, cmd: str) -> None:
        self.proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.watch["server"] = self.proc.pid
        time.sleep(CMD_GRACE_S)  # give it a moment to listen; the probe below retries briefly
        self._cmd_alive()

    def _cmd_alive(self) -> None:
        """Unreachable when the --server-cmd process has exited (on a loaded machine it may
        do so only after the grace, while the probe waits for it to listen)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise Unreachable(f"--server-cmd exited at once (code {self.proc.returncode})")

    def _check(self) -> None:
        plan = self.plan
        for t in plan.targets:  # a name that does not resolve is an unreachable target
            try:
                self.addrs += resolve((t,))
            except (OSError, UnicodeError) as exc:
                raise Unreachable(f"cannot reach {t.label}: the name {t.host!r} does not "
                                  f"resolve ({getattr(exc, 'strerror', None) or exc})"
                                  ) from None
        tries = CMD_PROBES if self.proc is not None else 1
        for attempt in range(tries):
            try:
                probe(plan.targets, self.addrs, plan.connect_timeout_s)
                probe_ws(plan, self.addrs)
                return
            except Unreachable:
                self._cmd_alive()  # (its exit is the reason, not the refused connect)
                if attempt == tries - 1:
                    raise
                time.sleep(CMD_RETRY_S)

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_WAIT_S)


def probe_ws(plan: Plan, addrs: list[tuple]) -> None:
    """ws:// and wss:// targets: one WebSocket handshake each (after a TLS handshake for
    wss://); a refusal (its status line), a broken handshake or a failed TLS handshake
    (its reason and what to do) is an unreachable target."""
    if not plan.targets or plan.targets[0].scheme not in ("ws", "wss"):
        return
    from harness.analysis.diagnosis import tls_hint
    from harness.protocols.tls import client_context
    from harness.protocols.ws import handshake as ws
    from harness.protocols.ws.settings import of_plan
    wsp = of_plan(plan)
    opts = ws.ws_options(plan.targets, wsp.subprotocol, wsp.headers)
    context = client_context(plan.tls) if plan.tls is not None else None
    for t, uri, (family, addr) in zip(plan.targets, opts.uris, addrs, strict=True):
        try:
            why = ws.probe(family, addr, uri, opts, plan.connect_timeout_s, context, t.host)
        except ws.TlsFailed as exc:
            hint = tls_hint(exc.kind, exc.why, bool(plan.tls and plan.tls.ca_pem))
            why = f"TLS failed: {exc.why} ({exc.kind}); {hint}"
        if why:
            raise Unreachable(f"target {t.label}: {why}")


def start_embedded(plan: Plan, workload: Any) -> tuple[ServerHandle, Plan]:
    """The built-in server of ``plan.embedded`` on the last usable core (when there are
    two or more), and the plan pointed at it."""
    if plan.embedded is None:
        raise ValueError("the plan has no embedded server")
    cores = sorted(os.sched_getaffinity(0))
    cpu = cores[-1] if len(cores) > 1 else None
    nodes = EMBEDDED_CHAT_NODES if plan.embedded.endswith("chat") else 1
    server = launch(plan.embedded, framing=workload.framing or plan.framing, nodes=nodes,
                    max_frame=plan.max_frame, cpu=cpu)
    ws = plan.embedded.startswith("ws-")
    targets = tuple(Target(h, p, "ws", "/") if ws else Target(h, p) for h, p in server.addresses)
    return server, replace(plan, targets=targets)
