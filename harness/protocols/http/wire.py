"""HTTP/1.1's part in a worker's step: its requests (one fixed request, or the pools of a
[[requests]] table), responses counted by status code, and a server's close between
requests taken as a reconnect (the worker parks the connection until its next request)."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.result import WorkerResult
from harness.protocols.http.flows import Flows
from harness.protocols.http.http1 import Http
from harness.protocols.wire import Wire
from harness.wire.inbound import Parsed
from harness.wire.protocol import Stamped
from harness.wire.transport import Transport


class HttpWire(Wire):
    alpn = ("http/1.1",)

    def __init__(self, w: Any) -> None:
        super().__init__(w)
        self.request = _http_request(w.plan, w.workload)
        self.after_round = self.statuses

    def protocol(self, key: int) -> Stamped:
        w = self.w
        flows = None
        if any(u.reads for u in w.plan.users):  # users with state (harness.protocols.http.flows)
            accepted = np.zeros(1000, dtype=bool)
            accepted[list(w.plan.accept)] = True
            flows = ([r.uses for r in w.plan.requests], accepted)
        return Http(self.request, w.framing, w.out, w.plan.max_frame, key, len(w.share.node),
                    w.index, users=(w.plan.users, w.share.classes), flows=flows)

    def joined(self, tp: Transport) -> None:
        tp.between = self.between

    def early_request(self) -> bytes | None:
        req = self.w.proto.request
        return req if isinstance(req, bytes) and self.w.proto.flows is None else None

    def few_code(self, n: int) -> int | None:
        """One accepted status for the round's ``n`` responses, none closing, and no flows
        or HEAD requests (whose parse does more): that status."""
        proto = self.w.proto
        codes = proto.round_codes
        if len(codes) != n or proto.flows is not None or proto.heads or proto.closing:
            return None
        code = min(codes[0], 999)
        return code if codes.count(codes[0]) == n and self.w.accepted[code] else None

    def book_few(self, code: int, n: int) -> None:
        self.w.proto.round_codes.clear()
        rec = self.w.rec
        if rec.measuring:
            rec.res.status[code] = rec.res.status.get(code, 0) + n

    def statuses(self, p: Parsed, now: int) -> None:
        """Non-2xx responses counted by code (``http_404``); connections whose server said
        ``Connection: close`` closed and, while sending, reopened (``reconnect``)."""
        w = self.w
        proto, rec = w.proto, w.rec
        codes = np.minimum(proto.codes[p.ok], 999)
        if len(codes) and rec.measuring:
            rec.statuses(codes)
        if proto.flows is not None:
            self._flow_counts(proto.flows, codes, p.st["kind"][p.ok], now)
        else:
            self._count_codes(codes[~w.accepted[codes]], now)
        for i in proto.take_closing():
            if w.tp.socks[i] is not None:
                w.park(i)

    def _count_codes(self, bad: np.ndarray, now: int) -> None:
        rec = self.w.rec
        if len(bad) and rec.measuring:
            for code, count in zip(*np.unique(bad, return_counts=True), strict=True):
                rec.error(f"http_{int(code)}", int(count), now)

    def _flow_counts(self, flows: Flows, codes: np.ndarray, kinds: np.ndarray,
                     now: int) -> None:
        """Users with state: a status outside a request's check's set is its check_<name>
        (else outside --accept, http_NNN), then the round's failed checks and captures."""
        rec = self.w.rec
        bad = ~flows.accept[kinds, codes]
        own = bad & flows.own_status[kinds]
        self._count_codes(codes[bad & ~own], now)
        errors, _ = flows.take()
        if not rec.measuring:
            return
        for k in kinds[own].tolist():
            chk = flows.checks[k]
            assert chk is not None
            errors[chk.kind] = errors.get(chk.kind, 0) + 1
        for kind, count in errors.items():
            rec.error(kind, count, now)

    def finish(self, res: WorkerResult) -> None:
        """The first failing body of each check_/capture_ kind, for run.json."""
        flows = self.w.proto.flows
        if flows is not None:
            res.failed_bodies = dict(flows.bodies)

    def between(self, i: int) -> bool:
        """The server closed or reset HTTP connection ``i`` with no request outstanding
        (its keep-alive timeout): not an error, the connection is reopened when its next
        request is due. With a request outstanding it is one (False: the transport fails
        it, the request is lost)."""
        if self.w.proto.waiting(i):
            return False
        self.w.park(i)
        return True


def _http_request(plan: Any, workload: Any) -> bytes | list[tuple[bytes, ...]]:
    """The bytes of an http workload's one request (to the first target's host and path),
    or the pre-rendered pools of its [[requests]] table, one per kind."""
    if plan.requests:
        return [r.pool for r in plan.requests]
    t = plan.targets[0]
    host = f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"
    return bytes(workload.request(host, t.path or "/"))


WIRE = HttpWire
