"""harness.toml + command-line flags -> a validated, frozen :class:`Plan`.

All validation lives here and in the modules this one uses: :mod:`harness.core.specs` (the type
and range of every setting), :mod:`harness.config.file` (harness.toml read and type-checked)
and :mod:`harness.wire.payload` (sizes, the message mix, a corpus file). Every problem raises
:class:`ConfigError` with one line that names the bad key or flag; the CLI turns it into exit
code 2. Precedence: built-in defaults, then ``./harness.toml``, then ``--config FILE`` (or
``--plan NAME``), then flags (see :func:`harness.config.file.load_file`).
"""

from __future__ import annotations

import contextlib
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
from harness.config.table import (
    BUILTIN,
    FLAG,
    RUN_DEFAULTS,
    RUN_SPEC,
    TABLES,
    check_applies,
    number,
)
from harness.core.plan import Degradation, Pacing, Plan, Stage, Step, Target, Thresholds, Tls
from harness.core.specs import (
    LIMIT_SPEC,
    MAX_CONNS,
    MAX_CORPUS_BYTES,
    MAX_CORPUS_LINES,
    MAX_INT64,
    MAX_MESSAGES,
    STAGE_KEYS,
    ConfigError,
    cut,
    flag_name,
    parse_int_list,
)
from harness.protocols.ws import settings as ws
from harness.wire import framing as framing_mod

# Names the CLI and the tests reach through ``harness.config.build`` (defined in the modules above).
__all__ = ["BUILTIN", "FLAG", "MAX_CONNS", "MAX_CORPUS_BYTES", "MAX_CORPUS_LINES", "RUN_DEFAULTS",
           "RUN_SPEC", "TABLES", "ConfigError", "build_plan", "check_file", "check_listen",
           "load_file", "load_workload", "origin_of", "parse_target", "plan_path",
           "search_bounds", "settings", "shipped_plans"]

# One source address gives ~28k ephemeral ports per destination, but connect() finds a free
# one by a search that slows sharply once half of them are taken (16,000 connections to one
# port: 8.7k connects/s from one address, 26k/s from two; 12,500: ~28k/s from one, the
# extra bind() per connect costs more than the search saves): past AUTO_SPREAD_CONNS
# connections to loopback targets, they spread over 127.0.0.1..127.0.0.N automatically,
# at most PORTS_PER_SOURCE per address.
AUTO_SPREAD_CONNS = 12_000
PORTS_PER_SOURCE = 10_000
MAX_NAME_BYTES = 200  # a run name; the folder adds "<UTC time>-" (17) and maybe "-N"


# ---------------------------------------------------------------------------- parsing helpers


def parse_targets(text: str) -> list[Target]:
    """One ``--host`` item: a target, or a destination pool ``host:FIRST-LAST`` (raw TCP),
    one target per port."""
    from harness.core.pools import port_pool
    host, sep, ports = text.strip().rpartition(":")
    if "://" in text or not sep or "-" not in ports:
        return [parse_target(text)]
    try:
        pool = port_pool(ports) or ()
    except ValueError as exc:
        raise ConfigError(f"--host: {cut(text)!r}: {exc}") from None
    return [parse_target(f"{host}:{p}") for p in pool]


def parse_target(text: str) -> Target:
    """``host:port`` or ``[v6]:port`` (raw TCP), or an ``http(s)://host[:port][/path]`` URL
    (HTTP/1.1, over TLS for https; port 80 or 443 by default); the port must be 1-65535."""
    text = text.strip()
    if "://" in text:
        return _parse_url(text)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep or ":" not in host:
            raise ConfigError(f"--host: {cut(text)!r}: expected [IPv6 address]:port")
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


def _parse_url(text: str) -> Target:
    """An ``http://`` or ``https://`` URL: host, port (80 or 443 unless given), path ("/"
    unless given)."""
    from urllib.parse import urlsplit
    scheme = text.partition("://")[0].lower()
    if scheme == "redis":
        return _redis_url(text)
    if protocols.by_scheme(scheme) is None:
        raise ConfigError(f"--host: {cut(text)!r}: unknown URL scheme {cut(scheme)!r} "
                          "(expected http://host:port/path, ws://host:port/path, or host:port "
                          "for raw TCP)")
    try:
        url = urlsplit(text)
        port = url.port if url.port is not None else protocols.SCHEMES[scheme].schemes[scheme]
    except ValueError as exc:
        raise ConfigError(f"--host: {cut(text)!r}: not a valid URL ({exc})") from None
    host = url.hostname or ""
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    if not host or url.username is not None or url.fragment or not path.isprintable() \
            or " " in path:
        raise ConfigError(f"--host: {cut(text)!r}: not a valid URL "
                          f"(expected {scheme}://host[:port][/path])")
    if port == 0:
        raise ConfigError(f"--host: {text!r}: port 0 out of range 1-65535")
    _check_host_name(host, text)
    return Target(host, port, scheme, path)


def _redis_url(text: str) -> Target:
    """``redis://host[:port]`` (port 6379 unless given): the redis workload's target. No
    user, password or database: harness sends no AUTH or SELECT."""
    from urllib.parse import urlsplit
    try:
        url = urlsplit(text)
        port = protocols.by_name("redis").default_port("redis") if url.port is None \
            else url.port
    except ValueError as exc:
        raise ConfigError(f"--host: {cut(text)!r}: not a valid URL ({exc})") from None
    host = url.hostname or ""
    if not host or url.username is not None or url.path not in ("", "/") or url.query \
            or url.fragment:
        raise ConfigError(f"--host: {cut(text)!r}: expected redis://host[:port] (no user, "
                          "password or database: harness sends no AUTH or SELECT)")
    if port == 0:
        raise ConfigError(f"--host: {text!r}: port 0 out of range 1-65535")
    _check_host_name(host, text)
    return Target(host, port, "redis")


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
        raise ConfigError(f"--host: {cut(text)!r}: not a valid host name (labels of 1-63 "
                          "letters, digits or hyphens, 253 characters in all)")


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
    from harness.config.usertable import parse_think
    from harness.protocols.kvcmds import FLAGS, KV, kv_workload, plan_requests
    from harness.wire.batch import Outbound, size_bounds
    from harness.wire.payload import check_size, parse_mix, parse_size, read_corpus
    from harness.wire.reqtable import parse_accept
    names = merged.get("names", {})
    run = dict(merged["run"], __names__=names)
    tables = {t: dict(merged[t], __names__=names) for t in ("degradation", "thresholds")}
    if rate_and_inflight:
        raise ConfigError("--rate and --inflight exclude each other: --rate is the open loop "
                          "(a fixed schedule), --inflight the closed loop")
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
    spec = parse_size(run["size"], flag_name(run, "size"))
    if workload not in KV:  # redis/memcached: --size is the value's (kvcmds checks it)
        check_size(spec, flag_name(run, "size"), fr, max_frame)
    size = size_bounds(spec)[0]
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
    pacing, steps = _pacing_and_steps(run, merged.get("stages") or [], think)
    check_think(pacing, users, flag_name(run, "think"))
    grow, increment = _growth(run)
    workers = number(run, "workers") or auto_workers(not targets, steps, len(targets),
                                                     number(run, "max_conns")
                                                     if run["until_degraded"] else 0)
    push = _push_hosts(run, targets)
    return Plan(
        targets=targets, steps=steps, workload=workload, framing=fr_name, size=size,
        max_frame=max_frame, pacing=pacing, warmup_s=number(run, "warmup"),
        timeout_s=number(run, "timeout"), connect_timeout_s=number(run, "connect_timeout"),
        connect_rate=number(run, "connect_rate"), workers=workers, push_hosts=push,
        seed=number(run, "seed"), name=_safe_name(str(run["name"])),
        results_dir=str(run["results_dir"]), degradation=_degradation(tables["degradation"]),
        thresholds=_thresholds(tables["thresholds"]),
        embedded=None if targets else (("ws-" if run.get("ws") else "")
                                       + ("chat" if workload == "chat" else "echo")),
        until_degraded=bool(run["until_degraded"]), grow=grow, increment=increment,
        max_conns=number(run, "max_conns"),
        scenario=run.get("scenario"), env=merged.get("env_name"),
        server_pid=number(run, "server_pid") or None,
        server_cmd=str(run["server_cmd"]) or None,
        monitor_interval_s=number(run, "monitor_interval"),
        shared_core_pct=number(run, "shared_core_pct"),
        judge_shared_core=bool(run.get("judge_shared_core")),
        mix=mix, mix_by=mix_by, requests=requests, users=users, corpus=corpus, size_spec=spec,
        source_addrs=source_addrs(run, targets, steps, len(targets) if workload == "echo" else 1),
        tls=tls_settings(run, targets),
        accept=parse_accept(str(run["accept"]), flag_name(run, "accept")),
        ws_subprotocol=ws.subprotocol(run),
        headers=ws.headers(run), ping_interval_s=number(run, "ping_interval"),
        ws_text=ws.text(run, targets, spec), ws_match=ws.match(run),
        reconnect=bool(run.get("reconnect")), ws_compress=bool(run.get("ws_compress")),
        baseline=_baseline(run, merged),
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


def _pacing_and_steps(run: dict, raw_stages: list[dict], think_range: tuple[float, float]
                      ) -> tuple[Pacing, tuple[Step, ...]]:
    """The pacing and the steps: a sweep of steps, or one step made of a scenario's stages
    (open loop at the first stage's rate when any stage has a rate)."""
    rate = number(run, "rate")
    _exclusive(run, bool(raw_stages))
    inflight = number(run, "inflight")
    think, think_max = think_range
    pacing = Pacing("open" if rate > 0 else "closed", inflight, rate, think, think_max)
    stages = _stages(raw_stages, rate)
    steps = _steps(run, rate) if not stages else (
        Step(0, max(st.conns for st in stages), sum(st.duration_s for st in stages), None,
             stages[0].rate, number(run, "listen"), stages),)
    if stages and any(st.rate > 0 for st in stages):
        pacing = Pacing("open", inflight, stages[0].rate, think, think_max)
    return pacing, steps


def check_think(pacing: Pacing, users: tuple, flag: str) -> None:
    """A think time belongs to the closed loop, one request at a time per connection (a
    user): refused with an open-loop rate, and with --inflight above 1."""
    if pacing.think_max_s <= 0:
        if not any(u.think_max_s > 0 for u in users):
            return
        flag = "[[users]] think"  # only a class thinks
    if pacing.mode == "open":
        raise ConfigError(f"{flag}: a think time is the closed loop's (a user waits after "
                          "each response); an open-loop --rate sets the sends itself")
    if pacing.inflight > 1:
        raise ConfigError(f"{flag}: a think time needs --inflight 1: a user waits after each "
                          f"response before the next request (got --inflight "
                          f"{pacing.inflight})")


def _growth(run: dict) -> tuple[str, int]:
    """How --until-degraded grows the connections: ("double" or "add", the increment)."""
    grow = str(run["grow"])
    if grow not in ("double", "add"):
        raise ConfigError(f"{flag_name(run, 'grow')}: {grow!r} must be 'double' or 'add'")
    increment = number(run, "increment")
    if grow == "add" and bool(run["until_degraded"]) and increment <= 0:
        raise ConfigError(f"{flag_name(run, 'increment')}: give a positive increment for "
                          "grow = 'add'")
    return grow, increment


def _push_hosts(run: dict, targets: tuple[Target, ...]) -> tuple[int, ...]:
    """--push-hosts: the target indexes (0-based) that senders connect to; () = every one."""
    push = tuple(number({"push_hosts": h}, "push_hosts") for h in
                 parse_list_any(run["push_hosts"]))
    n_targets = max(len(targets), 1)
    if any(p >= n_targets for p in push):
        raise ConfigError(f"--push-hosts: node index out of range (0 to {n_targets - 1})")
    return push


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
        raise ConfigError(f"--duration and {flag_name(run, 'messages')} exclude each other: a step "
                          "ends after its messages, or after --duration seconds")


def parse_list_any(v: Any) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, str):
        return [x for x in v.split(",") if x.strip()]
    return [v]


def _steps(run: dict, rate: float) -> tuple[Step, ...]:
    conns = parse_int_list(run["conns"], flag_name(run, "conns"), 1, MAX_CONNS)
    messages = (parse_int_list(run["messages"], flag_name(run, "messages"), 1, MAX_MESSAGES)
                if run["messages"] else [])
    listen = number(run, "listen")
    if not conns:
        raise ConfigError(f"{flag_name(run, 'conns')}: give at least one connection count")
    duration = number(run, "duration")
    if messages:
        if len(conns) > 1 and len(messages) > 1:
            raise ConfigError("--conns and --messages cannot both sweep: give one of them a "
                              "single value")
        pairs = [(c, m) for c in conns for m in messages]
        return tuple(Step(i, c, None, m, rate, listen) for i, (c, m) in enumerate(pairs))
    return tuple(Step(i, c, duration, None, rate, listen) for i, c in enumerate(conns))


def source_addrs(run: dict, targets: tuple[Target, ...], steps: tuple[Step, ...],
                 dests: int = 1) -> tuple[str, ...]:
    """``--source-addrs`` as a tuple of IPv4 addresses (see :func:`harness.core.pools.source_pool`:
    addresses, ranges, CIDR blocks, in a comma list). Unset: none, unless a loopback target
    needs more connections than one source address has ports for, then as many 127.0.0.x
    as the busiest of ``dests`` destinations needs (PORTS_PER_SOURCE per pair)."""
    import ipaddress

    from harness.core.pools import source_pool
    value = run.get("source_addrs") or ""
    text = (",".join(str(v) for v in value) if isinstance(value, list) else str(value)).strip()
    if text:
        try:
            return source_pool(text)
        except ValueError as exc:
            raise ConfigError(f"{flag_name(run, 'source_addrs')}: {exc}") from None
    loopback = all(t.host.startswith("127.") or t.host == "localhost" for t in targets)
    most = max((s.conns + s.listen for s in steps), default=0)
    per_dest = -(-most // max(dests, 1))
    if not targets or not loopback or per_dest <= AUTO_SPREAD_CONNS:
        return ()
    first = int(ipaddress.IPv4Address("127.0.0.1"))
    return tuple(str(ipaddress.IPv4Address(first + k))
                 for k in range(1 + per_dest // PORTS_PER_SOURCE))


def _stages(raw: list[dict], rate: float) -> tuple[Stage, ...]:
    """A scenario's stages; a stage without ``rate`` takes the run's rate (``--rate`` or
    [run] rate; 0 = closed loop)."""
    out = []
    for i, st in enumerate(raw):
        where = {k: f"stages[{i}].{k}" for k in STAGE_KEYS}
        vals = {"conns": st.get("conns", 1), "duration": st.get("duration", 10.0),
                "rate": st.get("rate", rate), "__names__": where}
        out.append(Stage(duration_s=number(vals, "duration"), conns=number(vals, "conns"),
                         rate=number(vals, "rate"), label=str(st.get("label", ""))))
    return tuple(out)


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


# ---------------------------------------------------------------------------- TLS

MAX_CA_BYTES = 1 << 20  # a --ca file (PEM: one or more CA certificates)


def tls_settings(run: dict, targets: tuple[Target, ...]) -> Tls | None:
    """TLS for an https:// target or ``--tls`` with host:port, with ``--ca FILE`` read and
    checked here, or ``--insecure``; None for plain TCP."""
    schemes = {t.scheme for t in targets}
    want = bool(run.get("tls")) or bool(protocols.TLS_SCHEMES & schemes)
    ca, insecure = str(run.get("ca") or ""), bool(run.get("insecure"))
    if {"http", "https"} <= schemes:
        raise ConfigError("--host: http:// and https:// targets cannot be mixed")
    if {"ws", "wss"} <= schemes:
        raise ConfigError("--host: ws:// and wss:// targets cannot be mixed")
    if run.get("tls") and "ws" in schemes:
        raise ConfigError(f"{flag_name(run, 'tls')}: a ws:// target is plain WebSocket; give "
                          "wss://host:port/ for WebSocket over TLS (use wss://)")
    if run.get("tls") and "http" in schemes:
        raise ConfigError(f"{flag_name(run, 'tls')}: an http:// target is plain HTTP; give "
                          "https://host:port/ for HTTP over TLS")
    if ca and insecure:
        raise ConfigError(f"{flag_name(run, 'ca')} and {flag_name(run, 'insecure')} exclude "
                          "each other: verify against a CA file, or do not verify")
    if not want:
        if ca or insecure:
            name = flag_name(run, "ca" if ca else "insecure")
            raise ConfigError(f"{name}: only for TLS targets (https://, wss:// or --tls)")
        return None
    if not targets:
        raise ConfigError(f"{flag_name(run, 'tls')}: needs a --host target (the embedded "
                          "server speaks plain TCP)")
    return Tls(ca_pem=_read_ca(ca, flag_name(run, "ca")) if ca else "", insecure=insecure)


def _read_ca(path: str, name: str) -> str:
    """The text of a PEM CA file that OpenSSL accepts as trust anchors."""
    import ssl
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CA_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_CA_BYTES:
        raise ConfigError(f"{name}: {path!r} is over {MAX_CA_BYTES:,} bytes: not a CA file")
    text = data.decode("latin-1")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{name}: {path!r} holds no PEM certificate "
                          "(-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{name}: {path!r}: not a valid PEM certificate "
                          f"({getattr(exc, 'reason', None) or exc})") from None
    return text
