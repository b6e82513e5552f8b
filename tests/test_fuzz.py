"""The fuzz of tests/fuzz on a fixed seeded sample: 200 cases over the CLI and config
surfaces (URL schemes, request and user tables, WebSocket flags, alerts, pushgateway,
baselines, mangled run.json for every command that reads one), most in-process, a few as
tiny real runs. No case may print a traceback, exit outside 0-4, hang, exit 2 without
exactly one line on stderr, or accept a value the issue lists as bad.

The full run is ``python -m tests.fuzz --cases 5000 --seed N`` (see tests/fuzz/__init__.py).
"""

from __future__ import annotations

import pytest

from tests.fuzz.judge import Outcome
from tests.fuzz.runner import fuzz

pytestmark = pytest.mark.e2e

SEED, CASES = 7, 200


def shown(o: Outcome) -> str:
    return f"#{o.index} {o.command} {o.kind}: {o.signature} ({o.message[:120]!r}) argv={o.argv}"


def test_a_seeded_sample_of_the_fuzz_has_no_failure() -> None:
    report = fuzz(CASES, SEED)
    assert len(report.outcomes) == CASES
    kinds = report.counts()
    assert kinds["usage"] > 0 and kinds["accepted"] + kinds["ok"] > 0, kinds  # both sides seen
    failures = [shown(o) for o in report.failures()]
    assert not failures, "\n".join(failures)
