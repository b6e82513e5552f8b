"""harness.toml + command-line flags -> a validated, frozen :class:`Plan`.

All validation lives here and in the modules this one uses: :mod:`harness.core.specs` (the type
and range of every setting), :mod:`harness.config.file` (harness.toml read and type-checked)
and :mod:`harness.wire.payload` (sizes, the message mix, a corpus file). Every problem raises
:class:`ConfigError` with one line that names the bad key or flag; the CLI turns it into exit
code 2. Precedence: built-in defaults, then ``./harness.toml``, then ``--config FILE`` (or
``--plan NAME``), then flags (see :func:`harness.config.file.load_file`).
"""

from __future__ import annotations

import math
import os
from typing import Any

from harness import protocols
from harness.config.file import (
    _read_toml,
    check_file,
    load_file,
    origin_of,
    plan_path,
    settings,
    shipped_plans,
)
from harness.config.hosts import parse_target, parse_targets, tls_settings
from harness.config.steps import check_think, growth, pacing_and_steps, push_hosts, source_addrs
from harness.config.table import (
    BUILTIN,
    FLAG,
    RUN_DEFAULTS,
    RUN_SPEC,
    TABLES,
    check_applies,
    number,
)
from harness.core.plan import Degradation, Plan, Step, Target, Thresholds
from harness.core.specs import (
    LIMIT_SPEC,
    MAX_CONNS,
    MAX_CORPUS_BYTES,
    MAX_CORPUS_LINES,
    MAX_INT64,
    ConfigError,
    flag_name,
)
from harness.wire import framing as framing_mod

# Names the CLI and the tests reach through ``harness.config.build`` (defined in the modules above).
__all__ = ["BUILTIN", "FLAG", "MAX_CONNS", "MAX_CORPUS_BYTES", "MAX_CORPUS_LINES", "RUN_DEFAULTS",
           "RUN_SPEC", "TABLES", "ConfigError", "build_plan", "check_file", "check_listen",
           "load_file", "load_workload", "origin_of", "parse_target", "plan_path",
           "search_bounds", "settings", "shipped_plans"]

MAX_NAME_BYTES = 200  # a run name; the folder adds "<UTC time>-" (17) and maybe "-N"




def default_workers(embedded: bool) -> int:
    cores = len(os.sched_getaffinity(0))
    return max(1, cores - (1 if embedded and cores > 1 else 0))


def auto_workers(embedded: bool, steps: tuple[Step, ...], nodes: int, most: int = 0) -> int:
    """``--workers 0``: the usable cores, or more when the largest step needs more worker
    processes than that to stay under the open-files limit (harness.core.limits.fd_workers)."""
    from harness.core.limits import fd_workers, nofile_hard
    conns = max([most, *(s.conns + s.listen * max(nodes, 1) for s in steps)])
    return max(default_workers(embedded), fd_workers(conns, nofile_hard()))


# ---------------------------------------------------------------------------- the plan


def build_plan(merged: dict[str, Any], rate_and_inflight: bool = False) -> Plan:
    # here, not at the top: they import numpy, which settings() (a bad key or flag, the
    # defaults --help shows) does not need
    names = merged.get("names", {})
    run = dict(merged["run"], __names__=names)
    if rate_and_inflight:
        raise ConfigError("--rate and --inflight exclude each other: --rate is the open loop "
                          "(a fixed schedule), --inflight the closed loop")
    from harness.protocols.kvcmds import kv_workload
    host = run["host"] or ""
    targets = tuple(t for h in str(host).split(",") if h.strip() for t in parse_targets(h))
    workload = _http_workload(targets, kv_workload(targets, str(run["workload"])))
    check_applies(run, *_sort(targets, workload, bool(run.get("ws"))))
    fr_name = str(run["framing"])
    try:
        fr = framing_mod.get(fr_name)
    except ValueError as exc:
        raise ConfigError(f"--framing: {exc}") from None
    max_frame = number(run, "max_frame")
    payload = _payload(merged, run, targets, workload, fr, max_frame)
    pacing, steps = pacing_and_steps(run, merged.get("stages") or [], payload.pop("think"))
    check_think(pacing, payload["users"], flag_name(run, "think"))
    if payload["users"]:  # flows wait for each response (harness.config.usertable)
        from harness.config.usertable import check_flows
        check_flows(pacing, payload["users"])
    return Plan(targets=targets, steps=steps, workload=workload, framing=fr_name,
                max_frame=max_frame, pacing=pacing, **payload,
                **_run_fields(merged, run, targets, workload, steps),
                **_protocol_fields(run, targets, workload))


def _payload(merged: dict[str, Any], run: dict, targets: tuple[Target, ...], workload: str,
             fr: Any, max_frame: int) -> dict[str, Any]:
    """What the run sends: --size, the [mix] of kinds (or the kinds of its requests), the
    request table and user classes (with the run's think time), a --corpus file."""
    from harness.config.usertable import parse_think
    from harness.protocols.kvcmds import FLAGS, KV, plan_requests
    from harness.wire.batch import Outbound, size_bounds
    from harness.wire.payload import check_size, parse_mix, parse_size, read_corpus
    spec = parse_size(run["size"], flag_name(run, "size"))
    if workload not in KV:  # redis/memcached: --size is the value's (kvcmds checks it)
        check_size(spec, flag_name(run, "size"), fr, max_frame)
    mix, mix_by = parse_mix(merged.get("mix") or {}, fr, max_frame)
    think = parse_think(run["think"], flag_name(run, "think"))
    requests, users = _requests(merged, run, targets, workload, think)
    if workload in KV:
        if mix:
            raise ConfigError(f"[mix] does not apply to {workload}: give a weighted command "
                              f"set instead ({FLAGS[workload]} set:1,get:3)")
        requests = plan_requests(run, workload, spec, max_frame, number(run, "seed"))
    if requests:
        if mix:
            raise ConfigError("[mix] and [[requests]] exclude each other: each request is a kind")
        from workloads.base import Kind
        mix = tuple(Kind(r.name, r.weight, Outbound.stamp_room(fr)) for r in requests)
    corpus = read_corpus(str(run["corpus"]), flag_name(run, "corpus"), fr, max_frame)
    return {"size": size_bounds(spec)[0], "size_spec": spec, "mix": mix, "mix_by": mix_by,
            "requests": requests, "users": users, "corpus": corpus, "think": think}


def _run_fields(merged: dict[str, Any], run: dict, targets: tuple[Target, ...],
                workload: str, steps: tuple[Step, ...]) -> dict[str, Any]:
    """The Plan's settings of the run as a whole: windows, workers, growth, monitoring,
    limits, naming, the sources and fan-out senders."""
    names = merged.get("names", {})
    tables = {t: dict(merged[t], __names__=names) for t in ("degradation", "thresholds")}
    grow, increment = growth(run)
    until = bool(run["until_degraded"])
    workers = number(run, "workers") or auto_workers(
        not targets, steps, len(targets), number(run, "max_conns") if until else 0)
    return dict(
        warmup_s=number(run, "warmup"), timeout_s=number(run, "timeout"),
        connect_timeout_s=number(run, "connect_timeout"),
        connect_rate=number(run, "connect_rate"), workers=workers,
        push_hosts=push_hosts(run, targets), seed=number(run, "seed"),
        name=_safe_name(str(run["name"])), results_dir=str(run["results_dir"]),
        degradation=_degradation(tables["degradation"]),
        thresholds=_thresholds(tables["thresholds"]),
        embedded=None if targets else (("ws-" if run.get("ws") else "")
                                       + ("chat" if workload == "chat" else "echo")),
        until_degraded=until, grow=grow, increment=increment,
        max_conns=number(run, "max_conns"), scenario=run.get("scenario"),
        env=merged.get("env_name"), server_pid=number(run, "server_pid") or None,
        server_cmd=str(run["server_cmd"]) or None,
        monitor_interval_s=number(run, "monitor_interval"),
        shared_core_pct=number(run, "shared_core_pct"),
        judge_shared_core=bool(run.get("judge_shared_core")),
        source_addrs=source_addrs(run, targets, steps,
                                  len(targets) if workload == "echo" else 1),
        baseline=_baseline(run, merged))


def _protocol_fields(run: dict, targets: tuple[Target, ...], workload: str) -> dict[str, Any]:
    """The Plan's settings of the run's layers and protocol: TLS, HTTP's --accept, and the
    protocol's own part (``Plan.options``: WebSocket's harness.protocols.ws.settings.WsPlan)."""
    from harness.wire.reqtable import parse_accept
    return dict(
        tls=tls_settings(run, targets),
        accept=parse_accept(str(run["accept"]), flag_name(run, "accept")),
        options=_protocol(targets, workload, bool(run.get("ws"))).plan_options(run, targets))


def _requests(merged: dict[str, Any], run: dict, targets: tuple[Target, ...],
              workload: str, think: tuple[float, float]) -> tuple[tuple, tuple]:
    """The request table and the user classes, rendered for the first target: from
    ``--requests FILE`` (its ``[[requests]]`` or ``[[users]]``), else from the config
    file's; ((), ()) when there is none. Classes bring their requests, class by class."""
    table, where = merged.get("requests") or (None, "")
    users, users_where = merged.get("users") or (None, "")
    path = str(run.get("requests") or "")
    if path:
        data = _read_toml(path, flag_name(run, "requests"))
        extra = sorted(set(data) - {"requests", "users"})
        if extra or not {"requests", "users"} & set(data):
            raise ConfigError(f"{flag_name(run, 'requests')}: {path}: expected only a "
                              f"[[requests]] or [[users]] table"
                              + (f", not [{extra[0]}]" if extra else ""))
        table, users, where = data.get("requests"), data.get("users"), path
        users_where = path
    if table is None and users is None:
        return (), ()
    if table is not None and users is not None:
        raise ConfigError(f"{where}: [[requests]] and [[users]] exclude each other: each "
                          "user class has its own [[users.requests]]")
    if workload != "http" or not targets:
        raise ConfigError(f"{where if table is not None else users_where}: "
                          f"[[{'requests' if table is not None else 'users'}]] needs an "
                          "http:// target (--host http://host:port/)")
    from harness.config.usertable import parse_users
    from harness.wire.reqtable import parse_requests
    t = targets[0]
    host = f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}"
    if users is not None:
        flagged = run["__names__"].get("think") == FLAG["think"]  # --think: every class's
        classes, rendered = parse_users(users, users_where, host, number(run, "seed"), think,
                                        flagged)
        return rendered, classes
    return parse_requests(table, where, host, number(run, "seed")), ()


def _sort(targets: tuple[Target, ...], workload: str, ws: bool) -> tuple[str, str]:
    """What sort of run this is, for the settings that apply to some only (specs.APPLIES),
    and its target said for a message: ("tcp", "raw tcp 127.0.0.1:5000")."""
    if not targets:
        return ("ws", "") if ws else ("embedded", "the embedded server (no --host)")
    t = targets[0]
    scheme = _kind(t.scheme)
    if workload in protocols.KV:
        return workload, f"--workload {workload}"
    if scheme == "tcp":
        return "tcp", f"raw tcp {t.label}"
    return scheme, t.label


def _protocol(targets: tuple[Target, ...], workload: str, ws: bool) -> protocols.Spec:
    """The protocol the run speaks: its workload's (redis, memcached), else its first
    target's scheme's (--ws: WebSocket's with no target), else raw TCP's."""
    if workload in protocols.KV:
        return protocols.by_name(workload)
    if not targets:
        return protocols.by_name("ws" if ws else "tcp")
    return protocols.by_scheme(targets[0].scheme) or protocols.by_name("tcp")


def _kind(scheme: str) -> str:
    """The kind of run a target scheme makes: its protocol's (https -> http, wss -> ws),
    else the scheme ("tcp")."""
    spec = protocols.by_scheme(scheme)
    return spec.sort if spec is not None else scheme


def _http_workload(targets: tuple[Target, ...], workload: str) -> str:
    """The workload of the run: an http:// target turns the default echo into http; raw
    TCP and HTTP targets do not mix."""
    schemes = {_kind(t.scheme) for t in targets}
    if len(schemes) > 1:
        raise ConfigError("--host: http://, ws:// URLs and raw host:port targets cannot be "
                          "mixed")
    if schemes == {"ws"} and workload == "http":
        raise ConfigError("--workload: http needs an http:// target, not ws://")
    if schemes == {"http"} and workload == "echo":
        return "http"
    if schemes != {"http"} and workload == "http":
        raise ConfigError("--workload: http needs an http:// target (--host http://host:port/)")
    return workload


def _baseline(run: dict, merged: dict[str, Any]) -> str | None:
    """The baseline run folder, ``{scenario}`` and ``{env}`` filled in; None for none."""
    text = str(run.get("baseline") or "")
    if not text:
        return None
    values = {"scenario": run.get("scenario") or "", "env": merged.get("env_name") or ""}
    try:
        return text.format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"{flag_name(run, 'baseline')}: {text!r}: only {{scenario}} and "
                          f"{{env}} may be filled in ({type(exc).__name__}: {exc})") from None


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
    v = number({key: d[key], "__names__": {key: flag_name(d, f"{table}.{key}")}}, key, -math.inf,
             float, LIMIT_SPEC.hi)
    return v if v > 0 else None


def _degradation(d: dict) -> Degradation:
    v = {k: _limit(d, "degradation", k) for k in TABLES["degradation"]}
    return Degradation(max_error_rate=v["max_error_rate"] or 0.0, max_p99_ms=v["max_p99_ms"],
                       p99_factor=v["p99_factor"], min_gain=v["min_gain"] or 0.0)


def _thresholds(d: dict) -> Thresholds:
    lost = number({"max_lost": d["max_lost"], "__names__": {"max_lost": flag_name(
        d, "thresholds.max_lost")}}, "max_lost", -math.inf, float, MAX_INT64)
    rate = number({"r": d["max_error_rate"], "__names__": {"r": flag_name(
        d, "thresholds.max_error_rate")}}, "r", -math.inf, float, LIMIT_SPEC.hi)
    limits = {k: _limit(d, "thresholds", k) for k in TABLES["thresholds"]
              if k not in ("max_lost", "max_error_rate")}
    return Thresholds(max_lost=None if lost < 0 else int(lost),
                      max_error_rate=rate if rate >= 0 else None, **limits)


def check_listen(plan: Plan, workload: Any) -> None:
    """Listen-only connections only make sense where messages are broadcast to them."""
    if workload.delivery != "broadcast" and any(s.listen for s in plan.steps):
        raise ConfigError(f"--listen: listen-only connections need a broadcast workload "
                              f"(e.g. chat); {workload.name} replies only to the sender")


KV_PROTOCOLS = frozenset(protocols.by_name(k).workload_protocol for k in protocols.KV)


def load_workload(plan: Plan) -> Any:
    from workloads import WorkloadError, load
    try:
        cls = load(plan.workload)
        if getattr(cls, "protocol", "framed") in KV_PROTOCOLS and not plan.requests:
            raise WorkloadError(f"workload {plan.workload}: a {cls.protocol} workload is run "
                                "as --workload redis or --workload memcached")
        return cls(plan.size_spec if plan.size_spec is not None else plan.size, plan.seed)
    except WorkloadError as exc:
        raise ConfigError(str(exc)) from None
    except Exception as exc:  # a user's workload whose constructor fails
        raise ConfigError(f"workload {plan.workload}: {type(exc).__name__}: {exc}") from None


def search_bounds(over: str, lo: float | None, hi: float | None, conns: int
                  ) -> tuple[float, float]:
    """--lo and --hi (defaults: 100 to 100,000 msgs/s, or 1 to 1000 conns), finite, in
    order, and within what a probe can run: --rate's range per connection, or MAX_CONNS."""
    lo = lo if lo is not None else (100.0 if over == "rate" else 1.0)
    hi = hi if hi is not None else (100_000.0 if over == "rate" else 1000.0)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(f"--lo/--hi: need finite 0 < lo < hi, got {lo:g} and {hi:g}")
    rate = RUN_SPEC["rate"]
    if over == "conns" and hi > MAX_CONNS:
        raise ConfigError(f"--hi: at most {MAX_CONNS:,} connections")
    if over == "rate" and not (rate.zero_or or 0) <= lo / conns <= hi / conns <= rate.hi:
        raise ConfigError(f"--lo/--hi: over {conns} connections the rate per connection "
                          f"must stay within {rate.zero_or:g} to {rate.hi:g} msgs/s")
    return lo, hi
