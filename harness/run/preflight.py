"""Preflight: before a large step, what the step needs against what this machine allows,
and each shortfall with the command that fixes it (so a run that cannot fit ends at once,
not after minutes of connecting).

:func:`read_machine` reads the limits (``/proc/sys``, ``/proc/meminfo``, the open-files
limit); :func:`needs` derives a step's needs from the plan; :func:`check` compares them
(pure). :func:`unbindable` tries each source address once. Units: connections, file
descriptors, ports, bytes, pages (tcp_mem, as the kernel counts it).
"""

from __future__ import annotations

import contextlib
import resource
import socket
from dataclasses import dataclass
from pathlib import Path

from harness.core.limits import FD_RESERVE, fd_workers, per_process
from harness.core.plan import Plan
from harness.core.pools import pair_load

PREFLIGHT_CONNS = 50_000  # a step above this many connections is checked first
MAX_WORKERS = 1024  # the most worker processes --workers allows
# Measured on the 2-core VM (README "1,000,000 connections from one box"): harness's RSS
# per idle connection (workers), the kernel's per TCP socket (slab: tcp sock, file, dentry,
# inode, epoll item), and a worker process's own RSS before any connection.
HARNESS_BYTES_PER_CONN = 720
KERNEL_BYTES_PER_SOCKET = 5_000
WORKER_BASE_BYTES = 50 << 20
TCP_PAGES_PER_SOCKET = 0.1  # tcp_mem pages an idle socket holds (forward allocation)
MIN_SOMAXCONN = 1024
MEMORY_SHARE = 0.9  # of MemAvailable a step may plan to use
PAGE = 4096
SYS = Path("/proc/sys")


@dataclass(frozen=True, slots=True)
class Machine:
    nr_open: int
    file_max: int
    files_open: int  # fs.file-nr's first figure: file handles allocated now
    port_lo: int
    port_hi: int
    tcp_mem_max: int  # pages (0: unreadable here)
    tcp_mem_used: int  # pages (/proc/net/sockstat "TCP: ... mem")
    somaxconn: int
    conntrack_max: int | None  # None: the conntrack module is not loaded
    conntrack_count: int
    mem_available: int  # bytes
    nofile: int  # this process's open-files hard limit


@dataclass(frozen=True, slots=True)
class Needs:
    conns: int
    sources: int  # source addresses (1: the kernel's pick)
    destinations: int
    workers: int
    loopback: bool  # the server's end of each connection is on this machine too
    inflight_bytes: int  # bytes in flight per connection (both ways)


@dataclass(frozen=True, slots=True)
class Finding:
    what: str  # the resource: "ports", "open files", "memory", ...
    text: str  # need and have, in one line
    fix: str  # the command (or flag) that fixes it; "" for a note
    fatal: bool = True  # a shortfall that stops the run (exit 2); False: a warning


def _int(path: str, default: int = 0) -> list[int]:
    try:
        return [int(x) for x in (SYS / path).read_text().split()]
    except (OSError, ValueError):
        return [default]


def _tcp_pages() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                words = line.split()
                return int(words[words.index("mem") + 1])
    return 0


def _mem_available() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def read_machine() -> Machine:
    """This machine's limits, now (in this network namespace)."""
    lo, hi = (_int("net/ipv4/ip_local_port_range") + [0, 0])[:2]
    has_ct = (SYS / "net/netfilter/nf_conntrack_max").exists()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return Machine(
        nr_open=_int("fs/nr_open")[0], file_max=_int("fs/file-max")[0],
        files_open=_int("fs/file-nr")[0], port_lo=lo, port_hi=hi,
        tcp_mem_max=_int("net/ipv4/tcp_mem", 0)[-1], tcp_mem_used=_tcp_pages(),
        somaxconn=_int("net/core/somaxconn")[0],
        conntrack_max=_int("net/netfilter/nf_conntrack_max")[0] if has_ct else None,
        conntrack_count=_int("net/netfilter/nf_conntrack_count")[0] if has_ct else 0,
        mem_available=_mem_available(),
        nofile=(1 << 20) if hard == resource.RLIM_INFINITY else int(hard))


def largest(plan: Plan) -> int:
    """The most connections a step of this plan opens (listeners included)."""
    nodes = max(len(plan.targets), 1)
    most = max(s.conns + s.listen * nodes for s in plan.steps)
    return max(most, plan.max_conns if plan.until_degraded else 0)


def needs(plan: Plan, conns: int, push_all: bool = True) -> Needs:
    """What a step of ``conns`` connections of this plan needs. ``push_all``: senders go
    round-robin over every target (echo-style), else to one."""
    loopback = all(t.host.startswith("127.") or t.host == "localhost" for t in plan.targets)
    dests = len({(t.host, t.port) for t in plan.targets}) if push_all else 1
    inflight = plan.pacing.inflight if plan.pacing.mode == "closed" else 1
    return Needs(conns=conns, sources=max(len(plan.source_addrs), 1),
                 destinations=max(dests, 1), workers=plan.workers,
                 loopback=loopback and bool(plan.targets),
                 inflight_bytes=2 * inflight * plan.size)


def check(n: Needs, m: Machine) -> list[Finding]:
    """Every shortfall (and warning) of a step with needs ``n`` on machine ``m``."""
    out: list[Finding] = []
    for rule in (_open_files, _file_max, _ports, _servers, _tcp_mem, _somaxconn,
                 _conntrack, _memory):
        found = rule(n, m)
        if found is not None:
            out.append(found)
    return out


def _open_files(n: Needs, m: Machine) -> Finding | None:
    per = -(-n.conns // max(n.workers, 1)) + FD_RESERVE
    fewest = fd_workers(n.conns, m.nofile)
    if per <= m.nofile and n.workers <= MAX_WORKERS:
        return None
    if fewest <= MAX_WORKERS:
        return Finding("open files", f"{n.conns:,} connections over {n.workers} worker(s) "
                       f"need {per:,} open files per worker; the limit is {m.nofile:,}",
                       f"--workers {fewest} (or --workers 0: picked by harness)")
    want = -(-n.conns // MAX_WORKERS) + FD_RESERVE
    raise_to = max(want, m.nofile)
    fix = f"ulimit -Hn {raise_to} (as root; LimitNOFILE= for a service)"
    if want > m.nr_open:
        fix = f"sysctl -w fs.nr_open={want} && " + fix
    return Finding("open files", f"{n.conns:,} connections need {fewest:,} worker processes "
                   f"at the open-files limit {m.nofile:,} (fs.nr_open {m.nr_open:,}); at most "
                   f"{MAX_WORKERS} workers", fix)


def _file_max(n: Needs, m: Machine) -> Finding | None:
    want = n.conns * (2 if n.loopback else 1) + n.workers * FD_RESERVE
    have = m.file_max - m.files_open
    if want <= have:
        return None
    return Finding("fs.file-max", f"{want:,} file handles needed (client"
                   f"{' and server' if n.loopback else ''} sockets); fs.file-max "
                   f"{m.file_max:,} leaves {have:,}",
                   f"sysctl -w fs.file-max={m.files_open + want * 5 // 4}")


def _ports(n: Needs, m: Machine) -> Finding | None:
    ports = max(m.port_hi - m.port_lo + 1, 0)
    load = pair_load(n.conns, n.destinations, n.sources)
    if load <= ports:
        return None
    per_dest = -(-n.conns // n.destinations)
    sources = -(-per_dest // max(ports, 1))
    return Finding("ports", f"{n.conns:,} connections over {n.sources} source address(es) × "
                   f"{n.destinations} destination(s) put {load:,} on one (source, destination) "
                   f"pair; ip_local_port_range {m.port_lo}-{m.port_hi} gives {ports:,}",
                   f"--source-addrs with {sources} address(es) or more (e.g. "
                   f"--source-addrs 127.0.0.1-127.0.0.{min(sources, 254)} on loopback), more "
                   f"--host ports, or sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"")


def _servers(n: Needs, m: Machine) -> Finding | None:
    per_dest = -(-n.conns // n.destinations)
    if not n.loopback or per_dest <= per_process(m.nofile):
        return None
    fewest = -(-n.conns // per_process(m.nofile))
    return Finding("server open files", f"{per_dest:,} connections per destination; a "
                   f"server process under this open-files limit ({m.nofile:,}) holds "
                   f"{per_process(m.nofile):,}", f"{fewest} destinations or more "
                   f"(harness serve echo --port A-B, --host 127.0.0.1:A-B)", fatal=False)


def _tcp_mem(n: Needs, m: Machine) -> Finding | None:
    sockets = n.conns * (2 if n.loopback else 1)
    want = m.tcp_mem_used + int(sockets * TCP_PAGES_PER_SOCKET) + \
        n.conns * n.inflight_bytes // PAGE
    if want <= m.tcp_mem_max or not m.tcp_mem_max:  # 0: unreadable (a network namespace)
        return None
    return Finding("tcp_mem", f"about {want:,} pages of TCP buffers needed; net.ipv4.tcp_mem "
                   f"allows {m.tcp_mem_max:,}", f"sysctl -w net.ipv4.tcp_mem=\"{want} "
                   f"{want * 5 // 4} {want * 3 // 2}\"")


def _somaxconn(n: Needs, m: Machine) -> Finding | None:
    if m.somaxconn >= MIN_SOMAXCONN:
        return None
    return Finding("somaxconn", f"net.core.somaxconn {m.somaxconn}: a connect storm overflows "
                   f"a server's accept queue (dropped SYNs come back 1 s later); "
                   f"{MIN_SOMAXCONN} at least", "sysctl -w net.core.somaxconn=4096")


def _conntrack(n: Needs, m: Machine) -> Finding | None:
    if m.conntrack_max is None or m.conntrack_count == 0:
        return None  # not loaded, or tracking nothing in this namespace
    want = m.conntrack_count + n.conns
    if want <= m.conntrack_max:
        return None
    return Finding("conntrack", f"{want:,} conntrack entries needed; "
                   f"net.netfilter.nf_conntrack_max is {m.conntrack_max:,}",
                   f"sysctl -w net.netfilter.nf_conntrack_max={want * 5 // 4}")


def memory_need(n: Needs) -> tuple[int, int]:
    """(harness's bytes, the kernel's bytes) for a step of needs ``n``."""
    sockets = n.conns * (2 if n.loopback else 1)
    own = n.conns * HARNESS_BYTES_PER_CONN + n.workers * WORKER_BASE_BYTES
    return own, sockets * KERNEL_BYTES_PER_SOCKET


def _memory(n: Needs, m: Machine) -> Finding | None:
    own, kernel = memory_need(n)
    if not m.mem_available or own + kernel <= m.mem_available * MEMORY_SHARE:
        return None
    return Finding("memory", f"about {(own + kernel) >> 20:,} MiB needed (harness "
                   f"{own >> 20:,} MiB, kernel sockets {kernel >> 20:,} MiB); "
                   f"{m.mem_available >> 20:,} MiB available",
                   "fewer connections, or a machine with more memory")


def unbindable(addrs: tuple[str, ...]) -> tuple[str, str] | None:
    """The first source address this machine cannot bind, with the reason; None when all
    can. Each is bound once without a port (IP_BIND_ADDRESS_NO_PORT), then closed."""
    no_port = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
    for addr in addrs:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.IPPROTO_IP, no_port, 1)
            try:
                s.bind((addr, 0))
            except OSError as exc:
                return addr, exc.strerror or str(exc)
    return None

