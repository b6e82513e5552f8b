"""Benchmark: harness against tcpkali on raw TCP echo, side by side in one run (issue 12).

    PYTHONPATH=$PWD python tests/bench/peers.py [--rounds 3] [--seconds 4]
        [--loads closed100x16,open100x1000,quiet10000,closed10x1,connect]
        [--connect-conns 50000] [--tcpkali PATH]

Builds tests/bench/echo.c (gcc -O2) into a temporary folder and starts it pinned to CPU 0
(a fresh server per run, port picked by the kernel). Clients run pinned to CPU 1, 64-byte
messages (harness: len32 framing; tcpkali: 63 bytes and a newline, ``--write-combine off``
so one write per message). For each load, each round runs tcpkali then harness, so both
see the same machine; the table gives medians of the rounds and the ratios
harness / tcpkali of msgs/s, of CPU % and of CPU µs per message.

* ``closed100x16``: harness 100 conns x 16 in flight; tcpkali 100 conns as fast as it can
  (it has no closed loop).
* ``open100x1000``: 100 conns x 1,000 msgs/s each (open loop, 100k msgs/s).
* ``quiet10000``: 10,000 conns x 1 msg/s each.
* ``closed10x1``: harness alone, 10 conns x 1 in flight (tcpkali has no closed loop).
* Python floor: tests/bench/floor.py, a bare ``select.epoll`` loop (recv_into, send, no
  stamps, no histograms) on the same load after harness, so the table shows how much of a
  gap to tcpkali is Python's own per-message floor on this machine and how much is
  harness's work for exact figures (all but closed 100 x 16).
* ``connect``: ``--connect-conns`` connections opened as fast as possible by
  ceil(n / 16,000) harness transports (one process each, all on CPU 1, one echo server per
  process: the open-files limit is 20,000 per process); the figure is connections / the
  slowest process's connect time, and the p50 connect latency (from each connect() call).
  tcpkali opens min(n, 16,000) (one process) at ``--connect-rate 30k`` for its p50.

CPU, split into user and system time (``/proc/PID/stat`` utime and stime, the process and
its threads): tcpkali's process between 1 s after start (after its ramp) and the end of its
run; harness's worker processes (the coordinator's children) from 1.2 s after they appear
(connect and the 1 s warm-up) for the measure window less 0.3 s; the floor's process from
1.2 s after start for the window less 0.5 s. The total is /proc's; the split is perf's
cpu-clock samples where perf runs (:func:`cpu_split`: /proc's split is tick-sampled and
aliases with a loop that wakes on a grid). The kernel's share (system) is about the same
for every client; user time is the client's own work, and ``user µs/msg`` is the figure to compare.

Quiet machine only: it refuses to start when the 1-minute load average is above 0.5 (when
no other process is busy it waits up to 2 min for the average to fall, as it does after a
run of this tool), and
before each round it samples the CPU of every process that is not its own (0.5 s); when
another process took more than 5% of a core it stops, naming it. (The load average itself
climbs with the benchmark's own runs, so past the start the check is on other processes.)
Every run has a timeout; every server is stopped by its pid.

Not a test (pytest does not collect it): a tool that prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.bench import CLIENT_CPU, SERVER_CPU, harness_run, the_step

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PER_PROCESS = 16_000  # connections one client process opens (open-files limit 20,000)
PEERS = (ROOT.parent / "shared" / "peers", ROOT.parents[1] / "shared" / "peers")  # ../shared
TCPKALI = next((d / "tcpkali" for d in PEERS if (d / "tcpkali").exists()), PEERS[0] / "tcpkali")
MESSAGE = "x" * 63 + "\\n"  # tcpkali unescapes it (-e): 64 bytes


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    conns: int
    inflight: int = 0  # closed loop; 0: open loop at ``rate``
    rate: float = 0.0  # msgs/s per connection; 0 with inflight 0: tcpkali as fast as it can
    peer: bool = True  # tcpkali runs it too
    floor: bool = True  # tests/bench/floor.py (a bare Python loop) runs it too


LOADS = {
    "closed100x16": Load("closed 100 x 16", 100, inflight=16, floor=False),  # tcpkali: a flood
    "open100x1000": Load("open 100 x 1000/s", 100, rate=1000.0),
    "quiet10000": Load("10000 x 1/s", 10_000, rate=1.0),
    "closed10x1": Load("closed 10 x 1", 10, inflight=1, peer=False),
}


@dataclass(frozen=True, slots=True)
class Figure:
    msgs_s: float
    cpu_pct: float
    bad: int = 0  # errors + lost
    user_pct: float = math.nan  # of cpu_pct, user time
    sys_pct: float = math.nan  # of cpu_pct, system (kernel) time

    @property
    def cpu_us_msg(self) -> float:
        return self.cpu_pct / 100 * 1e6 / self.msgs_s if self.msgs_s else math.inf

    @property
    def user_us_msg(self) -> float:
        return self.user_pct / 100 * 1e6 / self.msgs_s if self.msgs_s else math.inf


# ---------------------------------------------------------------------------- the server


def build_echo(folder: Path) -> Path:
    exe = folder / "echo"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "echo.c")], check=True)
    return exe


class Server:
    """One echo server process pinned to SERVER_CPU; stops itself after ``seconds``."""

    def __init__(self, exe: Path, seconds: int) -> None:
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, str(exe), "0", str(seconds)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"port (\d+)\n", line)
        if m is None:
            self.stop()
            raise SystemExit(f"echo server did not start: {line!r}")
        self.port = int(m.group(1))

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- the clients


class PeerFailed(Exception):
    """tcpkali did not give a figure (it could not ramp, or hung): that round has none."""


def proc_times(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of processes (each with its threads), seconds, summed."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    tck = os.sysconf("SC_CLK_TCK")
    return user / tck, system / tck


def cpu_split(pids: list[int], seconds: float) -> tuple[float, float]:
    """(user %, system %) of one core that ``pids`` took over the next ``seconds``. The
    total is the kernel's (utime + stime: scaled to the exact runtime). The split is perf's
    where perf runs (:func:`user_share`): /proc's is sampled on the scheduler tick, and a loop
    that wakes on a grid aliases with it (one load read 53/40 and then 11/84). Without perf
    the split is /proc's, and :data:`TICK_SPLITS` counts it for the report."""
    global TICK_SPLITS
    with tempfile.TemporaryDirectory(prefix="peers-perf-") as tmp:
        data = Path(tmp) / "perf.data"
        perf = start_perf(pids, max(seconds - 0.2, 0.3), data)  # (ends inside the window)
        (u0, s0), t0 = proc_times(pids), time.monotonic()
        time.sleep(seconds)
        (u1, s1), t1 = proc_times(pids), time.monotonic()
        share = user_share(perf, data)
    user, system = 100 * (u1 - u0) / (t1 - t0), 100 * (s1 - s0) / (t1 - t0)
    if share is None:
        TICK_SPLITS += 1
        return user, system
    return (user + system) * share, (user + system) * (1 - share)


TICK_SPLITS = 0  # figures whose user/system split is /proc's (no perf, or it failed)
PERF_HZ = 2999  # prime: no multiple of a grid of whole µs, so no aliasing with the rounds


def start_perf(pids: list[int], seconds: float, data: Path) -> subprocess.Popen[bytes] | None:
    """``perf record`` of ``pids`` on the cpu-clock (a timer, not the tick: no hardware
    counters on a VM) for ``seconds``, or None where perf is missing or refuses."""
    if shutil.which("perf") is None:
        return None
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ),
                             "-o", str(data), "-p", ",".join(map(str, pids)), "--",
                             "sleep", f"{seconds:g}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


KERNEL_IP = 0xFFFF800000000000  # x86-64: kernel addresses are the top half


def user_share(perf: subprocess.Popen[bytes] | None, data: Path) -> float | None:
    """The share of ``perf``'s samples taken in user mode, or None (no perf, it failed, or
    under 100 samples)."""
    if perf is None:
        return None
    try:
        if perf.wait(timeout=30) != 0:  # (the process ended inside the window, for one)
            return None
        out = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip"],
                             capture_output=True, text=True, timeout=60).stdout.split()
    except (subprocess.TimeoutExpired, OSError):
        perf.kill()
        return None
    ips = [int(x, 16) for x in out if re.fullmatch(r"[0-9a-f]+", x)]
    if len(ips) < 100:
        return None
    return sum(ip < KERNEL_IP for ip in ips) / len(ips)


def all_times() -> dict[int, int]:
    """utime + stime (clock ticks) of every process now, by pid."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(d.name)] = int(f[11]) + int(f[12])
    return out


def others_busy(seconds: float = 0.5) -> list[str]:
    """Processes other than this one that took over 5% of a core over ``seconds``."""
    a = all_times()
    time.sleep(seconds)
    b = all_times()
    tck, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    busy = []
    for pid, ticks in b.items():
        pct = 100 * (ticks - a.get(pid, ticks)) / tck / seconds
        if pid != me and pct > 5:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:80]
            except OSError:
                cmd = b"?"
            busy.append(f"pid {pid} at {pct:.0f}%: {cmd.decode(errors='replace')}")
    return busy


BUSY_OK = False  # --busy-ok: take figures anyway (to try this tool), marked as not quiet


def require_quiet(first: bool) -> None:
    """Stop, saying why, unless the machine is quiet (see the module docstring)."""
    if BUSY_OK:
        return
    busy = others_busy()
    if busy:
        raise SystemExit("not quiet: other processes are busy, no figures taken:\n  "
                         + "\n  ".join(busy))
    if first:  # a run just before this one (this tool's own) decays away within ~1 min
        waited = 0
        while (load := float(Path("/proc/loadavg").read_text().split()[0])) > 0.5:
            if waited >= 120 or others_busy():
                raise SystemExit(f"not quiet: load average {load:.2f} (> 0.5) after "
                                 f"{waited} s: no figures taken")
            time.sleep(5)
            waited += 5


def run_tcpkali(exe: Path, srv: Server, load: Load, seconds: float) -> Figure:
    """tcpkali's msgs/s (bytes received / 64 / its test duration) and its CPU % after ramp.
    Flooding (no rate), tcpkali may not exit after its test until the server goes away:
    past its duration + 5 s the server is stopped, and tcpkali prints and exits."""
    port = srv.port
    cmd = ["taskset", "-c", CLIENT_CPU, str(exe), "-w", "1", "-c", str(load.conns),
           "--connect-rate", "30k", "-e", "-m", MESSAGE, "--write-combine", "off",
           "-T", f"{seconds}s", f"127.0.0.1:{port}"]
    if load.rate:
        cmd[cmd.index("-e"):cmd.index("-e")] = ["-r", f"{load.rate:g}"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    user, system = cpu_split([p.pid], max(seconds - 1.3, 0.5))
    try:
        out, _ = p.communicate(timeout=seconds + 5)
    except subprocess.TimeoutExpired:
        srv.stop()
        try:
            out, _ = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            raise PeerFailed(f"tcpkali hung:\n{out}") from None
    got = re.search(r"Total data received:.*\((\d+) bytes\)", out)
    dur = re.search(r"Test duration: ([\d.]+) s", out)
    if got is None or dur is None:
        raise PeerFailed(f"no figures in tcpkali's output:\n{out.strip()[-300:]}")
    return Figure(int(got.group(1)) / 64 / float(dur.group(1)), user + system,
                  user_pct=user, sys_pct=system)


def run_harness(ports: list[int], load: Load, seconds: float, results: Path) -> Figure:
    """harness's throughput_msgs_s and client_cpu_pct (exit 0 or 1 accepted: 1 is a
    client-bound verdict, the figures are still measured)."""
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    pace = ["--rate", f"{load.rate:g}"] if load.rate else ["--inflight", str(load.inflight)]
    cmd = harness_run("--host", hosts, "--conns", str(load.conns), "--duration", f"{seconds:g}",
                      "--warmup", "1", "--size", "64", "--framing", "len32", *pace,
                      "--results-dir", str(results))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    user = system = math.nan
    workers = worker_pids(p.pid, deadline=time.monotonic() + 30)
    if workers:
        time.sleep(1.2)
        with contextlib.suppress(OSError):  # a worker ended early: the run says why below
            user, system = cpu_split(workers, max(seconds - 0.3, 0.5))
    out, err = p.communicate(timeout=seconds + 60)
    step = the_step(p.returncode, out, err)
    return Figure(float(step["throughput_msgs_s"]), float(step["client_cpu_pct"]),
                  sum(step["errors"].values()) + step["lost"], user_pct=user, sys_pct=system)


def worker_pids(pid: int, deadline: float) -> list[int]:
    """The child processes of ``pid`` (harness's workers) once there are any, or [] if it
    ended or ``deadline`` (time.monotonic) passed first."""
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        if kids:
            return [int(k) for k in kids]
        time.sleep(0.02)
    return []


def run_floor(srv: Server, load: Load, seconds: float) -> Figure:
    """tests/bench/floor.py, the bare Python epoll loop (no stamps), on the same load: its
    msgs/s from its own window, its CPU as harness's is taken (from 1.2 s, after its connects
    and 1 s warm-up, for the window less 0.5 s)."""
    pace = ["--rate", f"{load.rate:g}"] if load.rate else ["--inflight", str(load.inflight)]
    p = subprocess.Popen(["taskset", "-c", CLIENT_CPU, sys.executable, str(HERE / "floor.py"),
                          str(srv.port), str(load.conns), *pace, "--seconds", f"{seconds:g}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.2)
    user = system = math.nan
    with contextlib.suppress(OSError):  # it ended early: its exit status says why below
        user, system = cpu_split([p.pid], max(seconds - 0.5, 0.5))
    out, err = p.communicate(timeout=seconds + 60)
    if p.returncode != 0:
        raise SystemExit(f"floor.py exited {p.returncode}: {err.strip()[-300:]}")
    return Figure(float(json.loads(out)["msgs_s"]), user + system, user_pct=user,
                  sys_pct=system)


# ---------------------------------------------------------------------------- connects


def connect_child(port: int, conns: int, start_at: float) -> None:
    """One process: open ``conns`` connections through harness's transport, from
    ``start_at`` (time.monotonic); prints elapsed seconds, connected and connect p50 ms."""
    sys.path.insert(0, str(ROOT))
    import socket

    from harness.config import build as cfg
    from harness.core.limits import raise_nofile
    from harness.run.shares import build_shares
    from harness.wire.poller import Poller
    from harness.worker.worker import Worker
    from workloads import load

    raise_nofile()
    plan = cfg.build_plan(cfg.settings({}, {"host": f"127.0.0.1:{port}", "conns": str(conns),
                                            "workers": 1}))
    wl = load("echo")(64, 1)
    w = Worker(0, plan, wl, [(socket.AF_INET, ("127.0.0.1", port))])
    share = build_shares(plan, plan.steps[0], type(wl), 7)[0]
    time.sleep(max(start_at - time.monotonic(), 0))
    t0 = time.monotonic_ns()
    w.connect(share, Poller(), t0 + 30 * 10**9)
    elapsed = (time.monotonic_ns() - t0) / 1e9
    p50 = w.res.connect.percentile(50)
    print(json.dumps({"elapsed_s": elapsed, "connected": w.res.connected,
                      "errors": sum(w.res.errors.values()),
                      "p50_ms": None if p50 is None else p50 / 1e6}), flush=True)
    w.close_all()


def harness_connects(exe: Path, total: int) -> tuple[float, float, int]:
    """(connections/s, p50 ms of the largest child, connected) over ceil(total / PER_PROCESS)
    processes started together, one echo server each."""
    k = math.ceil(total / PER_PROCESS)
    per = [total // k + (i < total % k) for i in range(k)]
    servers = [Server(exe, 60) for _ in range(k)]
    try:
        start_at = time.monotonic() + 1.5
        kids = [subprocess.Popen(["taskset", "-c", CLIENT_CPU, sys.executable, __file__,
                                  "--connect-child", f"{s.port},{n},{start_at}"],
                                 stdout=subprocess.PIPE, text=True)
                for s, n in zip(servers, per, strict=True)]
        outs = [json.loads(kid.communicate(timeout=90)[0]) for kid in kids]
    finally:
        for s in servers:
            s.stop()
    slowest = max(o["elapsed_s"] for o in outs)
    connected = sum(o["connected"] for o in outs)
    p50 = statistics.median(o["p50_ms"] for o in outs if o["p50_ms"] is not None)
    return connected / slowest, p50, connected


def tcpkali_connect_p50(exe: Path, tk: Path, conns: int) -> float | None:
    with Server(exe, 60) as srv:
        try:  # (subprocess.run kills it when the time is up)
            out = subprocess.run(["taskset", "-c", CLIENT_CPU, str(tk), "-w", "1", "-c",
                                  str(conns), "--connect-rate", "30k", "--latency-connect",
                                  "--latency-percentiles", "50", "-T", "2s",
                                  f"127.0.0.1:{srv.port}"],
                                 capture_output=True, text=True, timeout=60).stdout
        except subprocess.TimeoutExpired:  # it hung ramping (TIME_WAIT): no figure
            return None
    m = re.search(r"TCP connect latency at percentiles: ([\d.]+)", out)
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------------------- main


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def medians(figs: list[Figure]) -> tuple[float, float, float, float, float, float]:
    """Medians of msgs/s, CPU %, user %, system %, CPU µs/msg and user µs/msg."""
    med = statistics.median
    return (med(f.msgs_s for f in figs), med(f.cpu_pct for f in figs),
            med(f.user_pct for f in figs), med(f.sys_pct for f in figs),
            med(f.cpu_us_msg for f in figs), med(f.user_us_msg for f in figs))


def one(who: str, figs: list[Figure]) -> str:
    m, c, u, s, cu, uu = medians(figs)
    return (f"{who} {m:>9,.0f} msgs/s CPU {c:>5.1f}% (user {u:>5.1f}% sys {s:>5.1f}%) "
            f"{cu:>5.2f} µs/msg (user {uu:>5.2f})")


RATE_SLACK = 0.10  # a peer's round off the asked rate by more than this is not like for like


def held_rate(load: Load, figs: list[Figure]) -> tuple[list[Figure], list[Figure]]:
    """An open-loop load's rounds that held the asked rate (conns x rate, within RATE_SLACK),
    and those that did not (tcpkali may overshoot it: its CPU per message then falls, as it
    does for any client that batches more). A closed loop's rounds all count."""
    if not load.rate:
        return figs, []
    asked = load.conns * load.rate
    held = [f for f in figs if abs(f.msgs_s - asked) <= RATE_SLACK * asked]
    return held, [f for f in figs if f not in held]


def report(load: Load, tk: list[Figure], h: list[Figure], fl: list[Figure]) -> str:
    """One block per load: each client's medians, then the ratios to harness. A tcpkali
    round that did not hold the asked rate is left out of its medians and named; when none
    held it, the medians are of all its rounds and the ratios say they are not like for
    like."""
    hm, hc, _, _, hcu, hu = medians(h)
    bad = sum(f.bad for f in h)
    lines = [f"{load.name}", "  " + one("harness", h) + (f"  ({bad} errors/lost)" if bad else "")]
    held, off = held_rate(load, tk)
    if tk:
        use = held or tk  # none held the rate: all of them, and the ratios say so
        km, kc, _, _, kcu, _ = medians(use)
        lines += ["  " + one("tcpkali", use),
                  f"    harness/tcpkali: msgs/s {ratio(hm, km)}, CPU {ratio(hc, kc)}, "
                  f"CPU µs/msg {ratio(hcu, kcu)}"
                  + ("" if held else " (NOT LIKE FOR LIKE: no tcpkali round held the rate)")]
    if off:
        lines.append(f"    tcpkali: {len(off)} round(s) off the asked "
                     f"{load.conns * load.rate:,.0f} msgs/s by over {RATE_SLACK:.0%}"
                     + (", left out: " if held else ": ")
                     + ", ".join(f"{f.msgs_s:,.0f} msgs/s at {f.cpu_pct:.1f}%" for f in off))
    if fl:
        fu = medians(fl)[5]
        lines += ["  " + one("floor  ", fl), f"    harness/floor: user µs/msg {ratio(hu, fu)}"]
    return "\n".join(lines)


def wait_ports(conns: int, limit_s: float = 75.0) -> None:
    """Until ``conns`` more connects fit in the ephemeral port range beside the sockets in
    TIME_WAIT (/proc/net/sockstat's ``tw``), or ``limit_s`` passed: 10,000 connections a
    client, three clients a round, outrun the 28,232 ports of the default range within the
    60 s of TIME_WAIT (floor.py once failed with EADDRNOTAVAIL)."""
    lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        tw = re.search(r"\btw (\d+)", Path("/proc/net/sockstat").read_text())
        if tw is None or int(tw.group(1)) + conns + 1000 <= hi - lo + 1:
            return
        time.sleep(1)


def run_load(load: Load, rounds: int, seconds: float, exe: Path, tk_exe: Path | None,
             folder: Path) -> str:
    """``rounds`` rounds of tcpkali, harness and the Python floor, each on a fresh server;
    the report line of their medians."""
    tk: list[Figure] = []
    h: list[Figure] = []
    fl: list[Figure] = []
    for i in range(1, rounds + 1):
        require_quiet(first=False)
        if load.peer and tk_exe is not None:
            wait_ports(load.conns)
            with Server(exe, 60) as srv:
                try:
                    tk.append(run_tcpkali(tk_exe, srv, load, seconds))
                except PeerFailed as exc:
                    print(f"  {load.name} round {i}: {exc}", file=sys.stderr)
        wait_ports(load.conns)
        with Server(exe, 60) as srv:
            h.append(run_harness([srv.port], load, seconds, folder / "results"))
        if load.floor:
            wait_ports(load.conns)
            with Server(exe, 60) as srv:
                fl.append(run_floor(srv, load, seconds))
        print(f"  {load.name} round {i}: harness {h[-1].msgs_s:,.0f} msgs/s "
              f"{h[-1].cpu_pct:.1f}%" + (f" | tcpkali (last) {tk[-1].msgs_s:,.0f} msgs/s "
                                         f"{tk[-1].cpu_pct:.1f}%" if tk else "")
              + (f" | floor {fl[-1].msgs_s:,.0f} msgs/s {fl[-1].cpu_pct:.1f}%" if fl else ""),
              file=sys.stderr, flush=True)
    return report(load, tk, h, fl)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0, help="measure window per run (≤ 5)")
    ap.add_argument("--loads", default=",".join([*LOADS, "connect"]))
    ap.add_argument("--connect-conns", type=int, default=50_000)
    ap.add_argument("--tcpkali", default=shutil.which("tcpkali") or str(TCPKALI))
    ap.add_argument("--connect-child", help=argparse.SUPPRESS)
    ap.add_argument("--busy-ok", action="store_true",
                    help="skip the quiet checks (to try the tool): the figures say NOT QUIET")
    a = ap.parse_args(argv)
    global BUSY_OK
    BUSY_OK = a.busy_ok
    if a.connect_child:
        port, n, at = a.connect_child.split(",")
        connect_child(int(port), int(n), float(at))
        return 0
    seconds = min(a.seconds, 5.0)
    require_quiet(first=True)
    load_at_start = Path("/proc/loadavg").read_text().split()[0]
    tk_exe = Path(a.tcpkali) if Path(a.tcpkali).exists() else None
    if tk_exe is None:
        print("tcpkali not found: harness figures only", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="peers-"))
    exe = build_echo(folder)
    lines = [run_load(LOADS[key], a.rounds, seconds, exe, tk_exe, folder)
             for key in a.loads.split(",") if key != "connect"]
    lines.append("(closed 100 x 16: tcpkali floods without a window, msgs/s = bytes / 64: "
                 "not like for like)")
    if "connect" in a.loads.split(","):
        rate, p50, got = harness_connects(exe, a.connect_conns)
        line = (f"{'connect':<20} harness {got:,} of {a.connect_conns:,} at {rate:,.0f}/s, "
                f"p50 {p50:.3f} ms")
        if tk_exe is not None:
            n = min(a.connect_conns, PER_PROCESS)
            tk_p50 = tcpkali_connect_p50(exe, tk_exe, n)
            line += f" | tcpkali {n:,} at 30k/s: " + (f"p50 {tk_p50} ms" if tk_p50 is not None
                                                      else "no figure (it did not ramp)")
        lines.append(line)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"\nmedians of {a.rounds} rounds, {seconds:g} s windows, 64-byte messages; "
          f"echo.c on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}; "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.uname().nodename}, "
          f"load average at the start {load_at_start}"
          + ("; NOT QUIET (--busy-ok): these figures prove nothing" if BUSY_OK else ""))
    if TICK_SPLITS:
        print(f"{TICK_SPLITS} user/sys splits are /proc's (no perf, or it failed): "
              "tick-sampled, and they alias with a loop that wakes on a grid")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
