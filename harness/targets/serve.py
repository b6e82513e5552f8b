"""Build a target server from its settings and serve it until SIGINT/SIGTERM."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.targets.chat import ChatServer
from harness.targets.echo import EchoServer
from harness.targets.loop import Stopper
from harness.wire import framing as framing_mod

if TYPE_CHECKING:  # imported by make_server: they need numpy, the echo and chat nodes do not
    from harness.targets.wsecho import WsEchoServer

KINDS = ("echo", "chat", "ws-echo", "ws-chat")  # ws-: the same over WebSocket

OnReady = Callable[[list[tuple[str, int]]], None]


class TargetError(RuntimeError):
    """A target could not start: a port in use, a node that died or never got ready."""


def check_args(kind: str, framing: str, nodes: int, max_frame: int) -> None:
    """Raise ValueError naming the first bad setting."""
    if kind not in KINDS:
        raise ValueError(f"unknown target kind {kind!r} (choose from {', '.join(KINDS)})")
    framing_mod.get(framing)
    if nodes < 1:
        raise ValueError(f"nodes must be at least 1, not {nodes}")
    if max_frame < 1:
        raise ValueError(f"max_frame must be at least 1 byte, not {max_frame}")


def make_server(kind: str, listeners: list[socket.socket], framing: str = "len32",
                max_frame: int = 1 << 20, peers: list[tuple[str, int]] | tuple = (),
                index: int = 0) -> EchoServer | ChatServer | WsEchoServer:
    """A server over already listening sockets; ``peers`` are the other chat nodes."""
    if kind == "echo":
        return EchoServer(listeners)
    if kind == "ws-echo":
        from harness.targets.wsecho import WsEchoServer
        return WsEchoServer(listeners, max_frame)
    if kind == "ws-chat":
        from harness.targets.wschat import WsChatServer
        return WsChatServer(listeners, framing_mod.get(framing), max_frame, peers, index)
    return ChatServer(listeners, framing_mod.get(framing), max_frame, peers, index)


def serve_forever(server: EchoServer | ChatServer | WsEchoServer, on_ready: OnReady | None = None,
                  lifeline: socket.socket | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or EOF on ``lifeline``), then close everything."""
    stopper = Stopper()
    if lifeline is not None:
        stopper.watch(lifeline)
    try:
        with stopper.signals():
            server.serve(stopper, on_ready)
    finally:
        stopper.close()
