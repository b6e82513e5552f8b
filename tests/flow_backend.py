"""A backend with logins, as a plain ASGI app (no framework) under uvicorn, for users with
state (tests/test_flows.py, workloads/plans/seed.toml, tests/bench/locust_flow.py):

* ``POST /login``: a new token per login (``{"token": "t7", "ok": true}``) and a session
  cookie (``Set-Cookie: sid=7``);
* every other route needs ``Authorization: Bearer TOKEN`` of a login (else 401, counted);
  a request whose ``sid`` cookie is not its token's session is counted too;
* ``GET /auth/status``, ``GET /dashboard``: ``{"ok": true, ...}``;
* ``POST /reports``: 201, ``{"id": N}`` and ``Location: /reports/N``; ``GET /reports/N``:
  the report (404 for an id never created, or another token's);
* ``GET /search?q=...``: ``{"ok": true, ...}``, but ``{"ok": false}`` on every 10th
  search (by design: a check on ``$.ok`` fails on exactly 1 in 10);
* ``POST /logout``: ends the token's session (later use: 401);
* ``GET /stats``: the counters, not counted themselves.

Run: ``python -m uvicorn tests.flow_backend:app --port 8000 --no-access-log``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]

tokens: dict[str, int] = {}  # live token -> its session number
owners: dict[int, str] = {}  # report id -> the token that created it
counts: Counter[str] = Counter()  # requests by route, and the faults seen
per_token: Counter[str] = Counter()  # authenticated requests per token
fetched: Counter[int] = Counter()  # report ids fetched back
state = {"logins": 0, "reports": 0, "searches": 0}


async def app(scope: dict, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            kind = msg["type"].rpartition(".")[2]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = await _body(receive)
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    if scope["path"] == "/stats":
        await _send(send, 200, _stats())
        return
    code, doc, extra = _route(scope["method"], scope["path"], headers, body)
    counts[f"code_{code}"] += 1
    await _send(send, code, doc, extra)


def _route(method: str, path: str, headers: dict, body: bytes
           ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
    if (method, path) == ("POST", "/login"):
        counts["login"] += 1
        state["logins"] += 1
        n = state["logins"]
        token = f"t{n}"
        tokens[token] = n
        return 200, {"token": token, "ok": True}, [(b"set-cookie", f"sid={n}; Path=/".encode())]
    token = headers.get("authorization", "").removeprefix("Bearer ")
    if token not in tokens:
        counts["unauthorized"] += 1
        return 401, {"ok": False, "error": "no valid token"}, []
    per_token[token] += 1
    if _cookie(headers, "sid") != str(tokens[token]):
        counts["wrong_cookie"] += 1
    return _authed(method, path, token)


def _authed(method: str, path: str, token: str) -> tuple[int, Any, list]:
    route = path.strip("/").split("/")
    if method == "GET" and path in ("/auth/status", "/dashboard"):
        counts[route[-1]] += 1
        return 200, {"ok": True, "user": token, "widgets": [1, 2, 3]}, []
    if (method, path) == ("POST", "/reports"):
        counts["create"] += 1
        state["reports"] += 1
        n = state["reports"]
        owners[n] = token
        return 201, {"id": n, "ok": True}, [(b"location", f"/reports/{n}".encode())]
    if method == "GET" and len(route) == 2 and route[0] == "reports" and route[1].isdigit():
        counts["fetch"] += 1
        n = int(route[1])
        if owners.get(n) != token:
            counts["fetch_wrong"] += 1
            return 404, {"ok": False}, []
        fetched[n] += 1
        return 200, {"id": n, "ok": True, "owner": token}, []
    if method == "GET" and path == "/search":
        counts["search"] += 1
        state["searches"] += 1
        if state["searches"] % 10 == 0:
            counts["search_not_ok"] += 1
            return 200, {"ok": False, "hits": []}, []
        return 200, {"ok": True, "hits": [1, 2]}, []
    if (method, path) == ("POST", "/logout"):
        counts["logout"] += 1
        del tokens[token]
        return 200, {"ok": True}, []
    counts["other"] += 1
    return 404, {"ok": False}, []


def _cookie(headers: dict, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def _stats() -> dict:
    return {"counts": dict(counts), "per_token": dict(per_token),
            "created": sorted(owners), "fetched": {str(k): v for k, v in fetched.items()},
            "logins": state["logins"]}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _send(send: Send, code: int, doc: Any, extra: list | None = None) -> None:
    data = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(extra or [])]})
    await send({"type": "http.response.body", "body": data})
