"""A real nginx for tests and benchmarks: a config around the caller's server blocks, started
on loopback with one worker process, waited for, and stopped by pid. ``ssl_listen`` gives a
server block's lines for a TLS port (Debian's nginx-light has the ssl module)."""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import free_port, stop

__all__ = ["executable", "free_port", "ssl_listen", "start", "stop"]

HEAD = """
daemon off;
user {user};
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections {worker_connections}; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
{http}
}}
"""


def ssl_listen(port: int, cert: Path, key: Path) -> str:
    """The lines of a server block that listens with TLS on ``port`` (certificate chain and
    key: PEM files; TLS 1.2 and 1.3)."""
    return (f"listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; "
            f"ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;")


def executable() -> str | None:
    """nginx's path, or None when it is not installed (tests/setup.sh installs nginx-light)."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def start(folder: Path, http: str, ports: tuple[int, ...], cpu: str | None = None,
          worker_connections: int = 1024, within_s: float = 10.0) -> subprocess.Popen:
    """nginx with ``http`` (server blocks, inside ``http {}``) on ``ports``, its files in
    ``folder``, pinned to ``cpu`` when given. Raises RuntimeError (nginx stopped) if it exits
    or does not listen on every port within ``within_s``."""
    exe = executable()
    if exe is None:
        raise RuntimeError("nginx is not installed")
    (folder / "nginx.conf").write_text(HEAD.format(
        d=folder, user=getpass.getuser(), worker_connections=worker_connections, http=http))
    cmd = [exe, "-c", str(folder / "nginx.conf"), "-p", str(folder)]
    proc = subprocess.Popen((["taskset", "-c", cpu] if cpu else []) + cmd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + within_s
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited {proc.returncode}; see {folder}/error.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=0.5):
                break
            if time.monotonic() > deadline:
                stop(proc)
                raise RuntimeError(f"nginx did not listen on {port} within {within_s:g} s")
            time.sleep(0.05)
    return proc
