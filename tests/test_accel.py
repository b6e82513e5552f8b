"""The compiled parts (harness/accel.py): which build runs, the pure fallback, and
differential tests that both builds give the same results.

Two are optional: the C loops (``harness._hot``, built by ``pip install -e .`` where a C
compiler is, as in CI) and the opt-in mypyc build (``python -m harness.build``; it gained
nothing measurable on the 2-core VM: docs/PERFORMANCE.md). With either one built, the
tests that compare the builds run against pure Python (``HARNESS_PURE=1``): the same
digest of the hot modules on seeded inputs, the same counts of a seeded run, and (in
tests/test_accel_rerun.py) the unit suite and the hot path's end-to-end files again. With
neither, they skip, saying so.
tests/test_hot.py compares the C loops with their Python twins function by function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import accel
from harness.wire import hot
from tests.support import harness_process as harness  # a process: the build is chosen at import

ROOT = Path(__file__).resolve().parents[1]
HOT_E2E = ("tests/test_measure.py", "tests/test_fanout.py", "tests/test_unsolicited.py",
           "tests/test_inorder_few.py")


def _env(pure: bool) -> dict[str, str]:
    env = dict(os.environ, HARNESS_PURE="1" if pure else "0")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _have_compiled() -> bool:
    return accel._compiled_present() == list(accel.MODULES) and accel.compiled()


def _need_compiled() -> None:
    if not _have_compiled():
        pytest.skip(f"no compiled build to compare with (opt-in: python -m harness.build; "
                    f"{accel.describe()})")


def _need_other() -> None:
    """Something compiled runs (the C loops or mypyc's): pure Python is the other build."""
    if hot.native is None and not _have_compiled():
        pytest.skip(f"nothing compiled to compare with pure Python ({accel.describe()})")


def _py(code: str, pure: bool) -> str:
    r = subprocess.run([sys.executable, "-c", code], env=_env(pure), capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_stale_module_is_named() -> None:
    built = {m: accel.source_hash(m) for m in accel.MODULES}
    assert accel._stale(built) == []
    built["worker.pacing"] = "0" * 16
    assert accel._stale(built) == ["worker.pacing"]


@pytest.mark.e2e
def test_version_says_which_build_runs() -> None:
    r = harness("--version", cwd=ROOT, env=_env(False))
    assert r.returncode == 0, r.stderr
    want = f"compiled: yes (mypyc, {len(accel.MODULES)} modules)" if _have_compiled() else \
        "compiled: no (not built: python -m harness.build compiles the hot path)"
    assert r.stdout.strip().endswith(want), r.stdout
    loops = "native loops: yes (harness._hot)" if hot.native is not None else \
        "native loops: no (not built: pip install -e . builds it where a C compiler is)"
    assert loops in r.stdout, r.stdout
    r = harness("--version", cwd=ROOT, env=_env(True))
    assert "native loops: no (HARNESS_PURE=1)" in r.stdout, r.stdout
    if _have_compiled():
        assert r.stdout.strip().endswith("compiled: no (HARNESS_PURE=1)"), r.stdout


@pytest.mark.e2e
def test_pure_routes_every_hot_module_to_its_source() -> None:
    _need_compiled()
    code = "import harness.worker.worker, harness.accel as a, json; print(json.dumps(a.loaded()))"
    pure, comp = json.loads(_py(code, True)), json.loads(_py(code, False))
    assert set(pure) == set(comp) == set(accel.MODULES)
    assert set(pure.values()) == {"pure"} and set(comp.values()) == {"mypyc"}


@pytest.mark.e2e
@pytest.mark.parametrize("seed", [7, 2026])
def test_both_builds_compute_the_same(seed: int) -> None:
    """Histograms, stamps, builders, parsers and the ledger on the same seeded inputs."""
    _need_other()
    cmd = f"import runpy, sys; sys.argv = ['x', '--seed', '{seed}']; " \
        "runpy.run_module('tests.accel_digest', run_name='__main__')"
    pure, comp = json.loads(_py(cmd, True)), json.loads(_py(cmd, False))
    assert pure["build"] == accel.describe().replace(
        "native loops: yes (harness._hot)", "native loops: no (HARNESS_PURE=1)").replace(
        f"compiled: yes (mypyc, {len(accel.MODULES)} modules)", "compiled: no (HARNESS_PURE=1)")
    assert comp["build"] == accel.describe() != pure["build"]
    assert pure["digest"] == comp["digest"]


def _run_counts(pure: bool, results: Path) -> dict:
    r = harness("run", "--messages", "3000", "--conns", "10", "--inflight", "4", "--seed", "5",
                "--json", "--no-report", "--results-dir", str(results), cwd=ROOT,
                env=_env(pure), timeout=120)
    assert r.returncode in (0, 4), r.stderr  # 4: client-bound on a busy machine
    step = json.loads(r.stdout)["steps"][0]
    hist_total = step.get("latency_hist", {}).get("total")
    return {"sent": step["sent"], "lost": step["lost"], "duplicates": step["duplicates"],
            "late": step["late"], "errors": {k: v for k, v in step.get("errors", {}).items() if v},
            "conns_lost": step["conns_lost"], "in_hist": hist_total in (None, step["received"])}


@pytest.mark.e2e
def test_both_builds_count_a_seeded_run_the_same(tmp_path: Path) -> None:
    _need_other()
    want = {"sent": 3000, "lost": 0, "duplicates": 0, "late": 0, "errors": {},
            "conns_lost": 0, "in_hist": True}
    assert _run_counts(True, tmp_path) == want
    assert _run_counts(False, tmp_path) == want
