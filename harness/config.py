"""harness.toml + command-line flags -> a validated, frozen :class:`Plan`.

All validation lives here. Every problem raises :class:`ConfigError` with one line that names
the bad key or flag; the CLI turns it into exit code 2. Precedence: built-in defaults, then
the config file (``./harness.toml`` or ``--config FILE``), then flags.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import framing as framing_mod
from harness.batch import Outbound, SizeSpec, size_bounds
from harness.plan import Degradation, Pacing, Plan, Stage, Step, Target, Thresholds

# The default of every run setting (harness.toml's [run] table documents the same values).
RUN_DEFAULTS: dict[str, Any] = {
    "host": "",  # "" = start the embedded built-in server
    "conns": [10, 100, 1000],
    "messages": [],  # message counts to sweep instead of a duration (--messages)
    "workers": 0,  # 0 = usable cores, less one when an embedded server needs one
    "workload": "echo",
    "framing": "len32",
    "size": 64,
    "inflight": 1,
    "rate": 0.0,  # msgs/s per connection; > 0 selects the open loop
    "think": 0.0,  # s, closed loop pause after each reply
    "duration": 10.0,
    "warmup": 1.0,
    "timeout": 5.0,
    "connect_timeout": 5.0,
    "connect_rate": 0.0,
    "max_frame": 1 << 20,
    "listen": 0,
    "push_hosts": [],
    "seed": 1,
    "name": "run",
    "results_dir": "results",
    "until_degraded": False,
    "grow": "double",
    "increment": 0,
    "max_conns": 10000,
    "server_pid": 0,
    "server_cmd": "",
    "monitor_interval": 1.0,
    "corpus": "",  # a file of payloads, one per line (after the stamp); "" = filler bytes
    "source_addrs": "",  # "127.0.0.1-127.0.0.8" or a comma list; "" = automatic (see below)
}
# One source address gives ~28k ephemeral ports per destination: past this many connections
# to one loopback target, connections spread over 127.0.0.1..127.0.0.N automatically.
AUTO_SPREAD_CONNS = 25_000
PORTS_PER_SOURCE = 25_000
MIX_KEYS = {"by", "kinds"}
KIND_KEYS = {"name", "weight", "size"}
SCENARIO_ONLY = {"stages", "description"}
STAGE_KEYS = {"conns", "duration", "rate", "label"}
TABLES = {
    "run": RUN_DEFAULTS,
    "degradation": {"max_error_rate": 0.01, "max_p99_ms": 0.0, "p99_factor": 10.0,
                    "min_gain": 0.25},
    "thresholds": {"max_lost": 0, "max_error_rate": 0.01, "p50_ms": 0.0, "p95_ms": 0.0,
                   "p99_ms": 0.0, "min_throughput": 0.0, "max_server_cpu_pct": 0.0,
                   "max_server_rss_mb": 0.0},
}
# Flags whose name differs from the key, for error messages.
FLAG = {k: "--" + k.replace("_", "-") for k in RUN_DEFAULTS}
KNOWN_TOP = set(TABLES) | {"scenarios", "env", "mix"}
MAX_CONNS = 1_000_000


class ConfigError(ValueError):
    """A bad flag or config key: the message is one line naming it."""


def load_file(path: str | None) -> dict[str, Any]:
    """The config file as a dict: ``path``, else ``./harness.toml`` if present, else {}."""
    if path is None:
        if not Path("harness.toml").is_file():
            return {}
        path = "harness.toml"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for top in data:
        if top not in KNOWN_TOP:
            raise ConfigError(f"{path}: unknown table or key [{top}] "
                              f"(known: {', '.join(sorted(KNOWN_TOP))})")
    for table, defaults in TABLES.items():
        if table in data and not isinstance(data[table], dict):
            raise ConfigError(f"{path}: [{table}] must be a table")
        for key in data.get(table, {}):
            if key not in defaults:
                raise ConfigError(f"{path}: unknown key {table}.{key}")
    data["__path__"] = path
    return data


def settings(file: dict[str, Any], flags: dict[str, Any], scenario: str | None = None,
             env: str | None = None) -> dict[str, dict[str, Any]]:
    """Merge defaults, the file's tables, a scenario, an environment's overrides, then flags
    (flags given as None are absent)."""
    merged = {t: dict(d) for t, d in TABLES.items()}
    path = file.get("__path__", "harness.toml")
    names: dict[str, str] = {}  # where each value came from, for error messages
    layers = [(file, "", path)]
    if scenario is not None:
        layers.append(({"run": _scenario(file, scenario, path)}, f"scenarios.{scenario}.", path))
    if env is not None:
        layers.append((_env(file, env, path), f"env.{env}.", path))
    for data, prefix, where in layers:
        for table in TABLES:
            merged[table].update(data.get(table, {}))
            for key in data.get(table, {}):
                shown = f"{prefix}{key}" if table == "run" and prefix else f"{prefix}{table}.{key}"
                names[key if table == "run" else f"{table}.{key}"] = f"{where}: {shown}"
    if scenario is not None:
        merged["run"]["scenario"] = scenario
        merged["stages"] = file.get("scenarios", {}).get(scenario, {}).get("stages", [])
    merged["env_name"] = env
    merged["mix"] = file.get("mix", {})
    for key, value in flags.items():
        if value is not None:
            merged["run"][key] = value
            names[key] = FLAG.get(key, key)
    merged["names"] = names
    return merged


def _scenario(file: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    scenarios = file.get("scenarios", {})
    if not isinstance(scenarios, dict) or name not in scenarios:
        known = ", ".join(sorted(scenarios)) if isinstance(scenarios, dict) else ""
        raise ConfigError(f"--scenario: unknown scenario {name!r} in {path} "
                          f"(known: {known or 'none'})")
    table = scenarios[name]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [scenarios.{name}] must be a table")
    for key in table:
        if key not in RUN_DEFAULTS and key not in SCENARIO_ONLY:
            raise ConfigError(f"{path}: unknown key scenarios.{name}.{key}")
    for i, stage in enumerate(table.get("stages", [])):
        if not isinstance(stage, dict):
            raise ConfigError(f"{path}: scenarios.{name}.stages[{i}] must be a table")
        for key in stage:
            if key not in STAGE_KEYS:
                raise ConfigError(f"{path}: unknown stage key scenarios.{name}.stages[{i}]."
                                  f"{key} (known: {', '.join(sorted(STAGE_KEYS))})")
    return {k: v for k, v in table.items() if k in RUN_DEFAULTS}


def _env(file: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    envs = file.get("env", {})
    if not isinstance(envs, dict) or name not in envs:
        raise ConfigError(f"--env: unknown environment {name!r} in {path}")
    table = envs[name]
    for key, sub in table.items():
        if key not in ("thresholds", "degradation"):
            raise ConfigError(f"{path}: unknown table env.{name}.{key} "
                              "(known: thresholds, degradation)")
        for k in sub:
            if k not in TABLES[key]:
                raise ConfigError(f"{path}: unknown key env.{name}.{key}.{k}")
    return table


def _name(run: dict, key: str) -> str:
    return run.get("__names__", {}).get(key, FLAG.get(key, key))


# ---------------------------------------------------------------------------- parsing helpers


def parse_int_list(value: Any, flag: str) -> list[int]:
    """``"10,100,1000"`` or a TOML list or an int -> [10, 100, 1000], all > 0."""
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    else:
        raise ConfigError(f"{flag}: expected a comma-separated list of integers, got {value!r}")
    out = []
    for item in items:
        try:
            n = int(item)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag}: {item!r} is not an integer "
                              f"(expected e.g. 10,100,1000)") from None
        if n <= 0:
            raise ConfigError(f"{flag}: {n} must be > 0")
        out.append(n)
    return out


def parse_target(text: str) -> Target:
    """``host:port`` or ``[v6]:port``; the port must be 1-65535."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ConfigError(f"--host: {text!r}: expected [address]:port")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(f"--host: {text!r}: expected host:port")
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"--host: {text!r}: port {port!r} is not a number") from None
    if not 1 <= p <= 65535:
        raise ConfigError(f"--host: {text!r}: port {p} out of range 1-65535")
    return Target(host, p)


def _num(run: dict, key: str, lo: float, kind: type = float, hi: float | None = None) -> Any:
    """A finite number in [lo, hi]; the error names the flag or the file key it came from."""
    v, name = run[key], _name(run, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            v = float(v) if kind is float else int(str(v), 10)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {v!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name}: {v!r} must be a finite number")
    if kind is int and v != int(v):
        raise ConfigError(f"{name}: {v!r} must be a whole number")
    v = kind(v)
    if v < lo or (hi is not None and v > hi):
        raise ConfigError(f"{name}: {v} out of range ({lo} to {hi if hi else 'any'})")
    return v


def default_workers(embedded: bool) -> int:
    cores = len(os.sched_getaffinity(0))
    return max(1, cores - (1 if embedded and cores > 1 else 0))


# ---------------------------------------------------------------------------- the plan


def build_plan(merged: dict[str, dict[str, Any]], rate_and_inflight: bool = False) -> Plan:
    names = merged.get("names", {})
    run = dict(merged["run"], __names__=names)
    tables = {t: dict(merged[t], __names__=names) for t in ("degradation", "thresholds")}
    if rate_and_inflight:
        raise ConfigError("--rate and --inflight exclude each other: --rate is the open loop "
                          "(a fixed schedule), --inflight the closed loop")
    host = run["host"] or ""
    targets = tuple(parse_target(h) for h in str(host).split(",") if h.strip())
    workload = str(run["workload"])
    fr_name = str(run["framing"])
    try:
        fr = framing_mod.get(fr_name)
    except ValueError as exc:
        raise ConfigError(f"--framing: {exc}") from None
    max_frame = _num(run, "max_frame", 16, int)
    spec = parse_size(run["size"], _name(run, "size"))
    check_size(spec, _name(run, "size"), fr, max_frame)
    size = size_bounds(spec)[0]
    mix, mix_by = parse_mix(merged.get("mix") or {}, fr, max_frame)
    corpus = read_corpus(str(run["corpus"]), _name(run, "corpus"), fr, max_frame)
    rate = _num(run, "rate", 0.0)
    inflight = _num(run, "inflight", 1, int, 1_000_000)
    think = _num(run, "think", 0.0)
    pacing = Pacing("open" if rate > 0 else "closed", inflight, rate, think)
    stages = _stages(merged.get("stages") or [], rate)
    steps = _steps(run, rate) if not stages else (
        Step(0, max(st.conns for st in stages), sum(st.duration_s for st in stages), None,
             stages[0].rate, _num(run, "listen", 0, int, 100_000), stages),)
    if stages and any(st.rate > 0 for st in stages):
        pacing = Pacing("open", inflight, stages[0].rate, think)
    grow = str(run["grow"])
    if grow not in ("double", "add"):
        raise ConfigError(f"{_name(run, 'grow')}: {grow!r} must be 'double' or 'add'")
    increment = _num(run, "increment", 0, int)
    if grow == "add" and bool(run["until_degraded"]) and increment <= 0:
        raise ConfigError(f"{_name(run, 'increment')}: give a positive increment for "
                          "grow = 'add'")
    workers = _num(run, "workers", 0, int, 1024) or default_workers(not targets)
    push = tuple(_num({"push_hosts": h}, "push_hosts", 0, int) for h in
                 parse_list_any(run["push_hosts"]))
    n_targets = max(len(targets), 1)
    if any(p >= n_targets for p in push):
        raise ConfigError(f"--push-hosts: node index out of range (0 to {n_targets - 1})")
    return Plan(
        targets=targets, steps=steps, workload=workload, framing=fr_name, size=size,
        max_frame=max_frame, pacing=pacing, warmup_s=_num(run, "warmup", 0.0),
        timeout_s=_num(run, "timeout", 0.001), connect_timeout_s=_num(run, "connect_timeout",
                                                                      0.001),
        connect_rate=_num(run, "connect_rate", 0.0), workers=workers, push_hosts=push or (0,),
        seed=_num(run, "seed", 0, int), name=_safe_name(str(run["name"])),
        results_dir=str(run["results_dir"]), degradation=_degradation(tables["degradation"]),
        thresholds=_thresholds(tables["thresholds"]),
        embedded=None if targets else ("chat" if workload == "chat" else "echo"),
        until_degraded=bool(run["until_degraded"]), grow=grow, increment=increment,
        max_conns=_num(run, "max_conns", 1, int, MAX_CONNS),
        scenario=run.get("scenario"), env=merged.get("env_name"),
        server_pid=_num(run, "server_pid", 0, int) or None,
        server_cmd=str(run["server_cmd"]) or None,
        monitor_interval_s=_num(run, "monitor_interval", 0.05, float, 60.0),
        mix=mix, mix_by=mix_by, corpus=corpus, size_spec=spec,
        source_addrs=source_addrs(run, targets, steps))


def parse_list_any(v: Any) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        return [x for x in v.split(",") if x.strip()]
    return [v]


def _steps(run: dict, rate: float) -> tuple[Step, ...]:
    conns = parse_int_list(run["conns"], _name(run, "conns"))
    messages = (parse_int_list(run["messages"], _name(run, "messages")) if run["messages"]
                else [])
    listen = _num(run, "listen", 0, int, 100_000)
    if not conns:
        raise ConfigError("--conns: give at least one connection count")
    if any(c > MAX_CONNS for c in conns):
        raise ConfigError(f"--conns: at most {MAX_CONNS} connections per step")
    duration = _num(run, "duration", 0.001)
    if messages:
        if len(conns) > 1 and len(messages) > 1:
            raise ConfigError("--conns and --messages cannot both sweep: give one of them a "
                              "single value")
        pairs = [(c, m) for c in conns for m in messages]
        return tuple(Step(i, c, None, m, rate, listen) for i, (c, m) in enumerate(pairs))
    return tuple(Step(i, c, duration, None, rate, listen) for i, c in enumerate(conns))


def parse_size(value: Any, name: str) -> SizeSpec:
    """``64`` (fixed), ``"64-1024"`` (uniform), ``"64,128,1024"`` or a list (drawn from)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list):
        return [int(v) for v in parse_int_list(value, name)]
    text = str(value).strip()
    if "-" in text:
        lo, _, hi = text.partition("-")
        try:
            bounds = (int(lo), int(hi))
        except ValueError:
            raise ConfigError(f"{name}: {text!r}: expected N, LO-HI or N,N,...") from None
        if not 0 < bounds[0] <= bounds[1]:
            raise ConfigError(f"{name}: {text!r}: need 0 < LO <= HI")
        return bounds
    sizes = parse_int_list(text, name)
    if not sizes:
        raise ConfigError(f"{name}: give a size in bytes")
    return sizes[0] if len(sizes) == 1 else sizes


def check_size(spec: SizeSpec, name: str, fr: framing_mod.Framing, max_frame: int) -> None:
    lo, hi = size_bounds(spec)
    room = Outbound.stamp_room(fr)
    if lo < room:
        raise ConfigError(f"{name}: {lo} bytes is too small for {fr.name} framing "
                          f"(at least {room}: frame header and stamp)")
    if hi > max_frame:
        raise ConfigError(f"{name}: {hi} exceeds --max-frame {max_frame}")
    if hi - fr.overhead() > fr.max_body:
        raise ConfigError(f"{name}: {hi} exceeds what {fr.name} framing can carry")


def parse_mix(table: dict, fr: framing_mod.Framing, max_frame: int) -> tuple[tuple, str]:
    """[mix]: ``by`` ("message" or "connection") and [[mix.kinds]] {name, weight, size}."""
    from workloads.base import Kind
    if not table:
        return (), "message"
    for key in table:
        if key not in MIX_KEYS:
            raise ConfigError(f"unknown key mix.{key} (known: {', '.join(sorted(MIX_KEYS))})")
    by = str(table.get("by", "message"))
    if by not in ("message", "connection"):
        raise ConfigError(f"mix.by: {by!r} must be 'message' or 'connection'")
    kinds = []
    for i, k in enumerate(table.get("kinds", [])):
        where = f"mix.kinds[{i}]"
        if not isinstance(k, dict):
            raise ConfigError(f"{where} must be a table")
        for key in k:
            if key not in KIND_KEYS:
                raise ConfigError(f"unknown key {where}.{key} (known: name, weight, size)")
        if "size" not in k:
            raise ConfigError(f"{where}.size: missing")
        spec = parse_size(k["size"], f"{where}.size")
        check_size(spec, f"{where}.size", fr, max_frame)
        weight = _num({"w": k.get("weight", 1.0), "__names__": {"w": f"{where}.weight"}}, "w",
                      0.0)
        kinds.append(Kind(str(k.get("name", f"kind{i}")), weight, spec))
    if not kinds or sum(k.weight for k in kinds) <= 0:
        raise ConfigError("mix.kinds: give at least one kind with a positive weight")
    return tuple(kinds), by


def read_corpus(path: str, name: str, fr: framing_mod.Framing, max_frame: int
                ) -> tuple[bytes, ...]:
    if not path:
        return ()
    try:
        with open(path, "rb") as f:
            lines = tuple(line.rstrip(b"\r\n") for line in f)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not lines:
        raise ConfigError(f"{name}: {path} is empty")
    longest = max(len(x) for x in lines) + Outbound.stamp_room(fr)
    if longest > max_frame:
        raise ConfigError(f"{name}: a line of {path} makes a {longest}-byte message, over "
                          f"--max-frame {max_frame}")
    return lines


def source_addrs(run: dict, targets: tuple[Target, ...], steps: tuple[Step, ...]
                 ) -> tuple[str, ...]:
    """``--source-addrs`` as a tuple of IPv4 addresses: a range ``A-B`` (last octet) or a
    comma list. Unset: none, unless a loopback target needs more connections than one source
    address has ports for, then as many 127.0.0.x as needed."""
    import ipaddress
    text, name = str(run.get("source_addrs") or "").strip(), _name(run, "source_addrs")
    if text:
        try:
            if "-" in text:
                lo, hi = (ipaddress.IPv4Address(x.strip()) for x in text.split("-", 1))
                if hi < lo or int(hi) - int(lo) > 1024:
                    raise ValueError("the range must go up, 1025 addresses at most")
                return tuple(str(ipaddress.IPv4Address(a)) for a in range(int(lo), int(hi) + 1))
            return tuple(str(ipaddress.IPv4Address(x.strip())) for x in text.split(","))
        except ValueError as exc:
            raise ConfigError(f"{name}: {text!r}: {exc}") from None
    loopback = all(t.host.startswith("127.") or t.host == "localhost" for t in targets)
    most = max((s.conns + s.listen for s in steps), default=0)
    if not targets or not loopback or most <= AUTO_SPREAD_CONNS:
        return ()
    return tuple(f"127.0.0.{k}" for k in range(1, 2 + most // PORTS_PER_SOURCE))


def _stages(raw: list[dict], rate: float) -> tuple[Stage, ...]:
    """A scenario's stages; a stage without ``rate`` takes the run's rate (``--rate`` or
    [run] rate; 0 = closed loop)."""
    out = []
    for i, st in enumerate(raw):
        where = {k: f"stages[{i}].{k}" for k in STAGE_KEYS}
        vals = {"conns": st.get("conns", 1), "duration": st.get("duration", 10.0),
                "rate": st.get("rate", rate), "__names__": where}
        out.append(Stage(duration_s=_num(vals, "duration", 0.001), conns=_num(vals, "conns", 1, int,
                                                                            MAX_CONNS),
                         rate=_num(vals, "rate", 0.0), label=str(st.get("label", ""))))
    return tuple(out)


def _safe_name(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    if not safe.strip("-."):
        raise ConfigError(f"--name: {name!r} has no usable characters")
    return safe


def _limit(d: dict, table: str, key: str) -> float | None:
    """Config convention for limits: 0 or negative means 'not set'."""
    v = _num({key: d[key], "__names__": {key: _name(d, f"{table}.{key}")}}, key, -math.inf)
    return v if v > 0 else None


def _degradation(d: dict) -> Degradation:
    rate = _limit(d, "degradation", "max_error_rate")
    return Degradation(max_error_rate=rate if rate is not None else 0.0,
                       max_p99_ms=_limit(d, "degradation", "max_p99_ms"),
                       p99_factor=_limit(d, "degradation", "p99_factor"),
                       min_gain=_limit(d, "degradation", "min_gain") or 0.0)


def _thresholds(d: dict) -> Thresholds:
    lost = _num({"max_lost": d["max_lost"], "__names__": {"max_lost": _name(
        d, "thresholds.max_lost")}}, "max_lost", -math.inf)
    rate = _num({"r": d["max_error_rate"], "__names__": {"r": _name(
        d, "thresholds.max_error_rate")}}, "r", -math.inf)
    return Thresholds(max_lost=None if lost < 0 else int(lost),
                      max_error_rate=rate if rate >= 0 else None,
                      p50_ms=_limit(d, "thresholds", "p50_ms"),
                      p95_ms=_limit(d, "thresholds", "p95_ms"),
                      p99_ms=_limit(d, "thresholds", "p99_ms"),
                      min_throughput=_limit(d, "thresholds", "min_throughput"),
                      max_server_cpu_pct=_limit(d, "thresholds", "max_server_cpu_pct"),
                      max_server_rss_mb=_limit(d, "thresholds", "max_server_rss_mb"))


def with_targets(plan: Plan, targets: tuple[Target, ...]) -> Plan:
    return replace(plan, targets=targets)
