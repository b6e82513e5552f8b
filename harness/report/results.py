"""Run outputs: ``results/<UTC time>-<name>/`` with run.json, steps.csv and one
series-step<k>.csv per step. Every file is written atomically (temp file + rename), so a
reader never sees half a file, and an interrupted run still leaves whole files behind.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import stat
import tempfile
import time
from pathlib import Path

import orjson

from harness.core.safe import printable
from harness.report import schema

SCHEMA_VERSION = 1
# Schema history: 1 (first version). read_run reads these and refuses any other.
KNOWN_SCHEMAS = (1,)
PROBE_BYTES = 4096  # check_writable's test write: a full filesystem fails it

STEP_COLUMNS = ("conns", "messages", "rate", "duration_s", "sent", "received",
                "throughput_msgs_s", "throughput_mb_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms",
                "max_ms", "mean_ms", "connect_p99_ms", "errors", "lost", "duplicates",
                "client_cpu_pct", "client_bound", "partial")


def run_dir(base: str, name: str, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    path = Path(base) / f"{stamp}-{name}"
    n = 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stamp}-{name}-{n}"
    return path


def check_writable(base: str | Path) -> None:
    """Create ``base`` if needed and write (then remove) a small file in it, so a results
    folder that cannot take a run fails before the run rather than after it. Raises OSError
    (a missing parent under /proc, a read-only or full filesystem, no permission)."""
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".harness-probe-", dir=path)
    try:
        os.write(fd, bytes(PROBE_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temp file and a rename; on failure (ENOSPC, EIO) the
    temp file is removed and the error raised.

    Only a regular file is ever renamed over. A symlink is followed (the file it names is
    replaced, the link is kept). An existing file that is not a regular one (a device such
    as /dev/null, a FIFO, a socket) is written through, never replaced: see
    :func:`write_through`. A directory raises IsADirectoryError."""
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(mode):
        write_through(path, data)
        return
    _write_renamed(path, data)


def write_through(path: Path, data: bytes) -> None:
    """``data`` written into the existing non-regular file ``path`` (opened without
    creating or truncating it). A FIFO with no reader raises OSError (ENXIO) at once rather
    than waiting for one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a FIFO or socket with no reader", str(path)) from None
        raise
    try:
        os.set_blocking(fd, True)  # a FIFO's reader takes its time; a full pipe waits
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_renamed(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _csv(rows: list[dict], columns: tuple[str, ...] | list[str]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


def step_row(s: dict) -> dict:
    lat = s["latency_ms"]
    return {**{k: s.get(k) for k in STEP_COLUMNS}, "p50_ms": lat["p50"], "p90_ms": lat["p90"],
            "p99_ms": lat["p99"], "p999_ms": lat["p999"], "max_ms": lat["max"],
            "mean_ms": lat["mean"], "connect_p99_ms": s["connect_ms"]["p99"],
            "errors": sum(s["errors"].values())}


MONITOR_COLUMNS = ("second", "role", "pid", "cpu_pct", "rss_mb", "threads", "fds", "net_bytes")


def write_run(folder: Path, doc: dict, series: list[dict],
              monitor: list[list[dict]] | None = None) -> Path:
    """Write run.json (``doc``), steps.csv, the per-step series and resource samples
    (monitor-step<k>.csv, seconds from the step's measure window); return run.json's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, rows in enumerate(monitor or []):
        if rows:
            out = [dict(r, rss_mb=None if r.get("rss_bytes") is None else
                        round(r["rss_bytes"] / 1e6, 3), second=round(r["second"], 3))
                   for r in rows]
            write_atomic(folder / f"monitor-step{k}.csv", _csv(out, MONITOR_COLUMNS))
    for k, ser in enumerate(series):
        cols = list(ser)
        rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*ser.values(), strict=True)]
        write_atomic(folder / f"series-step{k}.csv", _csv(rows, cols))
    write_atomic(folder / "steps.csv", _csv([step_row(s) for s in doc["steps"]], STEP_COLUMNS))
    path = folder / "run.json"
    write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path


class SchemaError(ValueError):
    """A harness run.json whose ``schema_version`` this harness does not know."""


def read_run(folder: str | Path) -> dict:
    """A run folder's run.json (or that file itself), checked to be a harness run: a dict
    with a ``schema_version`` in KNOWN_SCHEMAS, then every field the commands read
    (:mod:`harness.report.schema`). An unknown version raises SchemaError, anything else
    ValueError, each with a one-line reason naming the path and the field (OSError if it
    cannot be read)."""
    path = Path(folder)
    if path.is_dir():
        path = path / "run.json"
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    problem = _not_a_run(doc)
    if problem:
        raise ValueError(f"{path}: {problem}")
    version = doc["schema_version"]
    if version not in KNOWN_SCHEMAS:
        known = ", ".join(map(str, KNOWN_SCHEMAS))
        why = "a newer harness wrote it" if version > max(KNOWN_SCHEMAS) else "not a version"
        raise SchemaError(f"{path}: schema_version {version} is not one this harness reads "
                          f"({known}): {why}")
    problem = schema.problem(doc)
    if problem:
        raise ValueError(f"{path}: {printable(problem)}")
    return doc


def _not_a_run(doc: object) -> str | None:
    """What read_run checks before the version (the rest: :mod:`harness.report.schema`)."""
    if not isinstance(doc, dict):
        return f"expected a JSON object, found {type(doc).__name__}"
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        return "no integer schema_version"
    return None


def read_series(folder: str | Path, step: int) -> dict[str, list]:
    """series-step<k>.csv as columns (counts as ints); {} when the file is absent. A file
    without those columns or with a non-integer count raises ValueError."""
    base = Path(folder)
    path = (base.parent if base.is_file() else base) / f"series-step{step}.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return {col: [int(r[col]) for r in rows]
                for col in ("second", "sent", "received", "errors")}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a harness series file ({type(exc).__name__}: "
                         f"{exc})") from None
