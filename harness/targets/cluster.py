"""Start target nodes in child processes and stop them again.

The parent binds every node's listening socket first, on consecutive ports (``port``,
``port + 1``, ...; with ``port=0`` it finds a free run of ``nodes`` ports by binding,
so there is no race), then starts each node as ``python -m harness.targets`` with
its socket passed down by fd. Because every socket listens before any node starts, the
nodes can link to each other at once; :func:`launch` returns when every node says it is
ready (chat: every link up). Fresh interpreters (not fork) keep the children clear of
whatever the caller does later, forking workers included. Each node runs in a session
(and process group) of its own, so a terminal's Ctrl-C or ``timeout``'s group signal
does not reach it: it stops when :meth:`ServerHandle.stop` says so, after the clients
have drained, or by itself when its parent dies (EOF on its control socket). Times in
seconds.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

from harness.targets.loop import address_of, connect_host, listen
from harness.targets.node import NodeSpec
from harness.targets.serve import TargetError, check_args

READY_TIMEOUT_S = 10.0
_PORT_TRIES = 64
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding harness/


def bind_consecutive(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on consecutive ports from ``port`` (0: any free run)."""
    if port:
        try:
            return _bind_run(host, port, count)
        except OSError as exc:
            ports = f"{port}" if count == 1 else f"{port}-{port + count - 1}"
            raise TargetError(f"cannot listen on {host}:{ports}: {exc.strerror or exc}") from exc
    for _ in range(_PORT_TRIES):
        try:
            first = listen(host, 0)
        except OSError as exc:
            raise TargetError(f"cannot listen on {host}: {exc.strerror or exc}") from exc
        base = address_of(first)[1]
        if count == 1:
            return [first]
        if base + count - 1 <= 65535:
            with contextlib.suppress(OSError):
                return [first, *_bind_run(host, base + 1, count - 1)]
        first.close()
    raise TargetError(f"found no {count} free consecutive ports on {host}")


def _bind_run(host: str, port: int, count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        for p in range(port, port + count):
            socks.append(listen(host, p))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


class ServerHandle:
    """Running target nodes: ``addresses`` and ``pids`` per node, in node order."""

    def __init__(self, addresses: list[tuple[str, int]], procs: list[subprocess.Popen],
                 controls: list[socket.socket]) -> None:
        self.addresses = addresses
        self.pids = [p.pid for p in procs]
        self._procs = procs
        self._controls = controls
        self._stopped = False

    @property
    def returncodes(self) -> list[int | None]:
        """Exit status per node (None while running; -9 for a killed node)."""
        return [p.poll() for p in self._procs]

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i`` and reap it (for fault tests)."""
        proc = self._procs[i]
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> list[int | None]:
        """SIGTERM every node, wait up to ``timeout``, SIGKILL what is left. Idempotent."""
        if not self._stopped:
            self._stopped = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in self._procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for control in self._controls:
                control.close()
        return self.returncodes

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(kind: str, framing: str = "len32", nodes: int = 1, bind: str = "127.0.0.1",
           port: int = 0, max_frame: int = 1 << 20, cpu: int | None = None,
           ready_timeout: float = READY_TIMEOUT_S) -> ServerHandle:
    """Start ``nodes`` target processes (each pinned to ``cpu`` if given) and wait until
    every one is ready. Raises ValueError for bad settings, TargetError if they fail."""
    check_args(kind, framing, nodes, max_frame)
    listeners = bind_consecutive(bind, port, nodes)
    addresses = [address_of(s) for s in listeners]
    link_to = [(connect_host(host), p) for host, p in addresses]
    procs: list[subprocess.Popen] = []
    controls: list[socket.socket] = []
    try:
        for i, lsock in enumerate(listeners):
            peers = tuple(a for j, a in enumerate(link_to) if j != i) \
                if kind.endswith("chat") else ()
            mine, theirs = socket.socketpair()
            controls.append(mine)
            with theirs:
                spec = NodeSpec(kind, framing, max_frame, i, peers, lsock.fileno(),
                                theirs.fileno(), cpu)
                procs.append(_spawn(spec))
        _wait_ready(procs, controls, ready_timeout)
        handle = ServerHandle(addresses, procs, controls)
    except BaseException:
        ServerHandle(addresses, procs, controls).stop(timeout=1.0)
        raise
    finally:
        for lsock in listeners:
            lsock.close()
    return handle


def _spawn(spec: NodeSpec) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "harness.targets", spec.to_json()],
        pass_fds=(spec.listen_fd, spec.control_fd), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, env=env, start_new_session=True)


def _wait_ready(procs: list[subprocess.Popen], controls: list[socket.socket],
                timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(enumerate(controls))
    with selectors.DefaultSelector() as sel:
        for i, control in waiting.items():
            sel.register(control, selectors.EVENT_READ, i)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TargetError(f"target node(s) {sorted(waiting)} not ready within "
                                  f"{timeout:g} s")
            for key, _ in sel.select(left):
                i = key.data
                line = _read_line(cast(socket.socket, key.fileobj), deadline)
                if line != "ready":
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        procs[i].wait(timeout=1.0)
                    reason = line.removeprefix("error ") or (
                        f"exited with code {procs[i].returncode}")
                    raise TargetError(f"target node {i} failed to start: {reason}")
                sel.unregister(key.fileobj)
                del waiting[i]


def _read_line(control: socket.socket, deadline: float) -> str:
    """One status line from a node ('' on EOF); the node writes it in one go."""
    data = b""
    control.settimeout(max(0.01, deadline - time.monotonic()))
    with contextlib.suppress(OSError):
        while not data.endswith(b"\n"):
            part = control.recv(4096)
            if not part:
                break
            data += part
    return data.decode(errors="replace").strip()
