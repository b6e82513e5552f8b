"""An SSE chat room on starlette, run under uvicorn by the tests: ``POST /send`` broadcasts
its body (bytes as they came) to every ``GET /events`` stream as one event
``id: N`` / ``data: BODY``, N counting from 1 over the server's life; a stream opened with
``Last-Event-ID: K`` is first sent the events after K (the room keeps them all). Every
stream begins with ``retry: 20`` and a comment; a comment goes every 0.5 s as a heartbeat.

A stream's query string changes what it gets (the room is the same):

* ``drop_every=N``: the stream skips every N-th event of the room (ids N, 2N, ...): that
  receiver alone loses exactly those;
* ``close_after=K``: the stream ends (the zero chunk) after K events (the client reopens it
  with Last-Event-ID);
* ``crlf=1``: lines end in CRLF; ``multiline=1``: the data is cut over two ``data:`` lines and
  each event has ``event: message``; ``other=1``: an ``event: presence`` event (with data, no
  stamp) is sent before each message;
* hostile: ``status=N`` (answers N, no stream), ``ctype=T`` (a 200 with content type T),
  ``long=N`` (after the first event, a data line of N bytes, then nothing: it never ends),
  ``badutf8=1`` (every 5th event has a byte that is not UTF-8 in its data, after the stamp).

``POST /send?hang=1`` never answers (the body is broadcast all the same unless
``hang=2``: neither). ``GET /stats`` gives the room's counters as JSON.

Run: ``python -m uvicorn tests.sse_chat:app --port 8000 --no-access-log``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

HEARTBEAT_S = 0.5


class Room:
    def __init__(self) -> None:
        self.history: list[bytes] = []  # event N is history[N - 1]
        self.streams: set[asyncio.Queue[int]] = set()
        self.opened = 0
        self.resumed = 0

    def send(self, body: bytes) -> None:
        self.history.append(body)
        n = len(self.history)
        for q in self.streams:
            q.put_nowait(n)


ROOM = Room()


def event(n: int, body: bytes, q: dict[str, str]) -> bytes:
    data = body
    if q.get("badutf8") and n % 5 == 0:
        data = body.rstrip(b"}") + b',"x":"\xff\xfe"}'
    lines = [b"id: %d" % n]
    if q.get("multiline"):
        lines.append(b"event: message")
        cut = data.find(b",") + 1 or len(data) // 2  # JSON cut between two fields
        lines += [b"data: " + data[:cut], b"data: " + data[cut:]]
    else:
        lines.append(b"data: " + data)
    out = b"\n".join(lines) + b"\n\n"
    if q.get("other"):
        out = b'event: presence\ndata: {"who": "someone"}\n\n' + out
    return out.replace(b"\n", b"\r\n") if q.get("crlf") else out


async def stream(q: dict[str, str], last: int, inbox: asyncio.Queue[int]
                 ) -> AsyncIterator[bytes]:
    drop = int(q.get("drop_every", 0))
    close_after = int(q.get("close_after", 0))
    sent = 0
    try:
        yield b"retry: 20\n: welcome\n\n"
        backlog = list(range(last + 1, len(ROOM.history) + 1))
        while True:
            if backlog:
                n = backlog.pop(0)
            else:
                try:
                    n = await asyncio.wait_for(inbox.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": heartbeat\n\n"
                    continue
            if n <= last:  # (already sent: replayed from the history)
                continue
            last = n
            if drop and n % drop == 0:
                continue
            yield event(n, ROOM.history[n - 1], q)
            sent += 1
            if "long" in q and sent == 1:
                yield b"data: " + b"x" * int(q["long"])
                await asyncio.Event().wait()  # and the line never ends
            if close_after and sent >= close_after:
                return
    finally:
        ROOM.streams.discard(inbox)


async def events(request: Request) -> Response:
    q = dict(request.query_params)
    if "status" in q:
        return Response(b"no stream here", status_code=int(q["status"]))
    last = int(request.headers.get("last-event-id") or 0)
    ROOM.opened += 1
    ROOM.resumed += last > 0
    inbox: asyncio.Queue[int] = asyncio.Queue()
    ROOM.streams.add(inbox)
    # only events after the stream joined (or after Last-Event-ID) are its own
    last = last or len(ROOM.history)
    return StreamingResponse(stream(q, last, inbox),
                             media_type=q.get("ctype", "text/event-stream"),
                             headers={"Cache-Control": "no-cache"})


async def send(request: Request) -> Response:
    body = await request.body()
    hang = request.query_params.get("hang")
    if hang != "2":
        ROOM.send(body)
    if hang:
        await asyncio.Event().wait()  # never answers
    return Response(b"ok", status_code=200)


async def stats(request: Request) -> Response:
    return Response(json.dumps({"messages": len(ROOM.history), "streams": len(ROOM.streams),
                                "opened": ROOM.opened, "resumed": ROOM.resumed}),
                    media_type="application/json")


app = Starlette(routes=[Route("/events", events), Route("/send", send, methods=["POST"]),
                        Route("/stats", stats)])
