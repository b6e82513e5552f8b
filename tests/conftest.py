"""Fixtures shared by the test modules. The plain helpers (the CLI in process or as a
subprocess, ports, plans run through the real coordinator) live in tests/support/."""

from __future__ import annotations

import sys

# Bytecode caches are written (in the clone's gitignored __pycache__ folders) even where
# PYTHONDONTWRITEBYTECODE is set: the suite starts hundreds of `python -m harness` and server
# subprocesses, and each would otherwise compile harness from source (about 0.1 s apiece).
sys.dont_write_bytecode = False

from collections.abc import Iterator  # noqa: E402 (after the switch above)

import pytest  # noqa: E402

from tests import servers  # noqa: E402


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port with nothing listening (a socket holds it bound, without listen, until
    the module's tests are done), so every connect is refused."""
    with servers.closed_port() as handle:
        yield handle.port
