"""Running one case and judging it.

In-process (click's CliRunner, with ``run`` and ``search`` stopped where the load would
start) or as a ``python -m harness`` subprocess in its own session (killed as a group past
the bound). Outcome kinds: ``ok`` (exit 0), ``exit1``, ``usage`` (exit 2), ``unreachable``
(3), ``inconclusive`` (4), ``accepted`` (validation passed; in-process ``run``/``search``)
and the failures: ``traceback``, ``bad-exit`` (outside 0-4), ``hang``, ``usage-lines``
(exit 2 without exactly one line on stderr), ``not-refused`` (a known-bad value not refused
with exit 2) and ``crash`` (the pool process died).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from tests.fuzz.cases import Case

FAILURES = ("traceback", "bad-exit", "hang", "usage-lines", "not-refused", "crash")
KINDS = {0: "ok", 1: "exit1", 2: "usage", 3: "unreachable", 4: "inconclusive"}
TRACEBACK = "Traceback (most recent call last)"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    index: int
    surface: str
    command: str
    kind: str
    signature: str = ""   # failures: what tells one from another (exception type, last frame)
    message: str = ""     # the first line of the failure, for the reader
    seconds: float = 0.0
    argv: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


class Accepted(Exception):
    """Raised where ``run`` or ``search`` would start the load: validation passed."""


class Hang(BaseException):
    """Raised by SIGALRM when an in-process case runs past its bound."""


def _accept(*_args: object, **_kwargs: object) -> int:
    raise Accepted


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang


def install_stubs() -> None:
    """Stop ``run`` and ``search`` at the load (in this process only: a pool worker)."""
    import harness.cli.running
    import harness.run.probes
    harness.cli.running.execute = _accept  # type: ignore[assignment]
    harness.run.probes.run_probes = _accept  # type: ignore[assignment]


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, raw in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)


def last_frame(tb: TracebackType | None) -> str:
    """The innermost frame in harness/ (else the innermost of all): file and function (no
    line: one function's failures are one distinct failure)."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "/harness/" in f.filename] or frames
    if not ours:
        return "?"
    f = ours[-1]
    return f"{f.filename.split('/harness/')[-1]} {f.name}"


def judge(case: Case, code: int | None, stderr: str, seconds: float,
          crash: tuple[str, str] | None = None) -> Outcome:
    """The outcome of a finished case (``crash``: its exception's signature and message)."""
    def out(kind: str, signature: str = "", message: str = "") -> Outcome:
        return Outcome(case.index, case.surface, case.command, kind, signature, message[:200],
                       round(seconds, 3), case.argv)
    if crash is not None:
        return out("traceback", *crash)
    if TRACEBACK in stderr:
        return out("traceback", *stderr_signature(stderr))
    if code is None:
        return out("hang", "no answer within the bound")
    if code not in KINDS:
        return out("bad-exit", f"exit {code}", stderr.strip()[-200:])
    lines = stderr.rstrip("\n").split("\n") if stderr.strip() else []
    if code == 2 and len(lines) != 1:
        return out("usage-lines", f"{len(lines)} lines", " | ".join(lines)[:200])
    if case.must_refuse and code != 2:
        return out("not-refused", case.must_refuse, f"exit {code}")
    return out(KINDS[code])


def stderr_signature(stderr: str) -> tuple[str, str]:
    """(exception type and last harness frame, the exception line) from a printed traceback."""
    text = stderr[stderr.index(TRACEBACK):]
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    ours = [f for f in frames if "/harness/" in f[0]] or frames
    where = f"{ours[-1][0].split('/harness/')[-1]} {ours[-1][2]}" if ours else "?"
    last = [ln for ln in text.splitlines() if ln and not ln.startswith(" ")][-1]
    return f"{last.split(':')[0]} at {where}", last


def run_inprocess(case: Case, scratch: Path, bound_s: float) -> Outcome:
    """Run ``case`` through CliRunner in a fresh folder (cwd) of ``scratch``."""
    from click.testing import CliRunner

    from harness.cli import main
    folder = scratch / f"c{case.index}"
    write_files(folder, case.files)
    cwd = os.getcwd()
    os.chdir(folder)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, bound_s)
    started = time.monotonic()
    try:
        result = CliRunner().invoke(main, list(case.argv), catch_exceptions=True)
    except Hang:
        return judge(case, None, "", time.monotonic() - started)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)
    seconds = time.monotonic() - started
    exc = result.exception
    if isinstance(exc, Accepted):
        return Outcome(case.index, case.surface, case.command,
                       "not-refused" if case.must_refuse else "accepted",
                       case.must_refuse, "validation passed", round(seconds, 3), case.argv)
    crash = None
    if exc is not None and not isinstance(exc, SystemExit):
        tb = result.exc_info[2] if result.exc_info else None
        crash = (f"{type(exc).__name__} at {last_frame(tb)}",
                 f"{type(exc).__name__}: {exc}")
    return judge(case, result.exit_code, result.stderr, seconds, crash)


def run_subprocess(case: Case, scratch: Path, addresses: dict[str, str],
                   bound_s: float) -> Outcome:
    """Run ``case`` as ``python -m harness`` (placeholders filled in) in a fresh folder."""
    folder = scratch / f"c{case.index}"
    files = {name: _fill(raw.decode("utf-8", "surrogateescape"), addresses).encode(
        "utf-8", "surrogateescape") for name, raw in case.files.items()}
    write_files(folder, files)
    argv = [sys.executable, "-m", "harness", *(_fill(a, addresses) for a in case.argv)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), FUZZ_PW="pw")
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=bound_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this case started, and only it
        _, err = proc.communicate()
        code = None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return judge(case, code, err.decode("utf-8", "replace"), time.monotonic() - started)


def _fill(text: str, addresses: dict[str, str]) -> str:
    for key, value in addresses.items():
        text = text.replace("{" + key + "}", value)
    return text
