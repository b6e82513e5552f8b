"""The reconnect storm's figures (harness/analysis/storm.py) from synthetic episode rows: the storm
is the losses within 1 s of the first, its recovery runs until the last of them is back and
delivering, and anything missing leaves it unrecovered."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.storm import storm_figures, storm_text
from harness.config import build as cfg

NAN = float("nan")


def rows(*episodes: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(episodes, dtype=np.float64).reshape(-1, 3)


def test_the_recovery_runs_from_the_first_loss_to_the_last_connection_delivering() -> None:
    # two workers, five connections dropped within 30 ms of 2.0 s
    s = storm_figures([rows((2.00, 2.40, 2.45), (2.01, 2.30, 2.70)),
                       rows((2.02, 2.50, 2.52), (2.03, 2.10, 2.11), (2.00, 2.20, 2.21))])
    assert s == {"at_s": 2.0, "dropped": 5, "back": 5, "delivering": 5, "back_ms": 500.0,
                 "recovery_ms": 700.0, "recovered": True, "later_drops": 0}
    assert storm_text(s) == ("5 connections dropped at 2.0 s: all back in 500 ms, all "
                             "delivering in 700 ms")


def test_a_connection_back_but_silent_leaves_the_storm_unrecovered() -> None:
    s = storm_figures([rows((1.0, 1.2, 1.3), (1.0, 1.4, NAN))])
    assert s is not None
    assert (s["back"], s["delivering"], s["back_ms"], s["recovery_ms"], s["recovered"]) == \
        (2, 1, pytest.approx(400.0), None, False)
    assert storm_text(s) == ("2 connections dropped at 1.0 s: NOT recovered: 2 back, 1 of 2 "
                             "delivering by the end")


def test_a_connection_never_back_leaves_both_times_unknown() -> None:
    s = storm_figures([rows((1.0, NAN, NAN), (1.0, 1.1, 1.2))])
    assert s is not None and (s["back"], s["back_ms"], s["recovery_ms"]) == (1, None, None)


def test_losses_over_a_second_after_the_first_are_not_the_storm() -> None:
    s = storm_figures([rows((3.0, 3.1, 3.2), (3.9, 4.0, 4.1), (5.0, NAN, NAN))])
    assert s is not None
    assert (s["dropped"], s["later_drops"], s["recovered"]) == (2, 1, True)
    assert s["recovery_ms"] == pytest.approx(1100.0)
    assert storm_text(s).endswith("(1 more dropped later)")


def test_no_loss_is_no_storm() -> None:
    assert storm_figures([]) is None
    assert storm_figures([rows(), rows()]) is None


def test_the_reconnect_storm_scenario_presets_a_reconnecting_ws_load() -> None:
    plan = cfg.build_plan(cfg.settings(cfg.load_file(None), {"host": "ws://127.0.0.1:9/"},
                                       "reconnect-storm"))
    assert plan.options.reconnect and plan.pacing.rate == 10.0
    assert [(s.conns, s.duration_s) for s in plan.steps] == [(100, 60.0)]
    embedded = cfg.build_plan(cfg.settings(cfg.load_file(None), {}, "reconnect-storm"))
    assert embedded.embedded == "ws-echo"  # no --host: the built-in WebSocket echo target
    assert embedded.options.reconnect  # the embedded --ws server: WebSocket's options
