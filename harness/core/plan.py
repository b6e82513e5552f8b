"""The run plan: frozen values built by ``config`` and handed unchanged to the coordinator.

Units: seconds (``*_s``), messages per second per connection (``rate``), bytes (``size``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    """A raw-TCP ``host:port`` (scheme "tcp"), or an ``http://``, ``https://`` or
    ``ws://host:port/path`` URL."""

    host: str
    port: int
    scheme: str = "tcp"  # "tcp" | "http" | "https" | "ws" | "wss" (over TLS) | "redis"
    path: str = ""  # an http(s) or ws target's path ("/" when the URL has none)

    @property
    def label(self) -> str:
        hp = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return hp if self.scheme == "tcp" else f"{self.scheme}://{hp}{self.path}"


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS for every connection (an ``https://`` target, or ``--tls``): verify the server's
    certificate against ``ca_pem`` (the text of ``--ca FILE``), else the system store, or
    not at all (``insecure``). The server name sent (SNI) and checked is the target's host."""

    ca_pem: str = ""
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Pacing:
    """Closed loop keeps ``inflight`` messages outstanding per connection (after a think
    time drawn uniformly from [``think_s``, ``think_max_s``]; constant when the two are
    equal, and ``think_max_s`` below ``think_s`` means equal); open loop sends ``rate``
    messages/s per connection on a schedule fixed in advance."""

    mode: str = "closed"  # "closed" | "open"
    inflight: int = 1
    rate: float = 0.0
    think_s: float = 0.0
    think_max_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Stage:
    """Load that holds for ``duration_s`` inside one step's measure window."""

    duration_s: float
    conns: int
    rate: float = 0.0  # open loop msgs/s per connection (0: closed loop)
    label: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    conns: int  # connections that send (and, for broadcast workloads, receive)
    duration_s: float | None  # measure window; None when ``messages`` ends the step
    messages: int | None  # total messages for the step, spread over the senders
    rate: float = 0.0  # open loop msgs/s per connection for this step (0: closed loop)
    listen: int = 0  # extra listen-only connections per target node (chat fan-out)
    stages: tuple[Stage, ...] = ()  # load changing over time; conns is then the largest


@dataclass(frozen=True, slots=True)
class Degradation:
    max_error_rate: float = 0.01  # errors / messages sent
    max_p99_ms: float | None = None  # absolute p99 limit
    p99_factor: float | None = 10.0  # p99 above this many times the first step's p99; None: off
    min_gain: float = 0.25  # marginal msgs/s per added conn, relative to the previous average


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_lost: int | None = 0
    max_error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    min_throughput: float | None = None
    max_server_cpu_pct: float | None = None  # of one core, the step's highest sample
    max_server_rss_mb: float | None = None


@dataclass(frozen=True, slots=True)
class MachinePart:
    """``--cluster``: where one machine's share sits in the whole step
    (:mod:`harness.run.scaleout`), so that stamps from every machine are told apart."""

    first_gid: int = 0  # its first connection id (ids are unique across the machines)
    first_worker: int = 0  # its first worker index (the stamps' ``worker``)
    room_messages: int | None = None  # broadcast: the whole step's messages (all machines)


@dataclass(frozen=True, slots=True)
class Plan:
    targets: tuple[Target, ...]
    steps: tuple[Step, ...]
    workload: str = "echo"
    framing: str = "len32"
    size: int = 64
    max_frame: int = 1 << 20
    pacing: Pacing = field(default_factory=Pacing)
    warmup_s: float = 1.0
    timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    connect_rate: float = 0.0  # connections/s per step, 0 = as fast as possible
    workers: int = 1
    push_hosts: tuple[int, ...] = ()  # target indices senders connect to; () = every target
    # round-robin for echo-style workloads, the first for broadcast (run.shares.build_shares)
    seed: int = 1
    name: str = "run"
    results_dir: str = "results"
    degradation: Degradation = field(default_factory=Degradation)
    thresholds: Thresholds = field(default_factory=Thresholds)
    embedded: str | None = None  # built-in server kind started by harness itself
    until_degraded: bool = False  # keep adding steps until the degradation rule fires
    grow: str = "double"  # "double" or "add" (by ``increment`` connections)
    increment: int = 0
    max_conns: int = 10000  # bound for until_degraded
    scenario: str | None = None
    env: str | None = None
    server_pid: int | None = None  # a target server process to watch (psutil)
    server_cmd: str | None = None  # a command harness starts, watches and stops
    monitor_interval_s: float = 1.0
    shared_core_pct: float = 30.0  # others took this % of a worker's or the server's core:
    # the step is on a shared core, left out of the verdict (unless judge_shared_core)
    judge_shared_core: bool = False  # judge such steps all the same, marked as such
    mix: tuple = ()  # workloads.Kind values from [mix]: they replace the workload's kinds
    mix_by: str = "message"  # "message": each message drawn by weight; "connection": per conn
    requests: tuple = ()  # harness.wire.reqtable.Rendered: an HTTP run's [[requests]] table
    users: tuple = ()  # harness.core.users.UserClass: [[users]] classes (their requests in
    # requests)
    corpus: tuple[bytes, ...] = ()  # payload lines (after the stamp), from --corpus FILE
    size_spec: int | tuple[int, int] | list[int] | None = None  # --size: int, (lo, hi), list
    source_addrs: tuple[str, ...] = ()  # local IPv4 addresses to spread connections over
    accept: tuple[int, ...] = tuple(range(200, 300))  # HTTP codes that are not errors
    tls: Tls | None = None  # TLS on every connection (https://, or --tls); None: plain TCP
    baseline: str | None = None  # a run folder to compare with when the run ends
    # The run's protocol's part of the plan (harness.protocols.spec.Spec.plan_options): the
    # object its wire reads its own settings from (a protocol adds no field here; WebSocket's:
    # harness.protocols.ws.settings.WsPlan).
    options: Any = None
    part: MachinePart | None = None  # --cluster: this machine's place in the step (an agent's)
