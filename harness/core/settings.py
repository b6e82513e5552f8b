"""Every flag of ``harness run`` (and ``search``) is declared once, as a :class:`Setting`: its
harness.toml key, type, range, built-in default, help and group for ``-h``, and the runs it
applies to. The core's are here (``CORE``); each protocol declares its own in its package of
the registry (``Spec.settings``, harness.protocols), and TLS, a layer, in
harness.protocols.layers. :mod:`harness.config.table` puts them together: the run's table.

From that one table come the click options and the grouped ``-h`` (:mod:`harness.config.help`),
the type and range checks of flags and [run] keys, the built-in defaults of [run]
(harness/config/default.toml holds the other tables and the presets), and the flag table of
the docs, which tests/test_settings.py keeps in step. Nothing here imports click or another
harness module.

To add a flag: one ``Setting`` in CORE (or in its protocol's ``SETTINGS``), in its group; a
row in the docs' flag table with the default ``-h`` shows; then read it where it is used: a
[run] key from the merged settings in :func:`harness.config.build.build_plan` (a protocol's
own: from ``Plan.options``, its part of the plan), a flag only as the parameter
``Setting.name`` of ``run`` (and of ``search`` unless ``search=False``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

MAX_CONNS = 1_000_000
MAX_MESSAGES = 10**12  # per step
MAX_INT64 = 2**63 - 1  # run.json holds every value as a JSON number a 64-bit reader can take
DAY_S = 86_400.0
FRAMINGS = ("newline", "len16", "len32")
# Option groups of `run --help`, in the order shown.
GROUPS = ("Search", "Target", "Load", "Pacing", "Step", "Measurement", "Output", "Capacity",
          "Config", "Other")


@dataclass(frozen=True, slots=True)
class Spec:
    """What a setting may hold: ``kind`` is the TOML type (int, float, bool, str, ints: an
    int, a list of ints or a comma string, size: an int, a "LO-HI" or comma string or a list
    of ints, strs: a string or a list of strings, think: seconds or a "LO-HI" string),
    ``lo``/``hi`` the range of a number. A float setting whose ``zero_or`` is set takes 0
    (off) or a value in [zero_or, hi]."""

    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    zero_or: float | None = None


# The runs a setting applies to, and that said as a phrase. A run is "ws" (ws://, wss:// or
# the embedded --ws server), "http" (http://, https://), "redis" or "memcached" (those
# workloads), "tcp" (raw host:port) or "embedded" (the built-in raw server). A setting given
# (not its default) to another run is exit 2.
Applies = tuple[frozenset[str], str]


@dataclass(frozen=True, slots=True)
class Setting:
    """One flag of ``run``. With a ``spec`` it is also the [run] key of harness.toml named
    like the flag (``--connect-timeout`` <-> ``connect_timeout``), whose built-in value is
    ``default`` (a tuple stands for a TOML list); without one it is a flag only (``--json``).

    ``choices``: the values click takes; ``dest``: the click parameter, when not the key;
    ``negatable``: also ``--no-FLAG``; ``switch``: a flag-only on/off; ``repeatable``: given
    once per value, every one kept in order; ``path``: a file name; ``optional_value``: the
    flag may be given without a value, which stands for this one; ``search``: also a flag of
    ``search``; ``applies``: the runs it applies to (None: every run); ``protocol``: the
    protocol that declares it ("" for the core)."""

    flag: str
    group: str
    help: str
    spec: Spec | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    dest: str | None = None
    metavar: str | None = None
    negatable: bool = False
    switch: bool = False
    repeatable: bool = False
    path: bool = False
    optional_value: str | None = None  # the value of the flag given alone (--live)
    search: bool = True
    applies: Applies | None = None
    protocol: str = ""

    @property
    def key(self) -> str | None:
        """The harness.toml [run] key (None for a flag only)."""
        return self.flag[2:].replace("-", "_") if self.spec is not None else None

    @property
    def name(self) -> str:
        """The click parameter the flag's value goes to."""
        return self.dest or self.flag[2:].replace("-", "_")

    @property
    def shown_default(self) -> str:
        """The built-in default as ``-h`` and the docs' flag table say it."""
        return shown(self.default) if self.spec is not None else "off" if self.switch else "none"

    @property
    def toml_default(self) -> Any:
        """The built-in [run] value as TOML gives it (a list, not a tuple)."""
        return list(self.default) if isinstance(self.default, tuple) else self.default


def shown(value: Any) -> str:
    """A setting's value as text: a list joined by commas, on/off, "none" for empty."""
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value)) or "none"
    elif isinstance(value, bool):
        value = "on" if value else "off"
    return str(value) if value != "" else "none"


def number_text(x: float) -> str:
    """A bound as the docs write it: 2^30, 2^63-1, 10^12, 1,000,000, 0.001."""
    if x != int(x):
        return f"{x:g}"
    n = int(x)
    for power in range(16, 64):
        if n in (2**power, 2**power - 1):
            return f"2^{power}" + ("-1" if n % 2 else "")
    if n >= 10**9 and str(n).rstrip("0") == "1":
        return f"10^{len(str(n)) - 1}"
    return f"{n:,}"


def range_text(spec: Spec | None) -> str:
    """A number setting's range as the docs' flag table says it ("" for none): ``1 to
    1,000,000``, or ``0 or 0.001 to 1,000,000`` for a setting whose 0 means off."""
    if spec is None or math.isinf(spec.hi):
        return ""
    lo = spec.lo if spec.zero_or is None else spec.zero_or
    return ("0 or " if spec.zero_or is not None else "") + \
        f"{number_text(lo)} to {number_text(spec.hi)}"


def int_range(lo: float, hi: float) -> Spec:
    """An integer setting in [lo, hi]."""
    return Spec("int", lo, hi)


def float_range(lo: float, hi: float, zero_or: float | None = None) -> Spec:
    """A number setting in [lo, hi] (or 0, off, when ``zero_or`` is the lowest value on)."""
    return Spec("float", lo, hi, zero_or)


_int, _float = int_range, float_range


STR, BOOL = Spec("str"), Spec("bool")


def tagged(protocol: str, settings: Iterable[Setting]) -> tuple[Setting, ...]:
    """A protocol's settings, each marked as that protocol's."""
    return tuple(replace(s, protocol=protocol) for s in settings)


CORE: tuple[Setting, ...] = (
    Setting("--config", "Config", "a config file (a plan) layered over ./harness.toml, which "
            "is layered over the built-in defaults; flags override all three",
            dest="config_path", path=True),
    Setting("--plan", "Config", "a plan shipped with harness, by name (harness plans lists "
            "them), in --config's place", dest="plan_name", metavar="NAME"),
    Setting("--push-conns", "Load", "alias of --conns for fan-out runs"),
    Setting("--json", "Output", "print the run summary as JSON on stdout instead of the table",
            dest="as_json", switch=True, search=False),
    Setting("--no-report", "Output", "skip the HTML report", switch=True, search=False),
    Setting("--pushgateway", "Output", "push the figures to a Prometheus Pushgateway after "
            "each step and at the end (a failure is a warning)", metavar="URL", search=False),
    Setting("--env", "Measurement", "apply [env.NAME] threshold/degradation overrides",
            dest="env_name", search=False),
    Setting("--scenario", "Capacity", "a [scenarios.NAME] preset (built-in: smoke, baseline, "
            "load, stress, ramp, spike, soak, reconnect-storm) or one from harness.toml",
            search=False),
    Setting("--max-regression", "Output", "with a baseline: limits, e.g. p99=10%,"
            "throughput=5% (default p50=10%,p90=15%,p99=25%,p999=50%,throughput=10%,"
            "errors=0.1%,lost=0)", search=False),
    Setting("--alert-on", "Output", "send the [alerts] of harness.toml (or --config) on "
            "failure only, or after every run (overrides [alerts] on)",
            choices=("failure", "always"), search=False),
    Setting("--junit", "Output", "write JUnit XML of the thresholds (and regressions) to FILE",
            dest="junit_path", search=False),
    Setting("--cluster", "Target", "run on the harness agents of this Dask scheduler, e.g. "
            "tcp://COORD:8786: the plan split by their cores, each step started together "
            "(needs harness[cluster])", search=False),
    Setting("--live", "Output", "serve a live page of the run (alone: 127.0.0.1, a free "
            "port; its address is printed on stderr)", metavar="[HOST:PORT]",
            optional_value="127.0.0.1:0", search=False),
    Setting("--live-linger", "Output", "keep the live page up S more seconds after the run "
            "(needs --live; at most a day)", metavar="S", search=False),
    Setting("--judge-shared-core", "Measurement", "judge steps on a shared core all the same "
            "(a shared CI runner), marked as judged on one", BOOL, False),
    Setting("--until-degraded", "Capacity", "keep adding steps until the degradation rule "
            "fires (--no-until-degraded: only the steps listed, e.g. a plan's first step with "
            "--conns N)", BOOL, False, negatable=True, search=False),
    Setting("--host", "Target", "target host:port, [v6]:port, http(s)://host:port/path, or a "
            "comma list of nodes; host:FIRST-LAST is a pool, one node per port; none = start "
            "the embedded server", STR, ""),
    Setting("--server-cmd", "Target", "a command that starts a local server: watched, stopped "
            "afterwards", STR, ""),
    Setting("--workload", "Target", "echo, chat, or path/to/workload.py", STR, "echo"),
    Setting("--framing", "Target", "message framing (len16/len32: big-endian length prefix)",
            STR, "len32", choices=FRAMINGS),
    Setting("--max-frame", "Target", "largest frame accepted from the server, bytes (16 to "
            "2^30)", _int(16, 1 << 30), 1 << 20),
    Setting("--source-addrs", "Target", "local IPv4 addresses to spread connections over: a "
            "comma list of addresses, ranges (127.0.0.1-127.0.0.8) and CIDR blocks "
            "(127.0.0.0/24); automatic past 12,000 per loopback destination", Spec("strs"), ""),
    Setting("--conns", "Load", "connection counts to sweep, e.g. 10,100,1000 (1 to "
            "1,000,000)", Spec("ints", 1, MAX_CONNS), (10, 100, 1000)),
    Setting("--messages", "Load", "messages per step in total (a list sweeps); ends each step "
            "instead of --duration", Spec("ints", 1, MAX_MESSAGES), (), search=False),
    Setting("--workers", "Load", "worker processes (0 = usable cores, less one for an "
            "embedded server, or more when the open-files limit needs them)", _int(0, 1024), 0),
    Setting("--size", "Load", "bytes per message on the wire, framing included: N, LO-HI or "
            "N,N,...", Spec("size"), 64),
    Setting("--corpus", "Load", "payloads from a file, one per line, after the stamp", STR, ""),
    Setting("--listen", "Load", "listen-only connections per node (broadcast workloads)",
            _int(0, 100_000), 0),
    Setting("--push-hosts", "Load", "node indices the sending connections go to, e.g. 0,1",
            Spec("ints", 0, 1023), ()),
    Setting("--seed", "Load", "seed for schedules and payloads", _int(0, MAX_INT64), 1),
    Setting("--inflight", "Pacing", "closed loop: messages outstanding per connection",
            _int(1, 1_000_000), 1),
    Setting("--rate", "Pacing", "open loop: messages/s per connection on a fixed schedule "
            "(0.001 to 1e6; 0 = closed loop)", _float(0, 1e6, zero_or=0.001), 0.0),
    Setting("--think", "Pacing", "closed loop: seconds a connection waits after each reply: "
            "2, or 1-5 (uniform), 0 to 3600; needs --inflight 1", Spec("think", 0, 3600), 0.0),
    Setting("--connect-rate", "Pacing", "new connections per second (0 = as fast as "
            "possible)", _float(0, 1e7, zero_or=0.01), 0.0),
    Setting("--duration", "Step", "seconds of the measure window per step",
            _float(0.001, 7 * DAY_S), 10.0),
    Setting("--warmup", "Step", "seconds of warm-up before each measure window",
            _float(0, 3600), 1.0),
    Setting("--timeout", "Step", "reply timeout, seconds (0.001 to 3600)", _float(0.001, 3600),
            5.0),
    Setting("--connect-timeout", "Step", "connect timeout, seconds (0.001 to 3600)",
            _float(0.001, 3600), 5.0),
    Setting("--server-pid", "Measurement", "a server process to watch (CPU, memory, threads, "
            "fds; 0 = none)", _int(0, 2**31 - 1), 0),
    Setting("--monitor-interval", "Measurement", "seconds between resource samples (0.05 to "
            "60)", _float(0.05, 60), 1.0),
    Setting("--shared-core-pct", "Measurement", "a step where other processes took this % of "
            "a worker's or the server's core is on a shared core, not judged (1 to 100)",
            _float(1, 100), 30.0),
    Setting("--name", "Output", "run name, used in the results folder", STR, "run",
            search=False),
    Setting("--baseline", "Output", "a run folder to compare with when the run ends (exit 1 "
            "on a regression beyond --max-regression, 2 when the runs differ)", STR, "",
            search=False),
    Setting("--results-dir", "Output", "where results/<UTC time>-<name>/ goes", STR, "results",
            search=False),
    Setting("--grow", "Capacity", "--until-degraded: double the connections each step, or add "
            "--increment", STR, "double", choices=("double", "add"), search=False),
    Setting("--increment", "Capacity", "--until-degraded with --grow add: connections added "
            "per step", _int(0, MAX_CONNS), 0, search=False),
    Setting("--max-conns", "Capacity", "--until-degraded: the most connections to try",
            _int(1, MAX_CONNS), 10000, search=False),
)


def table(core: tuple[Setting, ...], protocols: dict[str, tuple[Setting, ...]]
          ) -> tuple[Setting, ...]:
    """The core settings, then each protocol's (tagged with the first protocol that declares
    it), every flag once: the same setting shared by several protocols (redis's and
    memcached's ``--keys``) is kept once; two different settings with one flag are refused.
    The run's table is ``table(CORE, ...)`` of the protocol registry (harness.config.table)."""
    out = list(core)
    seen = {s.flag: s for s in core}
    twice: set[str] = set()
    for name, own in protocols.items():
        for s in tagged(name, own):
            first = seen.get(s.flag)
            if first is None:
                seen[s.flag] = s
                out.append(s)
            elif first.protocol == "" or replace(first, protocol=s.protocol) != s:
                twice.add(s.flag)
    if twice:
        raise ValueError(f"flags declared twice: {', '.join(sorted(twice))}")
    return tuple(out)


# The [run] keys of the core (a protocol's own are in harness.config.table, with the rest).
CORE_KEYS: tuple[Setting, ...] = tuple(s for s in CORE if s.spec is not None)
