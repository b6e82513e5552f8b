"""harness.analysis.summary.StepSummary: typed and frozen, and its JSON the step entry run.json has
always had (keys and their order), read like that dict by the verdicts."""

from __future__ import annotations

import dataclasses

import pytest

from harness.analysis import judge
from harness.analysis.summary import StepSummary
from harness.core.plan import Degradation

LAT = {"p50": 0.2, "p90": 0.3, "p95": 0.4, "p99": 0.5, "p999": 0.9, "max": 1.2, "mean": 0.21}
ERRORS = {"connect_refused": 0, "connect_timeout": 0, "reset": 0, "closed": 0, "timeout": 0,
          "protocol": 0}
# The keys run.json's steps had before StepSummary, in their order, every optional part on
# (docs/DESIGN.md's documented keys among the first), and the counts added since (reconnects,
# connections lost).
EVERY_KEY = [
    "conns", "connected", "duration_s", "sent", "received", "throughput_msgs_s",
    "throughput_mb_s", "latency_ms", "connect_ms", "errors", "lost", "duplicates", "late",
    "client_cpu_pct", "client_cpu_pct_per_worker", "client_bound", "partial", "sent_all",
    "replies", "reconnects", "conns_lost", "client_bound_rule", "client_wait_pct",
    "client_bound_detail", "first_unparsed", "messages", "rate", "service_ms",
    "behind_schedule", "kinds", "stages", "recovery", "deliveries_expected", "deliveries",
    "surplus", "reordered", "fanout_ms",
    "fanout_complete", "total_s", "send_s", "per_node", "kernel", "resources",
    "machine_cpu", "shared_core", "core_shared", "judged_shared_core", "trend"]
DOCUMENTED = ["conns", "duration_s", "sent", "received", "throughput_msgs_s",
              "throughput_mb_s", "latency_ms", "connect_ms", "errors", "lost", "duplicates",
              "client_cpu_pct", "partial"]


def plain(**kw: object) -> StepSummary:
    base = dict(conns=100, connected=100, duration_s=10.0, sent=1234, received=1234,
                throughput_msgs_s=123.4, throughput_mb_s=0.1, latency_ms=LAT,
                connect_ms={"p50": 0.1, "p99": 0.4, "max": 0.9}, errors=ERRORS, lost=0,
                duplicates=0, late=0, client_cpu_pct=37.0, client_cpu_pct_per_worker=[37.0],
                client_bound=False, partial=False, sent_all=1300, replies=1234)
    return StepSummary(**(base | kw))  # type: ignore[arg-type]


def every_part() -> StepSummary:
    fan = {"deliveries_expected": 10, "deliveries": 9, "surplus": 0, "reordered": 0,
           "fanout_ms": LAT, "fanout_complete": 9, "total_s": 1.0, "send_s": 0.5,
           "per_node": [{"node": 0}]}
    return plain(client_bound=True, client_bound_rule="client_cpu", client_bound_detail="x",
                 client_wait_pct=1.0,
                 first_unparsed="\\x00", messages=100, rate=5.0, service_ms=LAT,
                 behind_schedule=0, kinds=[{"kind": "a"}], stages=[{"label": "s"}],
                 recovery={"recovered": True}, fanout=fan, lost=1, kernel={"listen_drops": 1},
                 resources={"worker0": {}}, machine_cpu={"0": {}}, shared_core={"core": 0},
                 core_shared=False, judged_shared_core=True, trend={"verdict": "stable"})


def test_to_json_has_every_key_in_run_jsons_order() -> None:
    doc = every_part().to_json()
    assert list(doc) == EVERY_KEY
    assert doc["lost"] == 1 and doc["behind_schedule"] == 0 and doc["core_shared"] is False


def test_parts_a_step_does_not_have_are_left_out_not_null() -> None:
    doc = plain().to_json()
    assert list(doc) == EVERY_KEY[:21]
    assert set(DOCUMENTED) <= set(doc) and None not in doc.values()
    assert "rate" not in doc and "fanout" not in doc and "trend" not in doc


def test_a_summary_reads_like_its_json_and_cannot_be_changed() -> None:
    s = every_part()
    assert dict(s) == s.to_json() and s == s.to_json()
    assert s["deliveries"] == 9 and s["lost"] == 1 and s.get("fanout") is None
    assert "trend" in s and "nope" not in plain() and plain().get("rate") is None
    with pytest.raises(KeyError):
        plain()["trend"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.sent = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        s["sent"] = 1  # type: ignore[index]


def test_verdicts_take_summaries_as_they_take_run_json_steps() -> None:
    steps = [plain(conns=10), plain(conns=20, latency_ms=dict(LAT, p99=50.0))]
    as_json = [s.to_json() for s in steps]
    rules = Degradation()
    assert judge.degradation(steps, rules) == judge.degradation(as_json, rules)
    assert judge.degradation(steps, rules)["rule"] == "p99"
