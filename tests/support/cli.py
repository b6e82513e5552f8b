"""The command line as the tests run it.

``harness(*args, cwd=...)`` runs ``harness ARGS`` inside the test process: the click entry
point ``harness.cli.main`` (what ``python -m harness`` calls), with what a fresh process
would have: fds 0, 1 and 2 on /dev/null and two temporary files (so a forked worker or a
child process writes where a subprocess's would), ``sys.stdin/stdout/stderr`` text streams
over them with Python's encodings, ``sys.argv``, the working folder, the environment
(``env`` replaces it, as ``subprocess.run`` does), Python's default warning filters, and
SIGINT at its default. All of it is put back afterwards, and a thread the call started
(harness's monitor, which a process would end by exiting) is given up to 10 s to end. The
exit status is what the process would have exited with (``SystemExit``'s code; 1 and the
traceback on stderr for an uncaught exception), and a call that outlives ``timeout`` raises
``subprocess.TimeoutExpired`` (SIGALRM: forked workers do not inherit the timer). It saves
the interpreter's start and the imports (0.3-0.5 s a call on the 2-core test machines).

``harness_process(*args, cwd=...)`` is ``python -m harness ARGS`` as a real subprocess, for
where the process boundary is the point: the real entry point, signals, stdin, a process
group, the exit status a shell sees, what a fresh interpreter imports.

Both return a ``subprocess.CompletedProcess`` (``stdout``/``stderr`` str when ``text``,
else bytes).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import orjson

import harness as harness_pkg

TIMEOUT_S = 180.0  # per CLI call: the longest any test module allowed before the helpers merged
ENTRY = str(Path(harness_pkg.__file__).with_name("__main__.py"))  # sys.argv[0] of -m harness
PROG = "python -m harness"  # the name click finds for `python -m harness` (usage lines)

# Python's own warning filters for a script (what `python -m harness` starts with), most
# specific last as warnings.filterwarnings inserts at the front.
DEFAULT_FILTERS = (("ignore", DeprecationWarning), ("ignore", PendingDeprecationWarning),
                   ("ignore", ImportWarning), ("ignore", ResourceWarning))


def harness_process(*args: str, cwd: Path | str, timeout: float = TIMEOUT_S,
                    text: bool = True, env: Mapping[str, str] | None = None
                    ) -> subprocess.CompletedProcess:
    """``python -m harness ARGS`` run to completion in ``cwd``, stdin closed, stdout and
    stderr captured (str when ``text``, else bytes). ``env`` replaces the environment
    (None: inherit it, so ``PYTHONPATH`` picks the code under test)."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, timeout=timeout,
                          capture_output=True, text=text, stdin=subprocess.DEVNULL,
                          env=None if env is None else dict(env))


def harness_processes_at_once(calls: Mapping[str, tuple[Sequence[str], Path | str]],
                              timeout: float = TIMEOUT_S,
                              cpus: Mapping[str, set[int]] | None = None
                              ) -> dict[str, subprocess.CompletedProcess]:
    """:func:`harness_process` for each ``name: (args, cwd)`` of ``calls``, all started at
    once: for runs that mostly wait on a server (a rate limit, a delay, a soak) and assert
    no figure that the others' load could move. ``cpus`` pins a name's process (and so its
    workers) to those cores, where they are usable (else it runs unpinned). One result per
    name (text); a run that outlives ``timeout`` raises ``subprocess.TimeoutExpired``, and
    none is left running."""
    procs = {name: _spawn(args, cwd, _usable((cpus or {}).get(name)))
             for name, (args, cwd) in calls.items()}
    deadline = time.monotonic() + timeout
    out = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    return out


def _usable(cpus: set[int] | None) -> set[int] | None:
    """``cpus`` if this process may run on all of them, else None (no pinning)."""
    return cpus if cpus and cpus <= os.sched_getaffinity(0) else None


def _spawn(args: Sequence[str], cwd: Path | str, cpus: set[int] | None) -> subprocess.Popen:
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, preexec_fn=pin)


def harness(*args: str, cwd: Path | str, timeout: float = TIMEOUT_S, text: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """``harness ARGS`` run in this process as :func:`harness_process` would run it (see the
    module docstring for what is isolated)."""
    before = set(threading.enumerate())
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with _fds(out, err), _streams(), _process_state(args, cwd, env), _alarm(args, timeout):
            code = _call_main(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
        _join_new_threads(before, within_s=10.0)
        return subprocess.CompletedProcess([sys.executable, "-m", "harness", *args], code,
                                           _read(out, text), _read(err, text))


def _call_main(args: list[str]) -> int:
    """The exit status of ``harness ARGS``: as the interpreter would compute it."""
    from harness.cli import main
    try:
        main.main(args, prog_name=PROG)
    except SystemExit as exc:
        return _exit_status(exc.code)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        raise
    except BaseException:  # what an uncaught exception does to a process
        traceback.print_exc()
        return 1
    return 0


def _join_new_threads(before: set[threading.Thread], within_s: float) -> None:
    """Wait (bounded) for the threads started since ``before`` to end."""
    deadline = time.monotonic() + within_s
    for thread in set(threading.enumerate()) - before:
        thread.join(max(deadline - time.monotonic(), 0.0))


def _exit_status(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _read(f: BinaryIO, text: bool) -> str | bytes:
    f.seek(0)
    data = f.read()
    if not text:
        return data
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")  # universal newlines


@contextlib.contextmanager
def _fds(out: BinaryIO, err: BinaryIO) -> Iterator[None]:
    """fd 0 on /dev/null, fds 1 and 2 on ``out`` and ``err``; the old ones back after."""
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd, target in ((0, null), (1, out.fileno()), (2, err.fileno())):
            os.dup2(target, fd)
        yield
    finally:
        for fd, old in zip((0, 1, 2), saved, strict=True):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)


@contextlib.contextmanager
def _streams() -> Iterator[None]:
    """sys.stdin/stdout/stderr as a script's: text over fds 0-2, block-buffered stdout."""
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8",
                                 errors="surrogateescape")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding="utf-8", errors="surrogateescape")
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                  encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    try:
        with _default_warnings():
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        sys.stdin, sys.stdout, sys.stderr = old


@contextlib.contextmanager
def _default_warnings() -> Iterator[None]:
    """A script's warning filters, each warning written to sys.stderr as Python would."""
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for action, category in DEFAULT_FILTERS:
            warnings.filterwarnings(action, category=category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _process_state(args: tuple[str, ...], cwd: Path | str,
                   env: Mapping[str, str] | None) -> Iterator[None]:
    """sys.argv, the working folder, the environment and SIGINT as a fresh process's."""
    old_argv, old_cwd, old_env = sys.argv, os.getcwd(), dict(os.environ)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = [ENTRY, *args]
    os.chdir(cwd)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        yield
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        if os.environ != old_env:
            os.environ.clear()
            os.environ.update(old_env)
        signal.signal(signal.SIGINT, old_int)


@contextlib.contextmanager
def _alarm(args: tuple[str, ...], timeout: float) -> Iterator[None]:
    """SIGALRM after ``timeout`` s raises subprocess.TimeoutExpired in the call."""
    def expired(signum: int, frame: Any) -> None:
        raise subprocess.TimeoutExpired(["harness", *args], timeout)

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_json(*args: str, cwd: Path, results: Path | None = None, timeout: float = TIMEOUT_S,
             env: Mapping[str, str] | None = None, process: bool = False
             ) -> tuple[subprocess.CompletedProcess, dict | None]:
    """``harness run ARGS --json --no-report`` with its results in ``results`` (default
    ``cwd/results``), in this process or (``process``) as a subprocess: the finished call
    and its JSON summary (None when stdout is empty)."""
    run = harness_process if process else harness
    r = run("run", *args, "--json", "--no-report", "--results-dir",
            str(results if results is not None else cwd / "results"), cwd=cwd, timeout=timeout,
            env=env)
    return r, (orjson.loads(r.stdout) if r.stdout.strip() else None)
