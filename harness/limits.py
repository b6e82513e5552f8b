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
