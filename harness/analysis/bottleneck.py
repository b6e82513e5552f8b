"""Was the client, or the machine, the bottleneck of a step? The client-bound rules (a
worker's own CPU, its wait for a core, an open loop's slipped schedule), the cores that other
processes shared, and why a step is left out of the verdict (client-bound, shared core, cut
short). Figures in % of one core."""

from __future__ import annotations

from dataclasses import replace

from harness.analysis.summary import StepSummary

CLIENT_BOUND_CPU = 90.0  # a worker this busy (% of one core) measures itself
BEHIND_FRACTION = 0.01  # open loop: this share of sends over 5 ms late => client-bound
CLIENT_BUSY_PCT = 80.0  # a worker running or waiting for its core this % of the time
RUN_QUEUE_PCT = 10.0  # a worker runnable but waiting for its core this % of the time
SHARED_CORE_PCT = 30.0  # default of --shared-core-pct: others took this much of a worker's
# (or the server's) core


def client_bound_rule(client_cpu: float, behind: int, sent: int, open_loop: bool,
                      demand: tuple[float, float] = (0.0, 0.0)) -> tuple[str, str] | None:
    """Which client-bound rule fired, and its figure; None when the client kept up.

    ``demand``: the busiest worker's CPU % and run-queue wait % (runnable, but waiting for
    its core) of the step's wall time. The rules, in order:

    - ``client_cpu``: a worker used >= CLIENT_BOUND_CPU (90%) of its core;
    - ``client_busy``: CPU + run-queue wait >= CLIENT_BUSY_PCT (80%): the worker was idle,
      waiting on the server, less than a fifth of the time, so the load it offered was
      near its own ceiling (a worker at 83-89% CPU no longer passes or fails by luck);
    - ``run_queue``: run-queue wait >= RUN_QUEUE_PCT (10%): replies sat unread while the
      worker waited for its core, and their latency counts that wait;
    - ``behind_schedule`` (open loop): more than BEHIND_FRACTION (1%) of sends went out over
      5 ms behind their schedule: the schedule slipped.
    """
    if client_cpu >= CLIENT_BOUND_CPU:
        return "client_cpu", (f"a worker used {client_cpu:.0f}% of its core "
                              f"(>= {CLIENT_BOUND_CPU:.0f}%)")
    cpu, wait = demand
    if cpu + wait >= CLIENT_BUSY_PCT:
        return "client_busy", (f"a worker ran {cpu:.0f}% and waited for its core {wait:.0f}% "
                               f"of the time (together >= {CLIENT_BUSY_PCT:.0f}%: idle, "
                               "waiting on the server, under a fifth of it)")
    if wait >= RUN_QUEUE_PCT:
        return "run_queue", (f"a worker waited for its core {wait:.0f}% of the time (>= "
                             f"{RUN_QUEUE_PCT:.0f}%; it ran {cpu:.0f}%): replies sat unread "
                             "meanwhile")
    if open_loop and sent > 0 and behind / sent > BEHIND_FRACTION:
        return "behind_schedule", (f"{behind / sent:.1%} of sends went out over 5 ms behind "
                                   f"schedule (> {BEHIND_FRACTION:.0%}), client CPU "
                                   f"{client_cpu:.0f}%")
    return None


WAIT_RULES = ("client_busy", "run_queue")  # client-bound rules that count the wait for a core


def step_skipped(s: dict) -> str | None:
    """Why a step cannot be judged (it measured the client or a busy machine, or was cut
    short), or None. A whole step without a valid reply is judged all the same: neither a
    busy client nor a busy machine explains that. A step client-bound only by its wait for
    a core that other processes took is said to be on a shared core: the busy machine's
    doing."""
    if s.get("partial"):
        return "cut short"
    if s["received"] == 0:
        return None
    waited = s.get("client_bound_rule") in WAIT_RULES  # for a core others took
    if s.get("core_shared") and (waited or not s.get("client_bound")):
        return "shared core"
    if s.get("client_bound"):
        return "client-bound"
    return None


def skip_detail(s: dict) -> str:
    """Why a step was not judged, with each rule's figure: "client-bound (a worker used 95%
    of its core ...)", "shared core (other processes took 45% of core 1, worker0's)", or
    both, joined by "; "."""
    why = step_skipped(s)
    if why not in ("client-bound", "shared core"):
        return why or "judged"
    out = []
    if s.get("client_bound"):
        detail = s.get("client_bound_detail") or f"client CPU {s.get('client_cpu_pct', 0):.0f}%"
        out.append(f"client-bound ({detail})")
    if s.get("core_shared"):
        sc = s.get("shared_core") or {}
        out.append(f"shared core (other processes took {sc.get('others_pct', 0):.0f}% of core "
                   f"{sc.get('core')}, {sc.get('role')}'s)")
    return "; ".join(out)


def shared_core(resources: dict) -> dict | None:
    """The pinned worker or server core on which other processes took the most CPU over the
    step: {"role", "core", "others_pct"}; None when no pinned core was sampled."""
    worst = None
    for role, r in resources.items():
        others = r.get("others_on_core_pct")
        if others is None or not (role.startswith(("worker", "server"))):
            continue
        if worst is None or others > worst["others_pct"]:
            worst = {"role": role, "core": r.get("core"), "others_pct": round(others, 1)}
    return worst


def resource_fields(resources: dict, cores: dict | None = None, others: list | None = None,
                    limit: float = SHARED_CORE_PCT, judge: bool = False) -> dict:
    """A step's resource figures as summary fields, flagging it ``core_shared`` (left out of
    the verdict) when other processes took >= ``limit`` % of a worker's or the server's
    core; with ``judge`` it is judged all the same and flagged ``judged_shared_core``.
    ``others``: the busiest other processes (harness.run.machine.top_others), named in
    ``shared_core["processes"]``."""
    out: dict = {"resources": resources}
    if cores:
        out["machine_cpu"] = {str(c): v for c, v in cores.items()}
    worst = shared_core(resources)
    if worst is not None:
        busy = worst["others_pct"] >= limit
        out["shared_core"] = dict(worst, limit_pct=limit, processes=others or [])
        out["core_shared"] = busy and not judge
        if busy and judge:
            out["judged_shared_core"] = True
    return out


def judge_waits(s: StepSummary) -> StepSummary:
    """--judge-shared-core: a worker's wait for a core that other processes took is the busy
    machine's doing, so the client-bound rules judge the worker's own CPU alone; a step that
    was client-bound only by that wait is judged, marked ``judged_shared_core``."""
    if s.client_bound_rule not in WAIT_RULES:
        return s
    open_loop = s.behind_schedule is not None
    bound = client_bound_rule(s.client_cpu_pct, s.behind_schedule or 0, s.sent, open_loop,
                              (s.client_cpu_pct, 0.0))
    if bound is not None:
        return replace(s, client_bound_rule=bound[0], client_bound_detail=bound[1])
    return replace(s, client_bound=False, client_bound_rule=None, client_bound_detail=None,
                   judged_shared_core=True)


def with_resources(summary: StepSummary, resources: dict, cores: dict | None = None,
                   others: list | None = None, limit: float = SHARED_CORE_PCT,
                   judge: bool = False) -> StepSummary:
    """``summary`` with its step's resource figures (:func:`resource_fields`)."""
    return replace(summary, **resource_fields(resources, cores, others, limit, judge))
