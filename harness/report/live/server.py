"""The live page's HTTP server: ``GET /`` is the page (its script inline, nothing fetched
from elsewhere), ``GET /events`` the run's events as Server-Sent Events, from the first
(a new tab gets the history), then each as it comes. Read-only: any other method is 405,
any other path 404. Threads: one for the server, one per open tab; none prints.
"""

from __future__ import annotations

import contextlib
import html
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.report.live.feed import Feed, page_script

DEFAULT = "127.0.0.1:0"  # --live with no value: loopback, a free port
KEEPALIVE_S = 10.0  # a comment line this often keeps an idle stream open through proxies
POLL_S = 0.5  # how often a stream's thread checks that the server is stopping

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harness live: {title}</title></head>
<body><div id="harness-live" data-source="/events"></div>
<script>{script}</script></body></html>
"""


class LiveError(ValueError):
    """A --live address that cannot be used (one line, exit 2)."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; PORT 0: a free one) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise LiveError(f"--live: {text!r} is not HOST:PORT (e.g. 127.0.0.1:8089, or "
                        f"127.0.0.1:0 for a free port)")
    return host.strip("[]"), int(port)


MAX_LINGER_S = 86_400.0


def linger_seconds(text: str | None) -> float:
    """--live-linger S: seconds, 0 to a day (None: 0)."""
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_LINGER_S:
        raise LiveError(f"--live-linger: {text!r} is not a number of seconds from 0 to "
                        f"{MAX_LINGER_S:,.0f}")
    return value


class LiveServer:
    """Serves ``feed`` on ``address`` from :meth:`start` until :meth:`stop`."""

    def __init__(self, feed: Feed, address: str, title: str) -> None:
        host, port = parse_address(address)
        self.feed = feed
        self.page = PAGE.format(title=html.escape(title),
                                script=page_script().replace("</", "<\\/")).encode()
        self.stopping = threading.Event()
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            server_cls = type("Server", (ThreadingHTTPServer,),
                              {"address_family": family, "daemon_threads": True})
            self.httpd = server_cls((host, port), _handler(self))
        except (OSError, OverflowError) as exc:
            raise LiveError(f"--live: cannot listen on {address}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="harness-live",
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.feed.close()
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join(timeout=5)
        self.httpd.server_close()


class Handler(BaseHTTPRequestHandler):
    """GET / (the page) and GET /events (the stream); nothing else."""

    server_version = "harness-live"
    live: LiveServer  # set on the subclass made for each server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # only the CLI prints

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, "text/html; charset=utf-8", self.live.page)
        elif path == "/events":
            with contextlib.suppress(OSError):
                self._stream()
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(405, "text/plain", b"")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD  # noqa: N815  read-only

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if code == 405:
            self.send_header("Allow", "GET")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        """Every event so far, then each new one; a comment line when idle."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        have, idle = 0, 0.0
        while not self.live.stopping.is_set():
            events, closed = self.live.feed.wait(have, POLL_S)
            if events:
                self.wfile.write(b"".join(events))
                have, idle = have + len(events), 0.0
            elif closed:
                return
            else:
                idle += POLL_S
                if idle >= KEEPALIVE_S:
                    self.wfile.write(b": keep-alive\n\n")
                    idle = 0.0
            self.wfile.flush()


def _handler(live: LiveServer) -> type[BaseHTTPRequestHandler]:
    return type("LiveHandler", (Handler,), {"live": live})
