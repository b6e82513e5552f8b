"""``harness history``'s grouping and charts, from synthetic run documents: runs of one plan
are one trend whatever their names; a shortened run of it is another; one run is a
sentence, not a point on a 4-year axis."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from harness.report import history, history_charts


def doc(name: str = "chat", started: float = 1.8e9, duration_s: float = 60.0,
        conns: tuple[int, ...] = (10, 100), p99: float = 2.0) -> dict:
    steps = [{"index": k, "conns": c, "duration_s": duration_s, "messages": None, "rate": 0.0,
              "listen": 0, "stages": []} for k, c in enumerate(conns)]
    return {"schema_version": 1, "target": "http://127.0.0.1:8000/", "workload": "http",
            "protocol": "http",
            "config": {"name": name, "targets": [{"host": "127.0.0.1", "port": 8000}],
                       "workload": "http", "steps": steps, "seed": 1, "workers": 2,
                       "pacing": {"mode": "closed", "inflight": 1, "think_s": 1.0,
                                  "think_max_s": 5.0}, "warmup_s": 5.0,
                       "framing": "len32", "size": 64, "until_degraded": True,
                       "grow": "double", "max_conns": 3200},
            "environment": {"started_unix_s": started, "started_utc": f"t{started:.0f}",
                            "host": "vm"},
            "steps": [{"conns": c, "latency_ms": {"p99": p99}, "throughput_msgs_s": 10.0 * c}
                      for c in conns],
            "degradation": {"last_healthy": None, "unit": "conns"}}


def test_the_plan_signature_ignores_the_name_seed_and_workers_but_not_the_steps() -> None:
    base = doc()
    renamed = doc(name="chat-renamed")
    renamed["config"].update(seed=7, workers=4, results_dir="elsewhere")
    shortened = doc(duration_s=2.0, conns=(2, 4))
    think = copy.deepcopy(base)
    think["config"]["pacing"]["think_s"] = 0.1
    assert history.plan_id(base) == history.plan_id(renamed)
    assert history.plan_id(base) != history.plan_id(shortened) != history.plan_id(think)
    assert re.fullmatch(r"[0-9a-f]{8}", history.plan_id(base))
    assert history.plan_text(base) == ("http://127.0.0.1:8000/, conns 10,100 x 60 s, then "
                                       "double to 3200, closed loop 1 in flight, think 1-5 s")


def test_a_shortened_and_a_full_run_of_one_plan_are_two_trends() -> None:
    rows = [history.row_of(Path(f"r{k}"), d) for k, d in enumerate(
        [doc(started=1.8e9), doc(started=1.8e9 + 86400), doc(started=1.8e9 + 3600,
                                                           duration_s=2.0, conns=(2, 4))])]
    groups = history.scenarios(rows)
    assert sorted(len(g) for g in groups.values()) == [1, 2]
    assert all(t.startswith("chat / http (plan ") for t in groups)
    full, short = sorted(groups.values(), key=len, reverse=True)
    assert [r.started_unix_s for r in full] == [1.8e9, 1.8e9 + 86400]
    chart_full, chart_short = history_charts.history_charts({"full": full, "short": short})
    assert chart_full.svg is not None
    assert chart_short.svg is None and chart_short.note.startswith("One run (t1800003600)")


def test_the_time_axis_spans_the_runs_not_years() -> None:
    import matplotlib.dates as mdates

    rows = [history.row_of(Path(f"r{k}"), doc(started=1.8e9 + 600 * k)) for k in range(3)]
    fig = history_charts.history_figure(rows)
    lo, hi = (mdates.num2date(x).timestamp() for x in fig.axes[0].get_xlim())
    assert 1.8e9 - 120 <= lo < 1.8e9 and 1.8e9 + 1200 < hi <= 1.8e9 + 1320
    same = [history.row_of(Path(f"s{k}"), doc(started=1.8e9)) for k in range(2)]
    lo, hi = (mdates.num2date(x).timestamp() for x in history_charts.history_figure(
        same).axes[0].get_xlim())
    assert hi - lo == 2 * history_charts.HISTORY_PAD_S
