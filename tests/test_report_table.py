"""The terminal table and verdict line, as a user reads them: from synthetic run
documents, no sockets."""

from __future__ import annotations

from harness.report import facts, table
from tests.test_aggregate import step


def doc(steps: list[dict], **extra: object) -> dict:
    d = {"steps": steps, "degradation": {"degraded_at": None, "last_healthy": None,
                                         "rule": None, "unit": "conns", "skipped": [],
                                         "judged": len(steps)}}
    d.update(extra)
    return d


def header_and_rows(text: str) -> tuple[list[str], list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("conns"))
    return lines[start].split("  "), lines[start + 2:]


# ---------------------------------------------------------------------------- verdict line


def test_no_healthy_step_is_said_in_words() -> None:
    line = table.verdict_line({"degraded_at": 10, "last_healthy": None, "rule": "no_replies",
                               "detail": "no valid reply in the measure window (10 sent)",
                               "unit": "conns", "skipped": [], "judged": 1})
    assert line == ("Degradation: at 10 conns (rule no_replies: no valid reply in the measure "
                    "window (10 sent)); no healthy step")
    assert "None" not in line


def test_a_run_where_no_step_could_be_judged_says_so() -> None:
    line = table.verdict_line({"degraded_at": None, "last_healthy": None, "rule": None,
                               "unit": "conns", "skipped": [10, 100],
                               "skipped_why": ["client-bound", "shared core"], "judged": 0})
    assert line == ("Degradation: no step could be judged: every step was client-bound, on a "
                    "shared core or cut short (left out: 10 conns client-bound, 100 conns "
                    "shared core)")


# ---------------------------------------------------------------------------- notes


def test_the_client_bound_note_names_the_rule_and_its_figure() -> None:
    s = step(conns=50, client_bound=True, client_bound_rule="behind_schedule",
             client_bound_detail="5.0% of sends went out over 5 ms behind schedule (> 1%), "
                                 "client CPU 18%")
    text = table.render(doc([s]))
    (line,) = [ln for ln in text.splitlines() if ln.startswith("conns=50:")]
    assert ("client-bound (rule behind_schedule: 5.0% of sends went out over 5 ms behind "
            "schedule (> 1%), client CPU 18%)") in line
    (said,) = [ln for ln in text.splitlines() if ln.startswith("CLIENT-BOUND:")]
    assert "measures harness, not only the server" in said and "left out of the verdict" in said


def test_a_shared_core_is_a_fact_of_its_line_and_a_flag_in_the_cpu_column() -> None:
    s = step(conns=100, core_shared=True,
             shared_core={"role": "worker0", "core": 0, "others_pct": 45.0})
    text = table.render(doc([s]))
    assert ("conns=100: whole step: sent 1,000, replies 1,000; shared core: 45% of core 0 "
            "(worker0's) used by other processes") in text.splitlines()
    assert "20 SHARED CORE" in text
    assert sum(ln.startswith("SHARED CORE:") for ln in text.splitlines()) == 1


def test_each_step_has_one_line_of_facts_and_the_legend_is_said_once() -> None:
    """The issue's wall: 7 steps with HTTP counts, trends and shared cores made 25 bullets;
    now the legend once, then one line per step, and remarks only for what needs words."""
    trend = {"verdict": "too short to judge a trend", "seconds": 10, "judge_s": 60,
             "p99_growing": False, "memory_growing": False}
    steps = [step(conns=10 * (k + 1), trend=trend, status={"200": 990}, status_classes={
        "2xx": 990}, core_shared=True, shared_core={"role": "worker0", "core": 0,
                                                    "others_pct": 45.0}) for k in range(7)]
    n = facts.notes(doc(steps))
    assert len(n.steps) == 7 and not n.remarks
    assert len(n.legend) == 2  # SHARED CORE, counts
    assert n.steps[0] == ("conns=10: HTTP responses (window start to drain end) 2xx 990 (200: "
                          "990); whole step: sent 1,000, replies 1,000; shared core: 45% of "
                          "core 0 (worker0's) used by other processes; trend: too short to "
                          "judge a trend (10 s < 60 s)")
    assert "drain" in n.legend[-1] and "whole step" in n.legend[-1]


def test_http_error_codes_are_said_once_not_as_errors_and_as_statuses() -> None:
    s = step(conns=4, errors={"http_404": 18, "reset": 1}, status={"404": 18},
             status_classes={"4xx": 18})
    (line,) = facts.notes(doc([s])).steps
    assert "errors reset=1;" in line and "http_404" not in line and "4xx 18 (404: 18)" in line


def test_a_message_sweep_names_its_steps_by_their_message_count() -> None:
    steps = [step(conns=3, messages=m, lost=1) for m in (10, 100)]
    n = facts.notes(doc(steps))
    assert [ln.split(":")[0] for ln in n.steps] == ["messages=10", "messages=100"]


def test_connections_lost_and_reconnects_get_a_note_each_beside_the_errors() -> None:
    s = step(conns=50, errors={"closed": 3}, conns_lost=3, reconnects=300)
    line = facts.step_notes(s)[0].split("; ")
    assert line[0] == "conns=50: errors closed=3"
    assert line[1] == ("3 of 50 connections LOST (closed, reset or broken and not back by "
                       "the end of the step, in the error rate)")
    assert line[2].startswith("300 reconnects (connections the server closed") \
        and "not errors" in line[2]
    assert table.step_cells(s)[9] == 3  # the errors column: reconnects are not errors
    assert not [n for n in facts.step_notes(step(conns=50)) if "LOST" in n or "reconn" in n]


def test_the_soak_trend_is_printed_even_when_stable() -> None:
    trend = {"verdict": "stable", "p99_trend": {"slope_per_h": 0.0123},
             "memory_trend": {"slope_per_h": 1.5e6}, "seconds": 3600, "judge_s": 60}
    (line,) = facts.step_notes(step(conns=30, trend=trend))
    assert line.endswith("trend: stable (p99 +0.012 ms/h, server memory +1.5 MB/h)")


def test_a_short_step_gets_no_slope_per_hour_only_a_rise_it_saw() -> None:
    short = {"verdict": "too short to judge a trend", "p99_growing": False,
             "memory_growing": False, "p99_trend": {"slope_per_h": 90106.519},
             "seconds": 10, "judge_s": 60}
    assert facts.trend_text(short) == "too short to judge a trend (10 s < 60 s)"
    grows = {"verdict": "memory growing", "p99_growing": False, "memory_growing": True,
             "p99_trend": {"slope_per_h": 1.0}, "memory_trend": {"slope_per_h": 2.6e10,
                                                                 "rise": 80e6},
             "seconds": 11, "judge_s": 60}
    assert facts.trend_text(grows) == "memory growing (server memory +80.0 MB over 11 s)"


def test_requests_and_user_classes_are_tables_not_bullets() -> None:
    lat = {"p50": 0.5, "p90": 0.8, "p99": 1.0, "max": 1.2}
    s = step(conns=12, users={"regular": 8, "api": 4},
             kinds=[{"kind": "regular.home", "sent": 20, "received": 20, "latency_ms": lat},
                    {"kind": "api.list", "sent": 30, "received": 29, "latency_ms": lat}])
    cfg = {"users": [{"name": "regular", "weight": 2.0, "think_s": 1.0, "think_max_s": 5.0,
                      "first": 0, "count": 1},
                     {"name": "api", "weight": 1.0, "think_s": 0.5, "think_max_s": 0.5,
                      "first": 1, "count": 1}],
           "requests": [{"name": "regular.home"}, {"name": "api.list"}]}
    text = table.render(doc([s], workload="http", config=cfg))
    lines = text.splitlines()
    users = lines.index("user classes:")
    assert lines[users + 3].split() == ["regular", "2", "1-5", "s", "home", "8"]
    assert lines[users + 4].split() == ["api", "1", "0.5", "s", "list", "4"]
    per = lines.index("per request:")
    assert lines[per + 1].split() == ["step", "request", "sent", "replies", "p50", "ms", "p90",
                                      "ms", "p99", "ms", "max", "ms"]
    assert lines[per + 4].split()[:4] == ["conns=12", "api.list", "30", "29"]
    assert "kind regular.home" not in text


# ---------------------------------------------------------------------------- columns


def test_message_count_steps_have_a_messages_column() -> None:
    text = table.render(doc([step(conns=3, messages=10_000), step(conns=3, messages=20_000)]))
    head, rows = header_and_rows(text)
    assert [h.strip() for h in head if h.strip()][:2] == ["conns", "messages"]
    assert rows[0].split()[:2] == ["3", "10,000"]
    assert "x10m" not in text and "x10000m" not in text


def test_a_watched_server_gets_a_cpu_column() -> None:
    s = step(resources={"server": {"cpu_pct_mean": 42.4}, "worker0": {"cpu_pct_mean": 20.0}})
    text = table.render(doc([s]))
    head, rows = header_and_rows(text)
    assert head[-1].strip() == "server CPU %"
    assert rows[0].split()[-1] == "42"
    assert "server CPU" not in table.render(doc([step()]))


def test_broadcast_counts_deliveries_and_says_what_conns_counts() -> None:
    s = step(conns=3, deliveries_expected=30, deliveries=30, duplicates=0, reordered=0,
             fanout_ms={"p50": 0.1, "p99": 0.2}, total_s=0.1, send_s=0.05,
             per_node=[{"node": 0, "receivers": 4, "lost": 0, "duplicates": 0,
                        "reordered": 0}, {"node": 1, "receivers": 1, "lost": 0,
                                          "duplicates": 0, "reordered": 0}])
    text = table.render(doc([s], delivery="broadcast"))
    head, _ = header_and_rows(text)
    assert "deliveries/s" in [h.strip() for h in head] and "msgs/s" not in text
    assert ("broadcast: conns counts the sending connections; deliveries/s counts messages "
            "received by every connection in the room (5 connections, listen-only ones "
            "included)") in text


def test_a_staged_step_has_a_row_per_stage() -> None:
    stages = [{"conns": 20, "label": "before", "throughput_msgs_s": 100.0, "errors": 0,
               "latency_ms": {"p50": 0.1, "p90": 0.2, "p99": 0.3, "p999": 0.4, "max": 0.5}},
              {"conns": 200, "label": "spike", "throughput_msgs_s": 900.0, "errors": 2,
               "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p999": 4.0, "max": 5.0}},
              {"conns": 20, "label": "after", "throughput_msgs_s": 100.0, "errors": 0,
               "latency_ms": {"p50": 0.1, "p90": 0.2, "p99": 0.3, "p999": 0.4, "max": 0.5}}]
    text = table.render(doc([step(conns=200, stages=stages)]))
    _, rows = header_and_rows(text)
    assert rows[0].split()[:2] == ["200", "all"]
    assert rows[2].split()[:4] == ["200", "2:", "spike", "900"]
    assert "3.000" in rows[2]
    assert len([r for r in rows if r.strip().split()[1:2] in (["1:"], ["2:"], ["3:"])]) == 3


def test_merged_steps_show_each_machine() -> None:
    lat = {"p50": 0.1, "p90": 0.2, "p99": 0.3, "p999": 0.4, "max": 0.5}
    s = step(conns=20, per_machine=[
        {"conns": 10, "host": "a", "throughput_msgs_s": 500.0, "latency_ms": lat,
         "errors": 0, "lost": 0, "client_cpu_pct": 30.0},
        {"conns": 10, "host": "b", "throughput_msgs_s": 400.0, "latency_ms": lat,
         "errors": 1, "lost": 0, "client_cpu_pct": 35.0}])
    _, rows = header_and_rows(table.render(doc([s])))
    assert rows[0].split()[0] == "20"
    assert rows[1].split()[:3] == ["10", "@a", "500"]
    assert rows[2].split()[:3] == ["10", "@b", "400"]


def test_the_command_line_heads_the_table() -> None:
    text = table.render(doc([step()], argv=["run", "--conns", "10", "--name", "my run"]))
    assert text.splitlines()[0] == "command: harness run --conns 10 --name 'my run'"


def test_the_live_line_numbers_steps_from_1_and_names_a_message_count() -> None:
    from harness.core.plan import Step
    from harness.report import lines

    live = lines.progress(Step(index=1, conns=3, duration_s=None, messages=1000),
                          [{"p99": 2_000_000, "open": 6, "errors": 0}], 4000.0)
    assert live.startswith("step 2 conns=3 messages=1000 open=6 msgs/s=4,000 ")
