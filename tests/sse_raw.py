"""A raw-socket SSE server that breaks its streams below HTTP, for tests/test_sse.py: every
``GET`` on it is answered by the bytes of its mode, then the connection is held open (until
the client goes, or 30 s).

* ``badchunk``: a good ``200 text/event-stream`` head with ``Transfer-Encoding: chunked``,
  one good chunk with a comment, then a chunk-size line that is not hexadecimal;
* ``garbage``: bytes that are not an HTTP response at all.

Run: ``python -m tests.sse_raw MODE`` (prints ``listening on PORT``, then serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

REPLIES = {
    "badchunk": (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                 b"transfer-encoding: chunked\r\n\r\n"
                 b"b\r\n: welcome\n\n\r\nzz\r\ndata: x\n\n\r\n"),
    "garbage": b"SSH-2.0-OpenSSH_9.6\r\n\r\nnot http at all\r\n\r\n",
}


async def serve(mode: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(REPLIES[mode])
        await writer.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(), 30)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
