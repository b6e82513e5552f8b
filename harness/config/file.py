"""harness.toml (or ``--config FILE``) read and checked: every table, key and value type;
and the layers merged: the built-in defaults, the files, a scenario, an environment, flags.

Ranges are checked later, when :func:`harness.config.build.build_plan` turns the merged settings
into a Plan.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from harness.config import alerts as alert_spec
from harness.config.table import (
    BUILTIN,
    BUILTIN_PATH,
    FLAG,
    KNOWN_TOP,
    RUN_DEFAULTS,
    RUN_SPEC,
    TABLE_SPEC,
    TABLES,
)
from harness.core.specs import (
    KIND_SPEC,
    MAX_CONFIG_BYTES,
    MIX_KEYS,
    SCENARIO_ONLY,
    STAGE_KEYS,
    STAGE_SPEC,
    ConfigError,
    Spec,
    check_type,
    shown,
)


def load_file(path: str | None) -> dict[str, Any]:
    """The user's config files as one dict, every key and value type checked:
    ``./harness.toml`` (if present), then ``path`` (``--config FILE``) layered over it.
    The built-in defaults and presets are not in it: :func:`settings` layers it over them.

    Layering: a key of [run], [thresholds] or [degradation] in ``path`` replaces the same
    key of ./harness.toml; a [scenarios.NAME] or [env.NAME] replaces the one of that name
    whole; [alerts], [mix] and the request table ([[requests]] or [[users]]) replace
    ./harness.toml's whole. ``__files__`` keeps each file (for error messages naming the file
    a value came from), ``__origin__`` which file each whole table or preset came from."""
    files = []
    if Path("harness.toml").is_file() and not _same_file("harness.toml", path):
        files.append(_load_one("harness.toml", "harness.toml"))
    if path is not None:
        files.append(_load_one(path, "--config"))
    return layered(files)


PLANS_PACKAGE, PLANS_DIR = "workloads", "plans"  # the shipped plans: workloads/plans/*.toml


def shipped_plans() -> dict[str, tuple[Path, str]]:
    """The plans shipped in the package, by name: (path, the first line of its header)."""
    from importlib.resources import files
    try:
        folder = Path(str(files(PLANS_PACKAGE) / PLANS_DIR))
        paths = sorted(folder.glob("*.toml"))
    except (ModuleNotFoundError, OSError):
        return {}
    return {p.stem: (p, _title(p)) for p in paths}


def _title(path: Path) -> str:
    """A plan's first comment line, without the ``#``."""
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def plan_path(name: str) -> str:
    """The file of the shipped plan ``name`` (``--plan NAME``); ConfigError listing the
    shipped ones when there is none of that name."""
    plans = shipped_plans()
    if name not in plans:
        raise ConfigError(f"--plan: no shipped plan {name!r} (shipped: "
                          f"{', '.join(plans) or 'none'}; harness plans lists them; a file of "
                          "your own goes to --config FILE)")
    return str(plans[name][0])


def settings(file: dict[str, Any], flags: dict[str, Any], scenario: str | None = None,
             env: str | None = None) -> dict[str, Any]:
    """Merge the built-in defaults, the file's tables, a scenario, an environment's
    overrides, then flags (flags given as None are absent). Scenarios and environments come
    from the file, else from the built-in presets."""
    merged: dict[str, Any] = {t: dict(d) for t, d in TABLES.items()}
    path = file.get("__path__", "harness.toml")
    names: dict[str, str] = {}  # where each value came from, for error messages
    layers = [(f, "", f.get("__path__", path)) for f in file.get("__files__", [file])]
    stages: list = []
    if scenario is not None:
        table, where = _preset(file, "scenarios", scenario, path)
        stages = table.get("stages", [])
        layers.append(({"run": {k: v for k, v in table.items() if k in RUN_DEFAULTS}},
                       f"scenarios.{scenario}.", where))
    if env is not None:
        table, where = _preset(file, "env", env, path)
        layers.append((table, f"env.{env}.", where))
        if "baseline" in table:  # an environment's baseline wins over the scenario's
            layers.append(({"run": {"baseline": table["baseline"]}}, f"env.{env}.", where))
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
    merged["requests"] = (file.get("requests"), origin_of(file, "requests"))
    merged["users"] = (file.get("users"), origin_of(file, "users"))
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
        return user[name], origin_of(file, f"{kind}.{name}")
    if name in BUILTIN.get(kind, {}):
        return BUILTIN[kind][name], BUILTIN_PATH
    flag = "--scenario" if kind == "scenarios" else "--env"
    known = sorted(set(user) | set(BUILTIN.get(kind, {})))
    raise ConfigError(f"{flag}: unknown {'scenario' if kind == 'scenarios' else 'environment'} "
                      f"{name!r} (known: {', '.join(known) or 'none'})")


def _same_file(a: str, b: str | None) -> bool:
    try:
        return b is not None and os.path.samefile(a, b)
    except OSError:
        return False


def _load_one(path: str, name: str) -> dict[str, Any]:
    data = _read_toml(path, name)
    check_file(data, path)
    data["__path__"] = path
    return data


TABLE_NAMES = tuple(TABLES)  # run, thresholds, degradation: layered key by key
WHOLE = ("alerts", "mix")  # tables a later file replaces whole
REQUEST_TABLES = ("requests", "users")  # one slot: a file's either replaces both


def layered(files: list[dict[str, Any]]) -> dict[str, Any]:
    """``files`` (each checked, with its ``__path__``) merged, each over the ones before."""
    out: dict[str, Any] = {"__files__": files, "__origin__": {}}
    origin = out["__origin__"]
    for f in files:
        path = f["__path__"]
        out["__path__"] = path
        if any(t in f for t in REQUEST_TABLES):
            for t in REQUEST_TABLES:
                out.pop(t, None)
        for top, value in f.items():
            if top.startswith("__"):
                continue
            if top in ("scenarios", "env", *TABLE_NAMES):
                out.setdefault(top, {}).update(value)
                origin.update({f"{top}.{k}": path for k in value})
            else:  # WHOLE, REQUEST_TABLES
                out[top] = value
                origin[top] = path
    return out


def origin_of(file: dict[str, Any], key: str) -> str:
    """The file a whole table or preset (``alerts``, ``scenarios.NAME``) came from."""
    return file.get("__origin__", {}).get(key) or file.get("__path__", "harness.toml")


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
        if top in ("requests", "users"):
            if not isinstance(value, list):
                raise ConfigError(f"{path}: {top} must be a list of tables ([[{top}]]), "
                                  f"not {shown(value)}")
        elif not isinstance(value, dict):
            raise ConfigError(f"{path}: [{top}] must be a table, not {shown(value)}")
    _check_table(data.get("run", {}), RUN_SPEC, "run.", path)
    for table in ("degradation", "thresholds"):
        _check_table(data.get(table, {}), TABLE_SPEC[table], f"{table}.", path)
    for name, table in data.get("scenarios", {}).items():
        _check_scenario(name, table, path)
    for name, table in data.get("env", {}).items():
        _check_env(name, table, path)
    if "mix" in data:
        _check_mix(data["mix"], path)
    alert_spec.parse(data.get("alerts"), path)


def _check_table(table: Any, specs: dict[str, Spec], where: str, path: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where.rstrip('.')} must be a table, not {shown(table)}")
    for key, value in table.items():
        if key not in specs:
            raise ConfigError(f"{path}: unknown key {where}{key}")
        check_type(value, specs[key], f"{path}: {where}{key}")


def _check_scenario(name: str, table: Any, path: str) -> None:
    where = f"scenarios.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table, not {shown(table)}")
    for key in table:
        if key not in RUN_SPEC and key not in SCENARIO_ONLY:
            raise ConfigError(f"{path}: unknown key {where}.{key}")
    _check_table({k: v for k, v in table.items() if k in RUN_SPEC}, RUN_SPEC, f"{where}.", path)
    check_type(table.get("description", ""), Spec("str"), f"{path}: {where}.description")
    stages = table.get("stages", [])
    if not isinstance(stages, list):
        raise ConfigError(f"{path}: {where}.stages must be a list of tables "
                          f"({{ conns, duration, rate, label }}), not {shown(stages)}")
    clash = sorted({"conns", "duration", "messages"} & set(table)) if stages else []
    if clash:
        raise ConfigError(f"{path}: {where}.{clash[0]}: a scenario with stages takes its "
                          "connections and durations from the stages")
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise ConfigError(f"{path}: {where}.stages[{i}] must be a table, "
                              f"not {shown(stage)}")
        for key in stage:
            if key not in STAGE_KEYS:
                raise ConfigError(f"{path}: unknown stage key {where}.stages[{i}].{key} "
                                  f"(known: {', '.join(sorted(STAGE_KEYS))})")
        _check_table(stage, STAGE_SPEC, f"{where}.stages[{i}].", path)


def _check_env(name: str, table: Any, path: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [env.{name}] must be a table, not {shown(table)}")
    for key, sub in table.items():
        if key == "baseline":  # a run folder to compare with (see settings)
            check_type(sub, RUN_SPEC["baseline"], f"{path}: env.{name}.baseline")
            continue
        if key not in TABLE_SPEC:
            raise ConfigError(f"{path}: unknown table env.{name}.{key} "
                              "(known: thresholds, degradation, baseline)")
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
                          f"({{ name, weight, size }}), not {shown(kinds)}")
    for i, kind in enumerate(kinds):
        if not isinstance(kind, dict):
            raise ConfigError(f"{path}: mix.kinds[{i}] must be a table, not {shown(kind)}")
        _check_table(kind, KIND_SPEC, f"mix.kinds[{i}].", path)
