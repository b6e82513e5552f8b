"""``harness run --cluster``: a real ``harness cluster scheduler`` and ``harness agent``
subprocesses (Dask distributed) on loopback, and, where ``ip netns`` works, network
namespaces as separate client hosts. The plan split (largest remainder) is tested
without sockets."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.core.plan import Stage, Step
from harness.run.scaleout_parts import largest_remainder, machine_parts, split_step
from tests.busy import ran_ok
from tests.support import harness_process, stop, wait_process_connections
from tests.support import run_json as support_run_json

distributed = pytest.importorskip("distributed", reason="the cluster extra is not installed")

READY_S = 30.0


# ---------------------------------------------------------------------------- the split


def test_largest_remainder_splits_exactly_and_favours_the_largest_remainders() -> None:
    assert largest_remainder(7, [2, 2]) == [4, 3]
    assert largest_remainder(10, [1, 2, 1]) == [2, 5, 3] or \
        largest_remainder(10, [1, 2, 1]) == [3, 5, 2]
    assert largest_remainder(1, [4, 4, 4]) == [1, 0, 0]
    for total in range(0, 40):
        for weights in ([1], [3, 1], [2, 2, 2], [5, 1, 7], [1, 1, 1, 1, 1, 1, 1]):
            parts = largest_remainder(total, weights)
            assert sum(parts) == total
            exact = [total * w / sum(weights) for w in weights]
            assert all(abs(p - e) < 1 for p, e in zip(parts, exact, strict=True))


def test_a_step_splits_its_connections_messages_and_stages_with_nothing_dropped() -> None:
    step = Step(0, conns=7, duration_s=None, messages=701, rate=5.0, listen=3,
                stages=(Stage(1.0, 3, 5.0), Stage(1.0, 7, 10.0)))
    parts = split_step(step, [2, 2])
    assert [p.conns for p in parts] == [4, 3]
    assert sum(p.messages or 0 for p in parts) == 701
    assert sum(p.listen for p in parts) == 3
    assert [sum(p.stages[k].conns for p in parts) for k in range(2)] == [3, 7]
    assert all(p.rate == 5.0 and p.index == 0 for p in parts)


def test_each_machine_s_connection_ids_and_workers_follow_the_machines_before_it() -> None:
    from harness.core.plan import Plan, Target
    from harness.run.shares import build_shares
    from workloads import load
    step = Step(0, conns=5, duration_s=None, messages=1000, listen=2)
    shares = split_step(step, [2, 2])
    places = machine_parts(step, shares, [2, 1], nodes=3)
    assert [(p.first_gid, p.first_worker, p.room_messages) for p in places] == \
        [(0, 0, 1000), (3 + 1 * 3, 2, 1000)]
    targets = tuple(Target("127.0.0.1", 5000 + i) for i in range(3))
    gids = []
    for share, place, workers in zip(shares, places, [2, 1], strict=True):
        plan = Plan(targets, (share,), workload="chat", workers=workers, part=place)
        built = build_shares(plan, share, load("chat"), 7)
        gids += [g for b in built for g in b.gids.tolist()]
        # every receiver here awaits the whole step's messages, not this machine's share
        assert [b.expect_deliveries for b in built] == [1000 * len(b.gids) for b in built]
    assert sorted(gids) == list(range(5 + 2 * 3))  # unique across the machines


def test_the_agents_samples_merge_as_one_machines_with_roles_renumbered_and_times_moved(
        ) -> None:
    from harness.run.agent import Part
    from harness.run.scaleout_agents import Machine
    from harness.run.scaleout_parts import merged_watched
    step = Step(0, conns=4, duration_s=1.0, messages=None)
    parts = []
    for name, t0 in (("a1", 5_000), ("a2", 9_000)):
        part = Part(name, step)
        part.resources = {f"worker{i}": {"cpu_pct_mean": 10.0 * (i + 1), "core": i,
                                         "others_on_core_pct": 40.0 * i} for i in range(2)}
        part.cores = {0: {"busy_pct_mean": 50.0, "others_pct_mean": 0.0},
                      1: {"busy_pct_mean": 90.0, "others_pct_mean": 40.0}}
        part.samples = [{"t_ns": t0 + k, "role": f"worker{k}", "cpu_pct": 1.0} for k in (1, 0)]
        parts.append((Machine("tcp://x", name, 2, 0, 0), part))
    w = merged_watched(parts, {"a1": 0, "a2": 2}, {"a1": 1_000, "a2": -3_000}, 6_000)
    assert {r: (v["machine"], v["core"]) for r, v in w.summary.items()} == {
        "worker0": ("a1", 0), "worker1": ("a1", 1), "worker2": ("a2", 0), "worker3": ("a2", 1)}
    assert sorted(w.cores) == ["a1/0", "a1/1", "a2/0", "a2/1"]
    assert [(r["role"], r["machine"], r["t_ns"]) for r in w.rows] == [
        ("worker0", "a1", 6_000), ("worker2", "a2", 6_000), ("worker1", "a1", 6_001),
        ("worker3", "a2", 6_001)]  # in our clock: a1 +1 µs, a2 -3 µs
    assert all(r["second"] == (r["t_ns"] - 6_000) / 1e9 for r in w.rows)
    from harness.analysis.bottleneck import resource_fields
    fields = resource_fields(w.summary, w.cores)
    assert fields["core_shared"] and fields["shared_core"]["role"] in ("worker1", "worker3")


# ---------------------------------------------------------------------------- a cluster


class Cluster:
    """A scheduler and named agents, each a subprocess of the real commands."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.agents: dict[str, subprocess.Popen] = {}
        self.address = ""
        # processes whose command is their child: ``unshare --fork`` ignores SIGTERM
        self.wrapped: list[subprocess.Popen] = []
        self.prefix_of: dict[str, list[str] | None] = {}  # agent name -> its command prefix
        self.killed: set[str] = set()  # agents a test killed on purpose (see :meth:`ensure`)

    def _spawn(self, args: list[str], name: str, prefix: list[str] | None = None,
               python: list[str] | None = None) -> subprocess.Popen:
        out = self.tmp / f"{name}.out"
        cmd = [*(prefix or []), *(python or [sys.executable, "-m", "harness"]), *args]
        p = subprocess.Popen(cmd, stdout=out.open("w"), stderr=(self.tmp / f"{name}.err").open("w"),
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        if prefix and prefix[0] == "unshare":
            self.wrapped.append(p)
        return p

    def _ready(self, p: subprocess.Popen, name: str) -> str:
        """The first output of ``name`` (started by :meth:`_spawn`), once it has some."""
        out = self.tmp / f"{name}.out"
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline and p.poll() is None:
            text = out.read_text()
            if text.strip():
                return text.strip()
            time.sleep(0.05)
        raise AssertionError(f"{name} did not start: {(self.tmp / f'{name}.err').read_text()}")

    def scheduler(self, host: str = "127.0.0.1", prefix: list[str] | None = None) -> str:
        args = ["cluster", "scheduler", "--host", host, "--port", "0"]
        line = self._ready(self._spawn(args, "scheduler", prefix), "scheduler")
        self.address = line.split()[-1]
        return self.address

    def agent(self, name: str, prefix: list[str] | None = None, host: str | None = None,
              python: list[str] | None = None) -> subprocess.Popen:
        """Agent ``name``, started, once its first line is out (see :meth:`agents_at_once`)."""
        p = self.agents_at_once({name: {"prefix": prefix, "host": host, "python": python}})
        return p[name]

    def agents_at_once(self, specs: dict[str, dict[str, Any]]) -> dict[str, subprocess.Popen]:
        """An agent per ``name: {prefix, host, python}`` (each optional), all started before
        any is waited for (each takes 1-3 s to import Dask), then each until its first line."""
        started = {}
        for name, spec in specs.items():
            args = ["agent", self.address, "--name", name]
            args += ["--host", spec["host"]] if spec.get("host") else []
            started[name] = self._spawn(args, name, spec.get("prefix"), spec.get("python"))
        for name, p in started.items():
            self._ready(p, name)
            self.agents[name] = p
            self.prefix_of[name] = specs[name].get("prefix")
        return started

    def wait_for(self, n: int) -> None:
        """Until ``n`` agents are registered with the scheduler."""
        with distributed.Client(self.address, timeout=10, set_as_default=False) as c:
            c.wait_for_workers(n, timeout=READY_S)

    def registered(self) -> set[str]:
        """The names of the agents registered with the scheduler now."""
        import inspect
        with distributed.Client(self.address, timeout=10, set_as_default=False) as c:
            every = ({"n_workers": -1} if "n_workers" in
                     inspect.signature(c.scheduler_info).parameters else {})
            return {str(w.get("name")) for w in c.scheduler_info(**every)["workers"].values()}

    def stop_agent(self, name: str) -> None:
        """Agent ``name`` stopped (if it still runs) and, within READY_S, let go by the
        scheduler: an agent of the same name is refused while the old one is registered."""
        p = self.agents.pop(name, None)
        if p is not None:
            self._stop([p])
        deadline = time.monotonic() + READY_S
        while name in self.registered():
            assert time.monotonic() < deadline, f"the scheduler still lists agent {name}"
            time.sleep(0.05)

    def ensure(self, wanted: dict[str, list[str] | None]) -> None:
        """Exactly the agents ``wanted`` (``name: prefix``, None for none) registered with the
        scheduler: one not wanted, killed on purpose or started with another prefix is
        stopped (see :meth:`stop_agent`), the missing ones started at once. An agent that
        exited when no test killed it fails the check."""
        dead = {n: p.returncode for n, p in self.agents.items()
                if p.poll() is not None and n not in self.killed}
        assert not dead, f"an agent of the module's cluster exited: {dead}"
        for name in list(self.agents):
            if name not in wanted or name in self.killed or self.prefix_of[name] != wanted[name]:
                self.stop_agent(name)
                self.killed.discard(name)
        missing = {n: {"prefix": prefix} for n, prefix in wanted.items() if n not in self.agents}
        if missing:
            self.agents_at_once(missing)
            self.wait_for(len(wanted))

    def _stop(self, procs: list[subprocess.Popen]) -> None:
        """``procs`` stopped: all asked at once (SIGTERM; a wrapped command's child asked
        itself), then each waited for (SIGKILL after 5 s); removed from :attr:`procs`."""
        import psutil
        children: list[psutil.Process] = []
        for p in procs:
            if p.poll() is None and p in self.wrapped:
                with contextlib.suppress(psutil.Error):
                    children += psutil.Process(p.pid).children()
            if p.poll() is None:
                p.terminate()
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        for p in procs:
            stop(p)
        for child in children:  # its wrapper gone, it would outlive us
            with contextlib.suppress(psutil.Error):
                child.kill()
        self.procs[:] = [p for p in self.procs if p not in procs]
        self.wrapped[:] = [p for p in self.wrapped if p not in procs]

    def close(self) -> None:
        """Every process: the agents first (so none waits for a gone scheduler), then the
        rest."""
        agents = [p for p in self.procs if p in self.agents.values()]
        self._stop(agents)
        self._stop(list(reversed(self.procs)))


@contextlib.contextmanager
def two_agents(tmp_path: Path) -> Iterator[Cluster]:
    """A scheduler and agents a1 and a2 of its own, both joined; all stopped afterwards
    (tests/test_live.py's cluster run: another module, so not :func:`module_cluster`)."""
    c = Cluster(tmp_path)
    try:
        c.scheduler()
        c.agents_at_once({"a1": {}, "a2": {}})
        c.wait_for(2)
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One scheduler for the module's tests on 127.0.0.1, and the agents the last of them
    asked for (see :meth:`Cluster.ensure`): starting a scheduler or an agent costs 1-3 s on
    the 2-core machines. The file orders its tests so that few agents are started again:
    those without agents first, then those with a1 and a2, then those that kill one or start
    one in another clock. All stopped afterwards."""
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.scheduler()
        yield c
    finally:
        c.close()


def view(shared: Cluster, tmp_path: Path) -> Cluster:
    """``shared`` (the same processes, lists and sets) with ``tmp_path`` for this test's runs'
    results and output."""
    v = copy.copy(shared)
    v.tmp = tmp_path
    return v


@pytest.fixture()
def cluster(module_cluster: Cluster, tmp_path: Path) -> Cluster:
    """The module's scheduler with agents a1 and a2 (plain, alive), with this test's folder
    for its runs' results and output (the processes are the shared ones)."""
    c = view(module_cluster, tmp_path)
    c.ensure({"a1": None, "a2": None})
    return c


@pytest.fixture()
def bare(module_cluster: Cluster, tmp_path: Path) -> Cluster:
    """The module's scheduler with no agent registered, with this test's folder."""
    c = view(module_cluster, tmp_path)
    c.ensure({})
    assert not c.registered()
    return c


def run_json(c: Cluster, *args: str, env: dict | None = None
             ) -> tuple[subprocess.CompletedProcess, dict | None]:
    """``harness run --cluster`` as a subprocess: a Dask client's threads stay in the process
    that made it, so not in the test's."""
    return support_run_json("--cluster", c.address, *args, cwd=c.tmp, env=env, process=True)


@pytest.mark.e2e
def test_an_agent_of_another_harness_version_is_one_line_and_exit_2(bare: Cluster) -> None:
    c = bare
    fake = ("import sys, harness, harness.run.agent as a; harness.__version__ = "
            "a.__version__ = '0.0.0-other'; from harness.cli import main; "
            "sys.argv[0] = 'harness'; main()")
    try:
        c.agent("old", python=[sys.executable, "-c", fake])
        c.wait_for(1)
        r, _ = run_json(c, "--conns", "2", "--duration", "0.3")
    finally:
        if "old" in c.agents:
            c.stop_agent("old")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "version mismatch" in r.stderr
    assert "harness 0.0.0-other" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.e2e
def test_a_scheduler_without_agents_is_exit_2(bare: Cluster) -> None:
    r, _ = run_json(bare, "--conns", "2", "--duration", "0.3")
    assert r.returncode == 2 and "no harness agent" in r.stderr, r.stderr


@pytest.mark.e2e
def test_a_cluster_run_splits_7_conns_4_and_3_and_its_merged_counts_are_the_sum(
        cluster: Cluster) -> None:
    r, doc = run_json(cluster, "--conns", "7", "--messages", "700", "--warmup", "0")
    assert doc is not None
    assert ran_ok(r.returncode, doc), r.stderr
    step = doc["steps"][0]
    assert step["sent"] == 700 and step["received"] == 700 and not step["partial"]
    parts = {m["machine"]: m for m in doc["cluster"]["steps"][0]["machines"]}
    assert sorted(m["conns"] for m in parts.values()) == [3, 4]
    assert sum(m["sent"] for m in parts.values()) == step["sent"]
    assert sum(m["received"] for m in parts.values()) == step["received"]
    machines = doc["cluster"]["machines"]
    assert {m["name"] for m in machines} == {"a1", "a2"}
    assert all(abs(m["clock_offset_ms"]) < 1000 for m in machines)  # one host: one clock


@pytest.mark.e2e
def test_the_scheduler_and_agents_listen_only_on_the_address_given_or_routed(
        cluster: Cluster) -> None:
    import psutil
    for p in cluster.procs:
        listening = [c.laddr for c in psutil.Process(p.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(a.ip == "127.0.0.1" for a in listening), listening


@pytest.mark.e2e
def test_a_timed_cluster_step_adds_each_machines_counts(cluster: Cluster) -> None:
    r, doc = run_json(cluster, "--conns", "4", "--duration", "0.5", "--warmup", "0.2")
    assert doc is not None
    assert ran_ok(r.returncode, doc), r.stderr
    step, parts = doc["steps"][0], doc["cluster"]["steps"][0]["machines"]
    assert [m["conns"] for m in parts] == [2, 2]
    assert step["received"] == sum(m["received"] for m in parts) > 0
    assert step["sent"] == sum(m["sent"] for m in parts)


@pytest.mark.e2e
def test_each_agent_samples_its_workers_and_cores_so_a_busy_core_leaves_the_step_unjudged(
        cluster: Cluster) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--cluster", cluster.address, "--json",
         "--no-report", "--results-dir", str(cluster.tmp / "results"), "--conns", "4",
         "--duration", "1", "--warmup", "0.2", "--monitor-interval", "0.1"],
        cwd=cluster.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    hog = None
    try:
        # once every agent's workers are connected: the step starts scaleout.LEAD_S (1 s) after
        # the last reported them, so the core is busy well before the measure window opens
        _wait_measuring(proc.pid, {p.pid: 2 for p in cluster.agents.values()}, 0)
        hog = subprocess.Popen(  # bounded: one core busy for at most 20 s
            [sys.executable, "-c", "import os, time\nos.sched_setaffinity(0, {0})\n"
             "end = time.monotonic() + 20\nwhile time.monotonic() < end: pass"])
        out, err = proc.communicate(timeout=60)
    finally:
        if hog is not None:
            stop(hog)
        if proc.poll() is None:
            proc.kill()
    doc = json.loads(out) if out.strip() else None
    assert doc is not None, err
    step = doc["steps"][0]
    workers = {role: v for role, v in step["resources"].items() if role.startswith("worker")}
    assert len(workers) == len(step["client_cpu_pct_per_worker"]) >= 2
    assert {v["machine"] for v in workers.values()} == {"a1", "a2"}
    assert all(v["samples"] >= 5 and v["cpu_pct_mean"] is not None and v["core"] is not None
               for v in workers.values()), workers
    assert {k.split("/")[0] for k in step["machine_cpu"]} == {"a1", "a2"}
    assert step["core_shared"] and step["shared_core"]["others_pct"] >= 30, step["shared_core"]
    assert doc["degradation"]["judged"] == 0
    assert "shared core" in doc["degradation"]["skipped_why"]


@pytest.mark.e2e
def test_a_start_that_cannot_be_kept_is_refused_and_the_step_marked_partial(
        cluster: Cluster) -> None:
    env = dict(os.environ, HARNESS_CLUSTER_LEAD_S="0")
    r, doc = run_json(cluster, "--conns", "4", "--duration", "0.5", "--warmup", "0.2",
                      env=env)
    assert r.returncode == 1, r.stderr
    assert "refused step 0: late by" in r.stderr
    assert doc is not None and doc["partial"]


def _chat_nodes(tmp: Path, bind: str = "127.0.0.1") -> tuple[subprocess.Popen, list[str]]:
    """``harness serve chat --nodes 3`` (one room over three nodes): its addresses."""
    out = tmp / "chat.out"
    p = subprocess.Popen([sys.executable, "-m", "harness", "serve", "chat", "--nodes", "3",
                          "--bind", bind, "--port", "0"], stdout=out.open("w"),
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline and out.read_text().count("listening on") < 3:
        time.sleep(0.05)
    return p, [line.split()[2] for line in out.read_text().splitlines()
               if line.startswith("listening on")]


CHAT_PLAN = ("--workload", "chat", "--conns", "4", "--listen", "2", "--messages", "1000",
             "--warmup", "0")  # m (s + n) = 1000 x (4 + 2 x 3), node 0 holding the senders


def assert_exact_fanout(doc: dict, per_node: tuple[int, ...] = (6000, 2000, 2000)) -> None:
    step = doc["steps"][0]
    assert step["deliveries_expected"] == step["deliveries"] == sum(per_node)
    assert step["lost"] == 0 and step["duplicates"] == 0
    assert [n["deliveries"] for n in step["per_node"]] == list(per_node)
    assert all(n["lost"] == n["surplus"] == n["duplicates"] == 0 for n in step["per_node"])
    assert step["fanout_complete"] == 1000
    assert 0 <= step["fanout_ms"]["p50"] <= step["fanout_ms"]["max"] < 10_000


@pytest.mark.e2e
def test_a_chat_fan_out_over_two_machines_delivers_exactly_m_times_s_plus_n(
        cluster: Cluster) -> None:
    server, nodes = _chat_nodes(cluster.tmp)
    try:
        r, doc = run_json(cluster, *CHAT_PLAN, "--host", ",".join(nodes))
    finally:
        stop(server)
    assert doc is not None
    assert ran_ok(r.returncode, doc), r.stderr
    assert_exact_fanout(doc)
    rows = doc["cluster"]["steps"][0]["machines"]
    assert [m["conns"] for m in rows] == [2, 2]
    # each machine's receivers (2 senders on node 0, 1 listener per node) await all 1000
    assert [m["deliveries_expected"] for m in rows] == [5000, 5000]
    assert [m["deliveries"] for m in rows] == [5000, 5000]
    assert all(m["lost"] == 0 for m in rows)


def _wait_measuring(run_pid: int, conns_of: dict[int, int], after_s: float,
                   within_s: float = 30.0) -> None:
    """Once each agent ``pid: conns`` of ``conns_of`` has its workers hold their ``conns``
    connections to the embedded server that run ``run_pid`` listens with, and ``after_s``
    more. The run's agreed start is then at most scaleout.LEAD_S (1 s) ahead: it is that far
    past the moment the last agent reported its connections. A fixed sleep from the run's
    start could land before the step on a busy machine, leaving no step to be partial."""
    import psutil
    deadline = time.monotonic() + within_s
    port = 0
    while not port and time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(run_pid)
            port = next((c.laddr.port for p in (root, *root.children(recursive=True))
                         for c in p.net_connections("tcp") if c.status == psutil.CONN_LISTEN), 0)
        time.sleep(0.02)
    assert port, f"run {run_pid} listened on no port within {within_s:g} s"
    for agent_pid, conns in conns_of.items():
        wait_process_connections(agent_pid, port, conns, max(deadline - time.monotonic(), 0.1))
    time.sleep(after_s)


def start_run(cluster: Cluster, duration: float) -> subprocess.Popen:
    """A 4-connection run of ``duration`` s on ``cluster``, its JSON on stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--cluster", cluster.address, "--json",
         "--no-report", "--results-dir", str(cluster.tmp / "results"), "--conns", "4",
         "--duration", f"{duration:g}", "--warmup", "0.2"],
        cwd=cluster.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.e2e
def test_ctrl_c_mid_step_stops_every_agent_and_keeps_what_they_measured(
        cluster: Cluster) -> None:
    proc = start_run(cluster, 60)
    try:
        # measuring: past the 1 s lead and the 0.2 s warm-up, by 0.5 s
        _wait_measuring(proc.pid, {p.pid: 2 for p in cluster.agents.values()}, 1.7)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=40)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "interrupted" in err and took < 20
    doc = json.loads(out)
    assert doc["partial"] and doc["steps"][0]["received"] > 0
    rows = doc["cluster"]["steps"][0]["machines"]
    assert len(rows) == 2 and all(m["received"] > 0 for m in rows)


@pytest.mark.e2e
def test_an_agent_killed_mid_run_is_named_at_once_and_the_others_data_kept(
        cluster: Cluster) -> None:
    victim = cluster.agents["a2"]
    cluster.killed.add("a2")  # the next test using the cluster starts it again
    proc = start_run(cluster, 2)
    try:
        # a2's share of the 4, and 1 s: about the agreed start, inside the 2.2 s step
        _wait_measuring(proc.pid, {victim.pid: 2}, 1.0)
        killed = time.time_ns()
        os.kill(victim.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "machine a2" in err and "lost mid-step" in err
    doc = json.loads(out)
    assert doc["partial"] and doc["steps"][0]["partial"]
    rows = {m["machine"]: m for m in doc["cluster"]["steps"][0]["machines"]}
    assert rows["a1"]["received"] > 0
    assert doc["steps"][0]["received"] == rows["a1"]["received"]
    assert rows["a2"]["lost"] and rows["a2"]["noticed_wall_ns"] - killed < 1.5e9


def _other_clock() -> list[str]:
    """A command prefix that runs its command with a monotonic clock 100,000 s ahead (a
    time namespace): as on another host, whose monotonic clock counts from its own boot."""
    prefix = ["unshare", "--time", "--fork", "--monotonic", "100000"]
    try:
        r = subprocess.run([*prefix, sys.executable, "-c", "import time; print(time.monotonic())"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"time namespaces cannot be created here: {exc}")
    if r.returncode or float(r.stdout) < time.monotonic() + 99_000:
        pytest.skip(f"time namespaces cannot be created here: {r.stderr.strip()}")
    return prefix


@pytest.mark.e2e
def test_a_chat_fan_out_is_exact_when_the_machines_monotonic_clocks_differ(
        module_cluster: Cluster, tmp_path: Path) -> None:
    prefix = _other_clock()
    c = view(module_cluster, tmp_path)
    server, nodes = _chat_nodes(tmp_path)
    try:
        c.ensure({"a1": None, "a2": prefix})  # a2 in the other clock
        r, doc = run_json(c, *CHAT_PLAN, "--host", ",".join(nodes))
        # a timed open-loop step with a warm-up: its window edges judged in each sender's clock
        timed, tdoc = run_json(c, "--workload", "chat", "--host", ",".join(nodes), "--conns",
                               "4", "--listen", "1", "--rate", "50", "--duration", "1",
                               "--warmup", "0.5")
    finally:
        stop(server)
    assert doc is not None
    assert ran_ok(r.returncode, doc), r.stderr
    assert_exact_fanout(doc)  # fan-out times in one clock: not 100,000 s apart
    assert tdoc is not None and ran_ok(timed.returncode, tdoc), timed.stderr
    t = tdoc["steps"][0]
    assert t["sent"] > 0 and t["deliveries"] == t["deliveries_expected"] == t["sent"] * 7
    assert t["lost"] == t["surplus"] == t["duplicates"] == 0
    assert all(m["start_late_us"] < 1e6 for m in doc["cluster"]["steps"][0]["machines"])


def test_a_scheduler_address_needs_a_scheme_a_host_and_a_port() -> None:
    from harness.run.agent import is_address
    assert is_address("tcp://10.0.0.1:8786") and is_address("tls://[::1]:8786")
    for bad in ("nonsense", "10.0.0.1:8786", "tcp://10.0.0.1", "tcp://:8786", "udp://a:1",
                "tcp://a:0", "tcp://a:8786/x"):
        assert not is_address(bad), bad


@pytest.mark.e2e
def test_a_bad_scheduler_address_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = harness_process("run", "--cluster", "nonsense", "--conns", "1", "--duration", "0.2",
                        cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "not a scheduler address" in r.stderr


@pytest.mark.e2e
def test_cluster_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    (blocker / "distributed").mkdir(parents=True)
    (blocker / "distributed" / "__init__.py").write_text("raise ImportError('blocked')\n")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=f"{blocker}:{root}")
    r = harness_process("run", "--cluster", "tcp://127.0.0.1:1", "--conns", "1", "--duration",
                        "0.2", cwd=tmp_path, env=env)
    assert r.returncode == 2, r.stderr
    assert "pip install 'harness[cluster]'" in r.stderr and "Traceback" not in r.stderr
    r = harness_process("agent", "tcp://127.0.0.1:1", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "harness[cluster]" in r.stderr


# ---------------------------------------------------------------------------- netns hosts


class Hosts:
    """``n`` network namespaces as client hosts on one bridge (unique names, removed in
    ``close``); the bridge's address is the coordinating host's."""

    def __init__(self, n: int) -> None:
        tag = f"{os.getpid() % 10000}{int(time.time() * 1000) % 100}"
        self.net = f"10.213.{os.getpid() % 250}"
        self.bridge = f"hbr{tag}"
        self.names = [f"hns{tag}{i}" for i in range(n)]
        self.veths = [f"hv{tag}{i}" for i in range(n)]
        self.gateway = f"{self.net}.1"

    def addr(self, i: int) -> str:
        return f"{self.net}.{10 + i}"

    def create(self) -> None:
        ip = ["ip"]
        _sh(*ip, "link", "add", self.bridge, "type", "bridge")
        _sh(*ip, "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _sh(*ip, "link", "set", self.bridge, "up")
        for i, (ns, veth) in enumerate(zip(self.names, self.veths, strict=True)):
            peer = f"{veth}p"
            _sh(*ip, "netns", "add", ns)
            _sh(*ip, "link", "add", veth, "type", "veth", "peer", "name", peer)
            _sh(*ip, "link", "set", peer, "netns", ns)
            _sh(*ip, "link", "set", veth, "master", self.bridge, "up")
            _sh(*ip, "netns", "exec", ns, "ip", "addr", "add", f"{self.addr(i)}/24", "dev", peer)
            _sh(*ip, "netns", "exec", ns, "ip", "link", "set", peer, "up")
            _sh(*ip, "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i]]

    def close(self) -> None:
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    h = Hosts(3)
    try:
        h.create()
    except (OSError, subprocess.SubprocessError) as exc:
        h.close()
        pytest.skip(f"network namespaces cannot be created here: {exc}")
    try:
        yield h
    finally:
        h.close()


@pytest.fixture(scope="module")
def three_hosts(hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler on the gateway and an agent in each namespace host, shared by the
    module's namespace tests (each brings its own server)."""
    c = Cluster(tmp_path_factory.mktemp("netns"))
    try:
        _three_hosts(c, hosts)
        yield c
    finally:
        c.close()


@pytest.fixture()
def ns_cluster(three_hosts: Cluster, tmp_path: Path) -> Cluster:
    """The namespace hosts' cluster, its agents checked alive, with this test's folder."""
    dead = {n: p.returncode for n, p in three_hosts.agents.items() if p.poll() is not None}
    assert not dead, f"an agent of the namespace hosts exited: {dead}"
    view = copy.copy(three_hosts)
    view.tmp = tmp_path
    return view


def _echo_server(tmp: Path, bind: str) -> tuple[subprocess.Popen, str]:
    out = tmp / "echo.out"
    p = subprocess.Popen([sys.executable, "-m", "harness", "serve", "echo", "--bind", bind,
                          "--port", "0"], stdout=out.open("w"), stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline and not out.read_text().strip():
        time.sleep(0.05)
    return p, out.read_text().split()[2]


def _three_hosts(c: Cluster, hosts: Hosts) -> None:
    """A scheduler on the gateway and an agent in each of the three namespace hosts."""
    c.scheduler(hosts.gateway)
    c.agents_at_once({f"host{i}": {"prefix": hosts.prefix(i), "host": hosts.addr(i)}
                      for i in range(3)})
    c.wait_for(3)


@pytest.mark.e2e
def test_three_namespace_hosts_merge_to_the_counts_of_one_host_running_the_plan(
        tmp_path: Path, hosts: Hosts, ns_cluster: Cluster) -> None:
    server, target = _echo_server(tmp_path, hosts.gateway)
    try:
        plan = ["--host", target, "--conns", "6", "--messages", "600", "--warmup", "0"]
        r, doc = run_json(ns_cluster, *plan)
        one = harness_process("run", "--json", "--no-report", "--results-dir",
                              str(tmp_path / "one"), "--workers", "2", *plan, cwd=tmp_path)
    finally:
        stop(server)
    assert doc is not None
    assert ran_ok(r.returncode, doc), r.stderr
    assert ran_ok(one.returncode, json.loads(one.stdout)), one.stderr
    merged, single = doc["steps"][0], json.loads(one.stdout)["steps"][0]
    for key in ("conns", "sent", "received", "lost", "duplicates", "errors"):
        assert merged[key] == single[key], key
    assert merged["sent"] == merged["received"] == 600
    rows = doc["cluster"]["steps"][0]["machines"]
    assert sorted(m["machine"] for m in rows) == ["host0", "host1", "host2"]
    assert [m["conns"] for m in rows] == [2, 2, 2]
    assert sum(m["received"] for m in rows) == 600


@pytest.mark.e2e
def test_a_chat_fan_out_across_three_namespace_hosts_delivers_exactly_m_times_s_plus_n(
        tmp_path: Path, hosts: Hosts, ns_cluster: Cluster) -> None:
    server, nodes = _chat_nodes(tmp_path, hosts.gateway)
    try:
        r, doc = run_json(ns_cluster, "--workload", "chat", "--host", ",".join(nodes),
                          "--conns", "6", "--listen", "3", "--messages", "1000", "--warmup", "0")
    finally:
        stop(server)
    assert doc is not None
    assert ran_ok(r.returncode, doc), r.stderr
    # 1000 x (6 senders + 3 listeners on each of 3 nodes); node 0 holds the senders
    assert_exact_fanout(doc, (9000, 3000, 3000))
    rows = doc["cluster"]["steps"][0]["machines"]
    assert [m["conns"] for m in rows] == [2, 2, 2]
    assert [m["deliveries"] for m in rows] == [5000] * 3 and all(m["lost"] == 0 for m in rows)
