"""Built-in target servers: ``echo`` and ``chat`` (one node or a linked cluster).

Each node is one ``selectors`` loop over non-blocking sockets in a single thread.
:func:`run_server` serves in the calling process until SIGINT/SIGTERM (``harness
serve``); :func:`launch` starts nodes in child processes and returns a
:class:`ServerHandle` once they are all listening and linked. Servers print nothing.
"""

from __future__ import annotations

import selectors
import socket
from typing import cast

from harness.core.limits import raise_nofile
from harness.targets.cluster import ServerHandle, launch
from harness.targets.loop import Stopper, listen
from harness.targets.serve import KINDS, OnReady, TargetError, check_args, make_server
from harness.targets.serve import serve_forever as _serve_forever

__all__ = ["KINDS", "ServerHandle", "TargetError", "launch", "run_server"]


def run_server(kind: str, bind: str = "127.0.0.1", port: int = 0, framing: str = "len32",
               nodes: int = 1, max_frame: int = 1 << 20,
               on_ready: OnReady | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then close cleanly and return.

    One node runs in this process; with ``nodes > 1`` every node runs in a child process
    (ports ``port``, ``port + 1``, ...) and this process waits, then stops them.
    ``on_ready`` gets every node's ``(host, port)`` once all are listening and linked.
    """
    check_args(kind, framing, nodes, max_frame)
    if nodes == 1:
        raise_nofile()
        try:
            lsock = listen(bind, port)
        except OSError as exc:
            raise TargetError(f"cannot listen on {bind}:{port}: {exc.strerror}") from exc
        _serve_forever(make_server(kind, [lsock], framing, max_frame), on_ready)
        return
    stopper = Stopper()
    try:
        with stopper.signals(), launch(kind, framing, nodes, bind, port, max_frame) as handle:
            if on_ready is not None and not stopper.stopped:
                on_ready(handle.addresses)
            _wait_for_stop(stopper)
    finally:
        stopper.close()


def _wait_for_stop(stopper: Stopper) -> None:
    with selectors.DefaultSelector() as sel:
        for sock in stopper.socks:
            sel.register(sock, selectors.EVENT_READ)
        while not stopper.stopped:
            for key, _ in sel.select():
                stopper.readable(cast(socket.socket, key.fileobj))
