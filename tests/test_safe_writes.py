"""Outputs named by the user (--junit FILE, --html FILE) never replace a file harness did
not create: a device or a FIFO is written through, a FIFO with no reader is refused in one
line (issue 20, item 1)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from harness.report import results
from tests.support import harness


def fake_null(tmp_path: Path) -> Path:
    """A character device like /dev/null (1, 3) in ``tmp_path`` (tests run as root)."""
    path = tmp_path / "fakenull"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return path


def test_a_device_is_written_through_and_stays_a_device(tmp_path: Path) -> None:
    dev = fake_null(tmp_path)
    results.write_atomic(dev, b"<testsuites/>")
    assert stat.S_ISCHR(os.stat(dev).st_mode)
    assert os.listdir(tmp_path) == ["fakenull"]  # no temp file left beside it


def test_a_fifo_with_a_reader_gets_the_bytes_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    data = b"x" * 200_000  # more than a pipe holds: the write waits for the reader

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for _ in range(200):  # the reader opens it (bounded: 2 s)
        try:
            results.write_atomic(fifo, data)
            break
        except OSError:
            threading.Event().wait(0.01)
    reader.join(timeout=5)
    assert got == [data]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_fifo_without_a_reader_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="no reader"):
        results.write_atomic(fifo, b"page")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symlink_keeps_its_link_and_the_file_it_names_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "real.xml"
    real.write_bytes(b"old")
    link = tmp_path / "link.xml"
    link.symlink_to(real)
    results.write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


@pytest.mark.e2e
def test_compare_and_history_never_replace_a_device_or_a_fifo(tmp_path: Path) -> None:
    cwd = tmp_path / "runs"
    cwd.mkdir()
    made = harness("run", "--conns", "2", "--duration", "0.2", "--warmup", "0.1", "--workers",
                   "1", "--no-report", "--results-dir", "results", "--json", cwd=cwd)
    assert made.returncode in (0, 1, 4), made.stderr
    run = next((cwd / "results").iterdir())
    dev = fake_null(tmp_path)
    r = harness("compare", str(run), str(run), "--junit", str(dev), "--html", str(dev),
                cwd=cwd)
    assert r.returncode in (0, 4), r.stderr  # 4: a busy machine left the run's step unjudged
    assert "not written" not in r.stderr and "cannot write" not in r.stderr, r.stderr
    assert stat.S_ISCHR(os.stat(dev).st_mode)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    h = harness("history", "results", "--html", str(fifo), cwd=cwd)
    assert h.returncode == 2 and "no reader" in h.stderr, h.stderr
    assert len(h.stderr.strip().splitlines()) == 1, h.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
