"""The open-files limit: raised once, to the hard limit, by every process that opens many
sockets (the coordinator before it forks its workers, each built-in server node).

Units: file descriptors.
"""

from __future__ import annotations

import contextlib
import resource

FD_RESERVE = 64  # descriptors a process keeps beside its connections (pipes, selector, ...)


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard limit (also when the hard limit is
    unlimited); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile_hard() -> int:
    """The open-files hard limit: what :func:`raise_nofile` raises the soft limit to
    (unlimited read as fs.nr_open's default, 1,048,576)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else int(hard)


def per_process(limit: int) -> int:
    """Connections one process may hold under an open-files ``limit``."""
    return max(limit - FD_RESERVE, 1)


def fd_workers(conns: int, limit: int) -> int:
    """The fewest worker processes that hold ``conns`` connections under ``limit`` each."""
    return max(1, -(-conns // per_process(limit)))
