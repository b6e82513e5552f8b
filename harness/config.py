"""harness.toml + command-line flags -> a validated, frozen :class:`Plan`.

All validation lives here. Every problem raises :class:`ConfigError` with one line that names
the bad key or flag; the CLI turns it into exit code 2. Precedence: built-in defaults, then
the config file (``./harness.toml`` or ``--config FILE``), then flags.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness import framing as framing_mod
from harness.batch import Outbound, SizeSpec, size_bounds
from harness.plan import Degradation, Pacing, Plan, Stage, Step, Target, Thresholds

# The built-in defaults and scenario presets ship inside the package; ./harness.toml or
# --config FILE layers over them (see load_file).
BUILTIN_PATH = "built-in defaults (harness/default.toml)"


def _builtin() -> dict[str, Any]:
    return tomllib.loads(resources.files("harness").joinpath("default.toml").read_text("utf-8"))


BUILTIN = _builtin()
RUN_DEFAULTS: dict[str, Any] = BUILTIN["run"]
# One source address gives ~28k ephemeral ports per destination: past this many connections
# to one loopback target, connections spread over 127.0.0.1..127.0.0.N automatically.
AUTO_SPREAD_CONNS = 25_000
PORTS_PER_SOURCE = 25_000
MIX_KEYS = {"by", "kinds"}
KIND_KEYS = {"name", "weight", "size"}
SCENARIO_ONLY = {"stages", "description"}
STAGE_KEYS = {"conns", "duration", "rate", "label"}
TABLES = {"run": RUN_DEFAULTS, "degradation": BUILTIN["degradation"],
          "thresholds": BUILTIN["thresholds"]}
# Flags whose name differs from the key, for error messages.
FLAG = {k: "--" + k.replace("_", "-") for k in RUN_DEFAULTS}
KNOWN_TOP = set(TABLES) | {"scenarios", "env", "mix"}
MAX_CONNS = 1_000_000
MAX_MESSAGES = 10**12  # per step
MAX_INT64 = 2**63 - 1  # run.json holds every value as a JSON number a 64-bit reader can take
MAX_CONFIG_BYTES = 1 << 20
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Spec:
    """What a setting may hold: ``kind`` is the TOML type (int, float, bool, str, ints: an
    int, a list of ints or a comma string, size: an int, a "LO-HI" or comma string or a list
    of ints, strs: a string or a list of strings), ``lo``/``hi`` the range of a number.
    A float setting whose ``zero_or`` is set takes 0 (off) or a value in [zero_or, hi]."""

    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    zero_or: float | None = None


# The type and range of every [run] key (flags are checked against the same ranges).
RUN_SPEC: dict[str, Spec] = {
    "host": Spec("str"), "conns": Spec("ints", 1, MAX_CONNS),
    "messages": Spec("ints", 1, MAX_MESSAGES), "workers": Spec("int", 0, 1024),
    "workload": Spec("str"), "framing": Spec("str"), "size": Spec("size"),
    "inflight": Spec("int", 1, 1_000_000), "rate": Spec("float", 0, 1e6, zero_or=0.001),
    "think": Spec("float", 0, 3600), "duration": Spec("float", 0.001, 7 * DAY_S),
    "warmup": Spec("float", 0, 3600), "timeout": Spec("float", 0.001, 3600),
    "connect_timeout": Spec("float", 0.001, 3600),
    "connect_rate": Spec("float", 0, 1e7, zero_or=0.01), "max_frame": Spec("int", 16, 1 << 30),
    "listen": Spec("int", 0, 100_000), "push_hosts": Spec("ints", 0, 1023),
    "seed": Spec("int", 0, MAX_INT64), "name": Spec("str"), "results_dir": Spec("str"),
    "until_degraded": Spec("bool"), "grow": Spec("str"), "increment": Spec("int", 0, MAX_CONNS),
    "max_conns": Spec("int", 1, MAX_CONNS), "server_pid": Spec("int", 0, 2**31 - 1),
    "server_cmd": Spec("str"), "monitor_interval": Spec("float", 0.05, 60),
    "corpus": Spec("str"), "source_addrs": Spec("strs"),
}
LIMIT_SPEC = Spec("float", -1e15, 1e15)  # [degradation] and [thresholds]: <= 0 is off
TABLE_SPEC = {"degradation": {k: LIMIT_SPEC for k in TABLES["degradation"]},
              "thresholds": {k: LIMIT_SPEC for k in TABLES["thresholds"]}
              | {"max_lost": Spec("int", -MAX_INT64, MAX_INT64)}}
STAGE_SPEC = {"conns": Spec("int", 1, MAX_CONNS), "duration": RUN_SPEC["duration"],
              "rate": RUN_SPEC["rate"], "label": Spec("str")}
KIND_SPEC = {"name": Spec("str"), "weight": Spec("float", 0, 1e9), "size": Spec("size")}
EXPECTED = {"int": "an integer", "float": "a number", "bool": "true or false",
            "str": "a string", "ints": "an integer or a list of integers",
            "size": "an integer, a \"LO-HI\" string or a list of integers",
            "strs": "a string or a list of strings"}
MAX_CORPUS_BYTES = 16 * 1024 * 1024  # a --corpus file (held in memory by every worker)
MAX_CORPUS_LINES = 1_000_000
MAX_NAME_BYTES = 200  # a run name; the folder adds "<UTC time>-" (17) and maybe "-N"


class ConfigError(ValueError):
    """A bad flag or config key: the message is one line naming it."""


def load_file(path: str | None) -> dict[str, Any]:
    """The user's config file as a dict, every key and value type checked: ``path``, else
    ``./harness.toml`` if present, else {}. The built-in defaults and presets are not in it:
    :func:`settings` layers the file over them."""
    if path is None:
        if not Path("harness.toml").is_file():
            return {}
        path, name = "harness.toml", "harness.toml"
    else:
        name = "--config"
    data = _read_toml(path, name)
    check_file(data, path)
    data["__path__"] = path
    return data


def _read_toml(path: str, name: str) -> dict[str, Any]:
    """A regular UTF-8 file of at most MAX_CONFIG_BYTES, parsed as TOML."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{name}: {path} is not a regular file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: {path} is over {MAX_CONFIG_BYTES >> 20} MB: not a config")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def check_file(data: dict[str, Any], path: str) -> None:
    """Every table, key and value type of a config file; ranges are checked in build_plan."""
    for top, value in data.items():
        if top not in KNOWN_TOP:
            raise ConfigError(f"{path}: unknown table or key [{top}] "
                              f"(known: {', '.join(sorted(KNOWN_TOP))})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{top}] must be a table, not {_shown(value)}")
    _check_table(data.get("run", {}), RUN_SPEC, "run.", path)
    for table in ("degradation", "thresholds"):
        _check_table(data.get(table, {}), TABLE_SPEC[table], f"{table}.", path)
    for name, table in data.get("scenarios", {}).items():
        _check_scenario(name, table, path)
    for name, table in data.get("env", {}).items():
        _check_env(name, table, path)
    if "mix" in data:
        _check_mix(data["mix"], path)


def _check_table(table: Any, specs: dict[str, Spec], where: str, path: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where.rstrip('.')} must be a table, not {_shown(table)}")
    for key, value in table.items():
        if key not in specs:
            raise ConfigError(f"{path}: unknown key {where}{key}")
        check_type(value, specs[key], f"{path}: {where}{key}")


def _check_scenario(name: str, table: Any, path: str) -> None:
    where = f"scenarios.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table, not {_shown(table)}")
    for key in table:
        if key not in RUN_SPEC and key not in SCENARIO_ONLY:
            raise ConfigError(f"{path}: unknown key {where}.{key}")
    _check_table({k: v for k, v in table.items() if k in RUN_SPEC}, RUN_SPEC, f"{where}.", path)
    check_type(table.get("description", ""), Spec("str"), f"{path}: {where}.description")
    stages = table.get("stages", [])
    if not isinstance(stages, list):
        raise ConfigError(f"{path}: {where}.stages must be a list of tables "
                          f"({{ conns, duration, rate, label }}), not {_shown(stages)}")
    clash = sorted({"conns", "duration", "messages"} & set(table)) if stages else []
    if clash:
        raise ConfigError(f"{path}: {where}.{clash[0]}: a scenario with stages takes its "
                          "connections and durations from the stages")
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise ConfigError(f"{path}: {where}.stages[{i}] must be a table, "
                              f"not {_shown(stage)}")
        for key in stage:
            if key not in STAGE_KEYS:
                raise ConfigError(f"{path}: unknown stage key {where}.stages[{i}].{key} "
                                  f"(known: {', '.join(sorted(STAGE_KEYS))})")
        _check_table(stage, STAGE_SPEC, f"{where}.stages[{i}].", path)


def _check_env(name: str, table: Any, path: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [env.{name}] must be a table, not {_shown(table)}")
    for key, sub in table.items():
        if key not in TABLE_SPEC:
            raise ConfigError(f"{path}: unknown table env.{name}.{key} "
                              "(known: thresholds, degradation)")
        _check_table(sub, TABLE_SPEC[key], f"env.{name}.{key}.", path)


def _check_mix(table: dict, path: str) -> None:
    for key in table:
        if key not in MIX_KEYS:
            raise ConfigError(f"{path}: unknown key mix.{key} "
                              f"(known: {', '.join(sorted(MIX_KEYS))})")
    check_type(table.get("by", "message"), Spec("str"), f"{path}: mix.by")
    kinds = table.get("kinds", [])
    if not isinstance(kinds, list):
        raise ConfigError(f"{path}: mix.kinds must be a list of tables "
                          f"({{ name, weight, size }}), not {_shown(kinds)}")
    for i, kind in enumerate(kinds):
        if not isinstance(kind, dict):
            raise ConfigError(f"{path}: mix.kinds[{i}] must be a table, not {_shown(kind)}")
        _check_table(kind, KIND_SPEC, f"mix.kinds[{i}].", path)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(v: Any, kind: str) -> bool:
    if kind in ("ints", "size"):
        return _is_int(v) or isinstance(v, str) or (
            isinstance(v, list) and all(_is_int(x) for x in v))
    if kind == "strs":
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    return {"int": _is_int(v), "float": _is_int(v) or isinstance(v, float),
            "bool": isinstance(v, bool), "str": isinstance(v, str)}[kind]


def check_type(value: Any, spec: Spec, where: str) -> None:
    """A TOML value of the type ``spec`` wants: no coercion (``"false"`` is not false, true
    is not 1, 1.5 is not an integer)."""
    if not _type_ok(value, spec.kind):
        raise ConfigError(f"{where}: expected {EXPECTED[spec.kind]}, got {_shown(value)}")


def _shown(v: Any) -> str:
    """A value as the user wrote it in TOML, with its type, cut to a readable length."""
    kind = ("a boolean" if isinstance(v, bool) else "a string" if isinstance(v, str) else
            "a list" if isinstance(v, list) else "a table" if isinstance(v, dict) else
            "an integer" if isinstance(v, int) else "a number" if isinstance(v, float) else
            type(v).__name__)
    text = ("true" if v is True else "false" if v is False else repr(v))
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def settings(file: dict[str, Any], flags: dict[str, Any], scenario: str | None = None,
             env: str | None = None) -> dict[str, Any]:
    """Merge the built-in defaults, the file's tables, a scenario, an environment's
    overrides, then flags (flags given as None are absent). Scenarios and environments come
    from the file, else from the built-in presets."""
    merged: dict[str, Any] = {t: dict(d) for t, d in TABLES.items()}
    path = file.get("__path__", "harness.toml")
    names: dict[str, str] = {}  # where each value came from, for error messages
    layers = [(file, "", path)]
    stages: list = []
    if scenario is not None:
        table, where = _preset(file, "scenarios", scenario, path)
        stages = table.get("stages", [])
        layers.append(({"run": {k: v for k, v in table.items() if k in RUN_DEFAULTS}},
                       f"scenarios.{scenario}.", where))
    if env is not None:
        table, where = _preset(file, "env", env, path)
        layers.append((table, f"env.{env}.", where))
    for data, prefix, where in layers:
        for t in TABLES:
            merged[t].update(data.get(t, {}))
            for key in data.get(t, {}):
                shown = f"{prefix}{key}" if t == "run" and prefix else f"{prefix}{t}.{key}"
                names[key if t == "run" else f"{t}.{key}"] = f"{where}: {shown}"
    if scenario is not None:
        merged["run"]["scenario"] = scenario
        merged["stages"] = stages
    merged["env_name"] = env
    merged["mix"] = file.get("mix", {})
    for key, value in flags.items():
        if value is not None:
            merged["run"][key] = value
            names[key] = FLAG.get(key, key)
    merged["names"] = names
    return merged


def _preset(file: dict[str, Any], kind: str, name: str, path: str) -> tuple[dict, str]:
    """A [scenarios.NAME] or [env.NAME] table and the file it came from: the user's file
    wins over the built-in presets, whole."""
    user = file.get(kind, {})
    if name in user:
        return user[name], path
    if name in BUILTIN.get(kind, {}):
        return BUILTIN[kind][name], BUILTIN_PATH
    flag = "--scenario" if kind == "scenarios" else "--env"
    known = sorted(set(user) | set(BUILTIN.get(kind, {})))
    raise ConfigError(f"{flag}: unknown {'scenario' if kind == 'scenarios' else 'environment'} "
                      f"{name!r} (known: {', '.join(known) or 'none'})")


def _name(run: dict, key: str) -> str:
    return run.get("__names__", {}).get(key, FLAG.get(key, key))


# ---------------------------------------------------------------------------- parsing helpers


def parse_int_list(value: Any, flag: str, lo: int = 1, hi: float = math.inf) -> list[int]:
    """``"10,100,1000"`` or a TOML list or an int -> [10, 100, 1000], each in [lo, hi]."""
    if _is_int(value):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    else:
        raise ConfigError(f"{flag}: expected a comma-separated list of integers, got {value!r}")
    out = []
    for item in items:
        if isinstance(item, (bool, float)):
            raise ConfigError(f"{flag}: {item!r} is not an integer")
        try:
            n = int(item)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag}: {_cut(item)!r} is not an integer "
                              f"(expected e.g. 10,100,1000)") from None
        if n < lo:
            raise ConfigError(f"{flag}: {n} must be >= {lo}")
        if n > hi:
            raise ConfigError(f"{flag}: {_cut(n)} is over the limit of {hi:,}")
        out.append(n)
    return out


def _cut(v: Any, most: int = 40) -> Any:
    """A value short enough for an error line (a 30-digit number, a long string)."""
    text = str(v)
    return v if len(text) <= most else text[: most - 3] + "..."


def parse_target(text: str) -> Target:
    """``host:port`` or ``[v6]:port``; the port must be 1-65535."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise ConfigError(f"--host: {_cut(text)!r}: expected [IPv6 address]:port")
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
    _check_host_name(host, text)
    return Target(host, p)


_HOST_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


def _check_host_name(host: str, text: str) -> None:
    """An IP address, or a name the resolver can be asked about: labels of 1-63 characters,
    253 in all (an internationalised name is checked in its IDNA form). A name that is well
    formed but does not resolve is the target's problem (exit 3), not a usage error."""
    import ipaddress
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host.partition("%")[0])
        return
    if ":" in host:
        raise ConfigError(f"--host: {text!r}: {host!r} is not an IPv6 address")
    try:
        ascii_name = host.encode("idna")
    except UnicodeError:
        ascii_name = b""
    labels = ascii_name.rstrip(b".").split(b".")
    if (not ascii_name or len(ascii_name) > 253 or not set(ascii_name) <= _HOST_CHARS
            or any(not 0 < len(label) <= 63 for label in labels)):
        raise ConfigError(f"--host: {_cut(text)!r}: not a valid host name (labels of 1-63 "
                          "letters, digits or hyphens, 253 characters in all)")


def _num(run: dict, key: str, lo: float | None = None, kind: type | None = None,
         hi: float | None = None) -> Any:
    """A finite number in [lo, hi] (by default the range of RUN_SPEC[key]; a ``zero_or``
    setting also takes 0); the error names the flag or the file key it came from. A boolean
    is not a number, and a whole number is not taken from a fraction."""
    spec = RUN_SPEC.get(key, Spec("float"))
    lo = spec.lo if lo is None else lo
    hi = spec.hi if hi is None else hi
    kind = kind or (int if spec.kind in ("int", "ints") else float)
    v, name = run[key], _name(run, key)
    if isinstance(v, bool):
        raise ConfigError(f"{name}: {v!r} is not a number")
    if not isinstance(v, (int, float)):
        try:
            v = float(v) if kind is float else int(str(v), 10)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {_cut(v)!r} is not a number") from None
    if not math.isfinite(v):
        raise ConfigError(f"{name}: {v!r} must be a finite number")
    if kind is int and v != int(v):
        raise ConfigError(f"{name}: {v!r} must be a whole number")
    v = kind(v)
    if spec.zero_or is not None:
        if v == 0:
            return v
        lo = max(lo, spec.zero_or)
    if v < lo or v > hi:
        raise ConfigError(f"{name}: {_cut(v)} out of range ({_bound(lo)} to {_bound(hi)}"
                          f"{', or 0 for off' if spec.zero_or is not None else ''})")
    return v


def _bound(x: float) -> str:
    return "any" if math.isinf(x) else f"{x:g}" if isinstance(x, float) else f"{x:,}"


def default_workers(embedded: bool) -> int:
    cores = len(os.sched_getaffinity(0))
    return max(1, cores - (1 if embedded and cores > 1 else 0))


# ---------------------------------------------------------------------------- the plan


def build_plan(merged: dict[str, Any], rate_and_inflight: bool = False) -> Plan:
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
    max_frame = _num(run, "max_frame")
    spec = parse_size(run["size"], _name(run, "size"))
    check_size(spec, _name(run, "size"), fr, max_frame)
    size = size_bounds(spec)[0]
    mix, mix_by = parse_mix(merged.get("mix") or {}, fr, max_frame)
    corpus = read_corpus(str(run["corpus"]), _name(run, "corpus"), fr, max_frame)
    rate = _num(run, "rate")
    _exclusive(run, bool(merged.get("stages")))
    inflight = _num(run, "inflight")
    think = _num(run, "think")
    pacing = Pacing("open" if rate > 0 else "closed", inflight, rate, think)
    stages = _stages(merged.get("stages") or [], rate)
    steps = _steps(run, rate) if not stages else (
        Step(0, max(st.conns for st in stages), sum(st.duration_s for st in stages), None,
             stages[0].rate, _num(run, "listen"), stages),)
    if stages and any(st.rate > 0 for st in stages):
        pacing = Pacing("open", inflight, stages[0].rate, think)
    grow = str(run["grow"])
    if grow not in ("double", "add"):
        raise ConfigError(f"{_name(run, 'grow')}: {grow!r} must be 'double' or 'add'")
    increment = _num(run, "increment")
    if grow == "add" and bool(run["until_degraded"]) and increment <= 0:
        raise ConfigError(f"{_name(run, 'increment')}: give a positive increment for "
                          "grow = 'add'")
    workers = _num(run, "workers") or default_workers(not targets)
    push = tuple(_num({"push_hosts": h}, "push_hosts") for h in
                 parse_list_any(run["push_hosts"]))
    n_targets = max(len(targets), 1)
    if any(p >= n_targets for p in push):
        raise ConfigError(f"--push-hosts: node index out of range (0 to {n_targets - 1})")
    return Plan(
        targets=targets, steps=steps, workload=workload, framing=fr_name, size=size,
        max_frame=max_frame, pacing=pacing, warmup_s=_num(run, "warmup"),
        timeout_s=_num(run, "timeout"), connect_timeout_s=_num(run, "connect_timeout"),
        connect_rate=_num(run, "connect_rate"), workers=workers, push_hosts=push,
        seed=_num(run, "seed"), name=_safe_name(str(run["name"])),
        results_dir=str(run["results_dir"]), degradation=_degradation(tables["degradation"]),
        thresholds=_thresholds(tables["thresholds"]),
        embedded=None if targets else ("chat" if workload == "chat" else "echo"),
        until_degraded=bool(run["until_degraded"]), grow=grow, increment=increment,
        max_conns=_num(run, "max_conns"),
        scenario=run.get("scenario"), env=merged.get("env_name"),
        server_pid=_num(run, "server_pid") or None,
        server_cmd=str(run["server_cmd"]) or None,
        monitor_interval_s=_num(run, "monitor_interval"),
        mix=mix, mix_by=mix_by, corpus=corpus, size_spec=spec,
        source_addrs=source_addrs(run, targets, steps))


def _exclusive(run: dict, staged: bool) -> None:
    """Flags that a run would otherwise ignore without a word: --duration when --messages
    ends each step, and --conns, --duration, --messages when the stages of a scenario set
    them (the stages are not scaled)."""
    flagged = {k for k, where in run["__names__"].items() if where == FLAG.get(k)}
    if staged:
        for key in ("conns", "duration", "messages"):
            if key in flagged:
                raise ConfigError(f"{FLAG[key]}: scenario {run.get('scenario')!r} has stages, "
                                  "each with its own connections and duration; edit the "
                                  "stages in a harness.toml instead")
    elif "duration" in flagged and run["messages"]:
        raise ConfigError(f"--duration and {_name(run, 'messages')} exclude each other: a step "
                          "ends after its messages, or after --duration seconds")


def parse_list_any(v: Any) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        return [x for x in v.split(",") if x.strip()]
    return [v]


def _steps(run: dict, rate: float) -> tuple[Step, ...]:
    conns = parse_int_list(run["conns"], _name(run, "conns"), 1, MAX_CONNS)
    messages = (parse_int_list(run["messages"], _name(run, "messages"), 1, MAX_MESSAGES)
                if run["messages"] else [])
    listen = _num(run, "listen")
    if not conns:
        raise ConfigError(f"{_name(run, 'conns')}: give at least one connection count")
    duration = _num(run, "duration")
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
        sizes = parse_int_list(value, name)
        if not sizes:
            raise ConfigError(f"{name}: give at least one size in bytes")
        return sizes[0] if len(sizes) == 1 else sizes
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
                      0.0, float, KIND_SPEC["weight"].hi)
        kinds.append(Kind(str(k.get("name", f"kind{i}")), weight, spec))
    if not kinds or sum(k.weight for k in kinds) <= 0:
        raise ConfigError("mix.kinds: give at least one kind with a positive weight")
    return tuple(kinds), by


def read_corpus(path: str, name: str, fr: framing_mod.Framing, max_frame: int
                ) -> tuple[bytes, ...]:
    """The payload lines of a corpus file: a regular file (a FIFO or a device such as
    /dev/zero would block or never end) of at most MAX_CORPUS_BYTES and MAX_CORPUS_LINES."""
    if not path:
        return ()
    raw = _read_regular(path, name, MAX_CORPUS_BYTES).split(b"\n")
    if raw[-1] == b"":
        raw.pop()  # after the last newline
    if not raw:
        raise ConfigError(f"{name}: {path} is empty")
    lines = [line.rstrip(b"\r") for line in raw]
    if len(lines) > MAX_CORPUS_LINES:
        raise ConfigError(f"{name}: {path} has {len(lines):,} lines, at most "
                          f"{MAX_CORPUS_LINES:,}")
    longest = max(len(x) for x in lines) + Outbound.stamp_room(fr)
    if longest > max_frame:
        raise ConfigError(f"{name}: a line of {path} makes a {longest}-byte message, over "
                          f"--max-frame {max_frame}")
    return tuple(lines)


def _read_regular(path: str, name: str, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit``; opened without blocking (a FIFO with no
    writer would block a plain open) and checked before anything is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{name}: {path} is not a regular file")
        if st.st_size > limit:
            raise ConfigError(f"{name}: {path} is {st.st_size:,} bytes, at most {limit:,}")
        data = b""
        while len(data) <= limit and (part := os.read(fd, limit + 1 - len(data))):
            data += part
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the check
        raise ConfigError(f"{name}: {path} is over {limit:,} bytes")
    return data


def source_addrs(run: dict, targets: tuple[Target, ...], steps: tuple[Step, ...]
                 ) -> tuple[str, ...]:
    """``--source-addrs`` as a tuple of IPv4 addresses: a range ``A-B`` (last octet) or a
    comma list. Unset: none, unless a loopback target needs more connections than one source
    address has ports for, then as many 127.0.0.x as needed."""
    import ipaddress
    value = run.get("source_addrs") or ""
    text = (",".join(value) if isinstance(value, list) else str(value)).strip()
    name = _name(run, "source_addrs")
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
        out.append(Stage(duration_s=_num(vals, "duration"), conns=_num(vals, "conns"),
                         rate=_num(vals, "rate"), label=str(st.get("label", ""))))
    return tuple(out)


def _safe_name(name: str) -> str:
    """The run name as used in the folder name ``<UTC time>-<name>``: letters, digits and
    ``-_.``; at most MAX_NAME_BYTES (UTF-8), so the folder name fits a file system's 255."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
    if not safe.strip("-."):
        raise ConfigError(f"--name: {name!r} has no usable characters")
    size = len(safe.encode())
    if size > MAX_NAME_BYTES:
        raise ConfigError(f"--name: {size} bytes long, at most {MAX_NAME_BYTES} "
                          f"(it names the results folder)")
    return safe


def _limit(d: dict, table: str, key: str) -> float | None:
    """Config convention for limits: 0 or negative means 'not set'."""
    v = _num({key: d[key], "__names__": {key: _name(d, f"{table}.{key}")}}, key, -math.inf,
             float, LIMIT_SPEC.hi)
    return v if v > 0 else None


def _degradation(d: dict) -> Degradation:
    rate = _limit(d, "degradation", "max_error_rate")
    return Degradation(max_error_rate=rate if rate is not None else 0.0,
                       max_p99_ms=_limit(d, "degradation", "max_p99_ms"),
                       p99_factor=_limit(d, "degradation", "p99_factor"),
                       min_gain=_limit(d, "degradation", "min_gain") or 0.0)


def _thresholds(d: dict) -> Thresholds:
    lost = _num({"max_lost": d["max_lost"], "__names__": {"max_lost": _name(
        d, "thresholds.max_lost")}}, "max_lost", -math.inf, float, MAX_INT64)
    rate = _num({"r": d["max_error_rate"], "__names__": {"r": _name(
        d, "thresholds.max_error_rate")}}, "r", -math.inf, float, LIMIT_SPEC.hi)
    return Thresholds(max_lost=None if lost < 0 else int(lost),
                      max_error_rate=rate if rate >= 0 else None,
                      p50_ms=_limit(d, "thresholds", "p50_ms"),
                      p95_ms=_limit(d, "thresholds", "p95_ms"),
                      p99_ms=_limit(d, "thresholds", "p99_ms"),
                      min_throughput=_limit(d, "thresholds", "min_throughput"),
                      max_server_cpu_pct=_limit(d, "thresholds", "max_server_cpu_pct"),
                      max_server_rss_mb=_limit(d, "thresholds", "max_server_rss_mb"))
