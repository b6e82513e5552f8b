"""The host kernel's TCP drop and retransmit counters (Linux ``/proc``), read around a step.

When a step shows a stall with client and server both idle, the usual cause on one host is
a packet the kernel dropped (accept queue full, the per-CPU receive backlog full under
``net.core.netdev_max_backlog``): TCP then waits for its own timers (a SYN again after 1 s
and 3 s, data after 200 ms and more). These counters are host-wide (this network
namespace), so other traffic on the machine moves them too. Counts are packets or events.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc/net")
# (file, row prefix, field) -> the name in the step's ``kernel`` figures
WATCHED = {
    ("netstat", "TcpExt", "ListenOverflows"): "listen_overflows",
    ("netstat", "TcpExt", "ListenDrops"): "listen_drops",
    ("netstat", "TcpExt", "TCPSynRetrans"): "syn_retransmits",
    ("netstat", "TcpExt", "TCPTimeouts"): "retransmit_timeouts",
}


def read(proc: Path = PROC) -> dict[str, int]:
    """Current counters; an empty dict where /proc/net is not there to read."""
    out: dict[str, int] = {}
    tables: dict[str, dict[str, dict[str, int]]] = {}
    try:
        for (name, row, field), key in WATCHED.items():
            table = tables.get(name)
            if table is None:
                table = tables[name] = _pairs((proc / name).read_text())
            if field in table.get(row, {}):
                out[key] = table[row][field]
        out["backlog_drops"] = _softnet_drops((proc / "softnet_stat").read_text())
    except (OSError, ValueError):
        return {}
    return out


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Counters that grew between two reads, by how much."""
    return {k: after[k] - before[k] for k in after if k in before and after[k] > before[k]}


def _pairs(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/netstat`` style: a header line then a value line per row prefix."""
    lines = text.splitlines()
    out: dict[str, dict[str, int]] = {}
    for head, vals in zip(lines[::2], lines[1::2], strict=False):
        names, values = head.split()[1:], vals.split()[1:]
        out[head.split(":")[0]] = dict(zip(names, map(int, values), strict=False))
    return out


def _softnet_drops(text: str) -> int:
    """Packets dropped because a CPU's input backlog was full (2nd column, hex, per CPU)."""
    return sum(int(line.split()[1], 16) for line in text.splitlines() if line.strip())
