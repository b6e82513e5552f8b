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

# Issue 20's failures that other branches fix: "hardio" validates run.json once in
# read_run, the pushgateway and alert URLs, --ws-text's UTF-8, --ws-subprotocol's CR/LF and
# value ranges; "hardproto" refuses inapplicable flags, port 0, a repeated or Host --header
# and a bad --max-regression. Until both are merged a failure of theirs makes this test
# xfail, by name; any other failure fails it. Empty PENDING once they are merged.
PENDING = {"histogram.py from_dict": "hardio", "merge.py merge_step": "hardio",
           "report/table.py": "hardio", "pushgateway.py": "hardio", "wstext.py": "hardio",
           "ws.py handshake": "hardio", "reqtable.py _source": "hardio",
           "not-refused: a pushgateway URL": "hardio", "not-refused": "hardproto"}


def shown(o: Outcome) -> str:
    return f"#{o.index} {o.command} {o.kind}: {o.signature} ({o.message[:120]!r}) argv={o.argv}"


def owner(o: Outcome) -> str | None:
    said = f"{o.kind}: {o.signature}"
    return next((who for key, who in PENDING.items() if key in said), None)


def test_a_seeded_sample_of_the_fuzz_has_no_failure() -> None:
    report = fuzz(CASES, SEED)
    assert len(report.outcomes) == CASES
    kinds = report.counts()
    assert kinds["usage"] > 0 and kinds["accepted"] + kinds["ok"] > 0, kinds  # both sides seen
    failures = [shown(o) for o in report.failures() if owner(o) is None]
    assert not failures, "\n".join(failures)
    pending = [f"{owner(o)}: {shown(o)}" for o in report.failures()]
    if pending:
        pytest.xfail("failures the other branches of issue 20 fix:\n" + "\n".join(pending))
