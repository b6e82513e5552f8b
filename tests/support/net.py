"""Loopback ports and the server processes the tests start: a free port, waiting until a
process listens, stopping it (by its pid, SIGTERM then SIGKILL)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator


def free_port() -> int:
    """A loopback port nothing listens on now (for servers that cannot take port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def tcp_pairs(n: int) -> Iterator[tuple[list[socket.socket], list[socket.socket]]]:
    """``n`` connected TCP pairs on loopback: (ours, non-blocking; the peers), all closed
    afterwards."""
    lst = socket.create_server(("127.0.0.1", 0))
    ours, peers = [], []
    try:
        for _ in range(n):
            c = socket.create_connection(lst.getsockname())
            p, _ = lst.accept()
            c.setblocking(False)
            ours.append(c)
            peers.append(p)
        yield ours, peers
    finally:
        for s in ours + peers + [lst]:
            s.close()


def stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stop a server process a test started: SIGTERM, then SIGKILL after ``grace_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def listening(port: int, timeout_s: float = 0.5) -> bool:
    """Whether a TCP connect to 127.0.0.1:``port`` succeeds now."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                timeout=timeout_s):
        return True
    return False


def wait_listening(proc: subprocess.Popen, *ports: int, name: str = "the server",
                   within_s: float = 10.0) -> None:
    """Return once ``proc`` listens on every one of ``ports`` (127.0.0.1). RuntimeError if
    it exits first, or (after stopping it) if ``within_s`` passes first."""
    deadline = time.monotonic() + within_s
    for port in ports:
        while not listening(port):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}")
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"{name} did not listen on {port} within {within_s:g} s")
            time.sleep(0.05)


def wait_connections(port: int, n: int, within_s: float = 30.0,
                     established: bool = True) -> None:
    """Return once ``n`` client connections to 127.0.0.1:``port`` exist on this machine
    (established ones only, unless ``established`` is False: then any state, a connect
    still in SYN-SENT too). AssertionError if ``within_s`` passes first."""
    import psutil
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = sum(1 for c in psutil.net_connections(kind="tcp")
                    if c.raddr and c.raddr.port == port
                    and (not established or c.status == psutil.CONN_ESTABLISHED))
        if found >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} connections to port {port} did not appear in {within_s:g} s")


def wait_process_connections(pid: int, port: int, n: int, within_s: float = 30.0) -> None:
    """Return once process ``pid`` and its children hold exactly ``n`` established
    connections to 127.0.0.1:``port`` (a step of ``n`` connections is up). Only their own
    sockets are read, so other tests' thousands of connections do not slow the look.
    AssertionError if ``within_s`` passes first."""
    import psutil
    root = psutil.Process(pid)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = 0
        with contextlib.suppress(psutil.Error):
            for p in (root, *root.children(recursive=True)):
                conns = getattr(p, "net_connections", None) or p.connections
                found += sum(1 for c in conns(kind="tcp") if c.raddr and c.raddr.port == port
                             and c.status == psutil.CONN_ESTABLISHED)
        if found == n:
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not hold {n} connections to port {port} "
                         f"within {within_s:g} s")
