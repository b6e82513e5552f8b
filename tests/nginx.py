"""A real nginx for tests and benchmarks: a config around the caller's server blocks, started
on loopback with one worker process, waited for, and stopped by pid. ``ssl_listen`` gives a
server block's lines for a TLS port (Debian's nginx-light has the ssl module)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

from tests.support import free_port, stop, wait_listening

__all__ = ["LOG_FORMAT", "executable", "free_port", "server", "ssl_listen", "start", "stop"]

# An access log line per request: "METHOD URI STATUS CLASS CONN" (CLASS: the X-User-Class
# request header, "-" when absent; CONN: nginx's connection number). Put it in ``http``
# before a server that logs "line".
LOG_FORMAT = ("  log_format line '$request_method $request_uri $status $http_x_user_class "
              "$connection';\n")

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
    try:
        wait_listening(proc, *ports, name="nginx", within_s=within_s)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; see {folder}/error.log") from None
    return proc


def server(port: int, locations: dict[str, str], log: Path | None = None,
           keepalive_requests: int = 10000) -> str:
    """A server block on 127.0.0.1:``port``: each ``location`` (nginx syntax: ``= /x``,
    ``/api/``, ``~ ^/users/[0-9]+/$``) returns 200 with its text (any method); every other
    path is a 404. With ``log``, one LOG_FORMAT line per request goes there."""
    lines = [f"  server {{\n    listen 127.0.0.1:{port};",
             f"    keepalive_requests {keepalive_requests};"]
    if log is not None:
        lines.append(f"    access_log {log} line;")
    lines += [f'    location {loc} {{ return 200 "{text}\\n"; }}'
              for loc, text in locations.items()]
    lines += ['    location / { return 404 "no\\n"; }', "  }"]
    return "\n".join(lines) + "\n"
