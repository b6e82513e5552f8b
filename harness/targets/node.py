"""One target node in its own process: ``python -m harness.targets SPEC_JSON``.

The launching parent binds the listening socket and hands it down by fd, with one end
of a socketpair (the *control* socket). The node writes ``ready`` on it once it serves
(and, for chat, once every link to the other nodes is up), or ``error <reason>`` if it
cannot start. The parent never writes on it: EOF means the parent is gone, and the node
stops, as it does on SIGTERM/SIGINT. Exit code 0 after a clean stop.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass

from harness.core.limits import raise_nofile
from harness.targets.serve import make_server, serve_forever


@dataclass(frozen=True, slots=True)
class NodeSpec:
    kind: str
    framing: str
    max_frame: int
    index: int
    peers: tuple[tuple[str, int], ...]  # the other nodes, to link to (chat only)
    listen_fd: int
    control_fd: int
    cpu: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> NodeSpec:
        raw = json.loads(text)
        raw["peers"] = tuple((host, port) for host, port in raw["peers"])
        return cls(**raw)


def _report(control: socket.socket, line: str) -> None:
    control.setblocking(True)
    control.sendall(line.encode() + b"\n")
    control.setblocking(False)


def main(argv: list[str]) -> int:
    spec = NodeSpec.from_json(argv[0])
    control = socket.socket(fileno=spec.control_fd)
    try:
        if spec.cpu is not None:
            os.sched_setaffinity(0, {spec.cpu})
        raise_nofile()
        listener = socket.socket(fileno=spec.listen_fd)
        listener.setblocking(False)
        server = make_server(spec.kind, [listener], spec.framing, spec.max_frame,
                             list(spec.peers), spec.index)
    except (OSError, ValueError) as exc:
        _report(control, f"error {exc}")
        return 1
    serve_forever(server, on_ready=lambda _: _report(control, "ready"), lifeline=control)
    return 0
