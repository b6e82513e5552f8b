"""HTTP/1.1 keep-alive: one fixed request, built once as bytes, sent again and again on
every connection; responses are matched in order (the k-th response on a connection
answers its k-th request) and counted by status code.

Selected by an ``http://host:port/path`` target. For another method, body or headers,
subclass it in a file of your own (``--workload my_post.py``)::

    from workloads.http import Http

    class Post(Http):
        method = "POST"
        body = b'{"text": "hello"}'
        headers = {"Content-Type": "application/json"}

    WORKLOAD = Post
"""

from __future__ import annotations

from workloads.base import Workload


class Http(Workload):
    name = "http"
    delivery = "echo"
    matching = "order"
    protocol = "http"
    method = "GET"
    body = b""
    headers: dict[str, str] = {}

    def request(self, host: str, path: str) -> bytes:
        """The request's bytes for ``host`` (the Host header: host:port) and ``path``."""
        lines = [f"{self.method} {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


WORKLOAD = Http
