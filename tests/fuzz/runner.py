"""The runner: one real run folder made once, the in-process cases in a pool of at most 2
processes, the load cases as tiny CLI subprocesses (2 at a time) against servers started
here on 127.0.0.1 port 0, then the counts and the distinct failures."""

from __future__ import annotations

import contextlib
import http.server
import os
import resource
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tests.fuzz import cases, judge
from tests.fuzz.judge import Outcome

INPROCESS_BOUND_S = 20.0
LOAD_BOUND_S = 60.0
MEMORY_CAP = 3 << 30  # address space of a pool process: a runaway allocation fails, the box lives
CHUNK = 25


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    def distinct(self) -> list[tuple[tuple[str, str, str], list[Outcome]]]:
        """Failures grouped by (command, kind, signature), the most frequent first."""
        groups: dict[tuple[str, str, str], list[Outcome]] = {}
        for o in self.failures():
            key = (o.command, o.kind, o.signature if o.kind != "not-refused"
                   else f"{o.surface}: {o.signature}")
            groups.setdefault(key, []).append(o)
        return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def base_run(where: Path, raw_address: str) -> dict[str, bytes]:
    """run.json and the CSVs of the run folder under ``where`` (the files every mangle starts
    from), made there first by a real two-step run when ``where`` holds none. A case replays
    exactly only from the same base run: keep it with ``--base DIR``."""
    folders = list(where.glob("*/run.json"))
    if not folders:
        argv = [sys.executable, "-m", "harness", "run", "--host", raw_address, "--conns",
                "1,2", "--duration", "0.3", "--warmup", "0", "--workers", "1", "--results-dir",
                str(where), "--name", "base", "--no-report", "--json"]
        proc = subprocess.run(argv, capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=str(judge.ROOT)))
        folders = list(where.glob("*/run.json"))
        if len(folders) != 1:
            raise RuntimeError(f"the base run wrote no run.json (exit {proc.returncode}): "
                               f"{proc.stderr.decode()[-500:]}")
    return {p.name: p.read_bytes() for p in folders[0].parent.iterdir()
            if p.name == "run.json" or p.name.endswith(".csv")}

# ---------------------------------------------------------------------------- pool

_BASE: dict[str, bytes] = {}
_SCRATCH = Path(".")


def _init(base: dict[str, bytes], scratch: str) -> None:
    global _BASE, _SCRATCH
    _BASE, _SCRATCH = base, Path(scratch)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, hard))
    judge.install_stubs()


def _chunk(seed: int, indices: list[int]) -> tuple[list[Outcome], list[int]]:
    """Run a chunk's in-process cases; hand back its load cases' indices."""
    outcomes, load = [], []
    for i in indices:
        case = cases.make(seed, i, _BASE)
        if case.load:
            load.append(i)
        else:
            outcomes.append(judge.run_inprocess(case, _SCRATCH, INPROCESS_BOUND_S))
    return outcomes, load


def run_inprocess(seed: int, indices: list[int], base: dict[str, bytes], scratch: Path,
                  processes: int = 2) -> tuple[list[Outcome], list[int]]:
    chunks = [indices[i:i + CHUNK] for i in range(0, len(indices), CHUNK)]
    outcomes: list[Outcome] = []
    load: list[int] = []
    ctx = get_context("fork")
    with ProcessPoolExecutor(min(processes, 2), ctx, _init, (base, str(scratch))) as pool:
        futures = [(chunk, pool.submit(_chunk, seed, chunk)) for chunk in chunks]
        for chunk, future in futures:
            try:
                done, more = future.result(timeout=CHUNK * INPROCESS_BOUND_S + 60)
            except BrokenProcessPool as exc:
                done, more = _crashed(seed, chunk, base, exc), []
            outcomes += done
            load += more
    return outcomes, load


def _crashed(seed: int, chunk: list[int], base: dict[str, bytes],
             exc: BaseException) -> list[Outcome]:
    made = [cases.make(seed, i, base) for i in chunk]
    return [Outcome(c.index, c.surface, c.command, "crash", "pool process died", str(exc),
                    argv=c.argv)
            for c in made if not c.load]

# ---------------------------------------------------------------------------- load servers


class _Sink(http.server.BaseHTTPRequestHandler):
    """Answers every request 200 with a small body (an HTTP target, a Pushgateway and a
    webhook at once)."""
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 (http.server's names)

    def log_message(self, *_args: object) -> None:
        pass


@contextlib.contextmanager
def load_servers() -> Iterator[dict[str, str]]:
    """A len32 echo server, a WebSocket echo server and an HTTP sink, on loopback."""
    from tests import servers
    http_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    http_srv.daemon_threads = True
    threading.Thread(target=http_srv.serve_forever, daemon=True).start()
    ws = subprocess.Popen([sys.executable, "-m", "tests.ws_servers", "echo"], cwd=judge.ROOT,
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        ws_port = _ports_line(ws)
        with servers.start("echo") as raw:
            yield {"RAW": f"127.0.0.1:{raw.port}", "WS": f"127.0.0.1:{ws_port}",
                   "HTTP": f"127.0.0.1:{http_srv.server_address[1]}"}
    finally:
        ws.terminate()
        ws.wait(timeout=10)
        http_srv.shutdown()
        http_srv.server_close()


def _ports_line(proc: subprocess.Popen) -> int:
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORTS"):
        raise RuntimeError(f"tests.ws_servers did not start: {line!r}")
    return int(line.split()[1])


def run_load(seed: int, indices: list[int], base: dict[str, bytes], scratch: Path,
             addresses: dict[str, str]) -> list[Outcome]:
    made = [cases.make(seed, i, base) for i in indices]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(
            lambda c: judge.run_subprocess(c, scratch, addresses, LOAD_BOUND_S), made))

# ---------------------------------------------------------------------------- all


def fuzz(count: int, seed: int, only: list[int] | None = None, processes: int = 2,
         subprocess_all: bool = False, base_dir: Path | None = None) -> Report:
    """Run cases ``0..count-1`` of ``seed`` (or ``only`` those); ``subprocess_all`` runs
    every case as a CLI subprocess (slow; to check the in-process verdicts); ``base_dir``
    keeps the base run (see base_run)."""
    indices = only if only is not None else list(range(count))
    with tempfile.TemporaryDirectory(prefix="harness-fuzz-") as tmp, load_servers() as addr:
        scratch = Path(tmp)
        base = base_run(base_dir or scratch / "base", addr["RAW"])
        if subprocess_all:
            return Report(run_load(seed, indices, base, scratch, addr))
        outcomes, load = run_inprocess(seed, indices, base, scratch, processes)
        outcomes += run_load(seed, load, base, scratch, addr)
    return Report(sorted(outcomes, key=lambda o: o.index))
