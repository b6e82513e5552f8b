"""The steps of a run and how it paces them: the sweep of ``--conns`` (or ``--messages``), a
scenario's stages, the open or closed loop and think times, ``--until-degraded``'s growth,
the fan-out's sender nodes (``--push-hosts``) and the source addresses connections spread
over. Each problem is one :class:`ConfigError` line naming the flag."""

from __future__ import annotations

from typing import Any

from harness.config.table import FLAG, number
from harness.core.plan import Pacing, Stage, Step, Target
from harness.core.specs import (
    MAX_CONNS,
    MAX_MESSAGES,
    STAGE_KEYS,
    ConfigError,
    flag_name,
    parse_int_list,
)

# One source address gives ~28k ephemeral ports per destination, but connect() finds a free
# one by a search that slows sharply once half of them are taken (16,000 connections to one
# port: 8.7k connects/s from one address, 26k/s from two; 12,500: ~28k/s from one, the
# extra bind() per connect costs more than the search saves): past AUTO_SPREAD_CONNS
# connections to loopback targets, they spread over 127.0.0.1..127.0.0.N automatically,
# at most PORTS_PER_SOURCE per address.
AUTO_SPREAD_CONNS = 12_000
PORTS_PER_SOURCE = 10_000


def pacing_and_steps(run: dict, raw_stages: list[dict], think_range: tuple[float, float]
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


def growth(run: dict) -> tuple[str, int]:
    """How --until-degraded grows the connections: ("double" or "add", the increment)."""
    grow = str(run["grow"])
    if grow not in ("double", "add"):
        raise ConfigError(f"{flag_name(run, 'grow')}: {grow!r} must be 'double' or 'add'")
    increment = number(run, "increment")
    if grow == "add" and bool(run["until_degraded"]) and increment <= 0:
        raise ConfigError(f"{flag_name(run, 'increment')}: give a positive increment for "
                          "grow = 'add'")
    return grow, increment


def push_hosts(run: dict, targets: tuple[Target, ...]) -> tuple[int, ...]:
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

