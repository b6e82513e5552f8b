"""The ASGI apps of the tests (tests/asgi_backend.py, tests/flow_backend.py,
tests/sse_chat.py) under uvicorn, and their own counters."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.net import free_port, stop, wait_listening

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def uvicorn_app(app: str, *args: str, needs: tuple[str, ...] = ("uvicorn",),
                grace_s: float = 5.0) -> Iterator[int]:
    """uvicorn serving ``app`` ("tests.module:app": one worker, no access log, ``args``
    added) on a free port; stopped by its pid at the end (SIGKILL after ``grace_s``). The
    calling test skips, saying so, when a module of ``needs`` is not installed."""
    for module in needs:
        pytest.importorskip(module, reason=f"{module} not installed (pip install '.[test]')")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--no-access-log", "--log-level", "warning", *args],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        wait_listening(proc, port, name=f"uvicorn ({app})", within_s=20.0)
        yield port
    finally:
        stop(proc, grace_s=grace_s)


def app_stats(port: int) -> dict:
    """An app's own counters: ``GET /stats`` on 127.0.0.1:``port``, as JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/stats")
        return orjson.loads(conn.getresponse().read())
    finally:
        conn.close()
