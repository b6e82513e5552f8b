"""The backend of the test plans as a plain ASGI app (no framework), run under uvicorn by
tests/test_backend.py:

* ``GET /posts/``: a JSON list of posts;
* ``POST /posts/``: 201 Created, the JSON body echoed back inside ``{"created": ...}``
  (400 when the body is not JSON);
* ``GET /users/{id}/``: ``{"id": id}``, or 404 when ``id`` is outside 1..1000;
* ``GET /slow/``: 200 after ``asyncio.sleep(SLOW_S)``, a known server-side delay;
* the item routes of the shipped user-class plan (workloads/plans/users.toml): ``GET /``,
  ``GET /api/items/`` (a list), ``POST /api/items/`` (201, the JSON body echoed),
  ``GET /api/items/{id}/`` (404 outside 1..500), ``GET /admin/stats/`` and
  ``DELETE /admin/items/{id}/``;
* ``GET /stats``: the app's own counters (not counted themselves), as JSON: responses by
  status code, requests by route, the user ids that got a 404, and the median time the
  slow route's sleeps actually took (ms), so a test can tell a late event loop from a
  wrong measurement.

Run: ``python -m uvicorn tests.asgi_backend:app --port 8000 --workers 1 --no-access-log``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

SLOW_S = 0.020  # the slow route's server-side delay, s
USERS = range(1, 1001)  # the user ids that exist
ITEMS = range(1, 501)  # the item ids that exist (the user-class plan asks for 1-500)

POSTS = [{"id": i, "title": f"post {i}", "body": "lorem ipsum " * 4} for i in range(1, 11)]

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]

codes: Counter[int] = Counter()  # responses by status code
routes: Counter[str] = Counter()  # requests by route
missing_ids: Counter[int] = Counter()  # user ids answered 404
slept_ms: list[float] = []  # how long each sleep of /slow/ took, ms (the last 10,000)


async def app(scope: dict, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    method, path = scope["method"], scope["path"]
    body = await _body(receive)
    if path == "/stats":
        await _json(send, 200, _stats())
        return
    code, doc = await _route(method, path, body)
    codes[code] += 1
    await _json(send, code, doc)


async def _route(method: str, path: str, body: bytes) -> tuple[int, Any]:
    """(status, JSON document) of one request."""
    if path == "/posts/" and method == "GET":
        routes["list_posts"] += 1
        return 200, POSTS
    if path == "/posts/" and method == "POST":
        routes["create_post"] += 1
        try:
            return 201, {"created": json.loads(body)}
        except ValueError:
            return 400, {"error": "body is not JSON"}
    if path == "/slow/" and method == "GET":
        routes["slow"] += 1
        t0 = time.monotonic()
        await asyncio.sleep(SLOW_S)
        slept_ms.append((time.monotonic() - t0) * 1e3)
        del slept_ms[:-10_000]
        return 200, {"slept_s": SLOW_S}
    parts = path.strip("/").split("/")
    item = _item_route(method, parts, body)
    if item is not None:
        return item
    if len(parts) == 2 and parts[0] == "users" and parts[1].isdigit() and method == "GET":
        routes["get_user"] += 1
        uid = int(parts[1])
        if uid in USERS:
            return 200, {"id": uid, "name": f"user {uid}"}
        missing_ids[uid] += 1
        return 404, {"error": f"no user {uid}"}
    routes["other"] += 1
    return 404, {"error": "not found"}


def _item_route(method: str, parts: list[str], body: bytes) -> tuple[int, Any] | None:
    """(status, document) of the user-class plan's routes; None for any other route."""
    route = {("GET", ""): "home", ("GET", "api/items"): "list_items",
             ("POST", "api/items"): "create_item", ("GET", "admin/stats"): "admin_stats",
             }.get((method, "/".join(parts)))
    if route is None and len(parts) == 3 and parts[2].isdigit():
        route = {("GET", "api/items"): "get_item",
                 ("DELETE", "admin/items"): "delete_item"}.get((method, "/".join(parts[:2])))
    if route is None:
        return None
    routes[route] += 1
    if route == "create_item":
        try:
            return 201, {"created": json.loads(body)}
        except ValueError:
            return 400, {"error": "body is not JSON"}
    if len(parts) == 3 and int(parts[2]) not in ITEMS:
        return 404, {"error": f"no item {parts[2]}"}
    return 200, {"route": route, "items": POSTS[:3] if route == "list_items" else None}


def _stats() -> dict:
    return {"codes": {str(k): v for k, v in sorted(codes.items())}, "routes": dict(routes),
            "missing_ids": {str(k): v for k, v in sorted(missing_ids.items())},
            "slow_sleep_p50_ms": statistics.median(slept_ms) if slept_ms else None}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _json(send: Send, code: int, doc: Any) -> None:
    data = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
