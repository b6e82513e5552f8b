"""Fixtures shared by the test modules. The plain helpers (the CLI in process or as a
subprocess, ports, plans run through the real coordinator) live in tests/support/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port with nothing listening (a socket holds it bound, without listen, until
    the module's tests are done), so every connect is refused."""
    with servers.closed_port() as handle:
        yield handle.port
