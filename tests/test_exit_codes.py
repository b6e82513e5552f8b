"""One test per exit code (0 passed, 1 failed, 2 usage, 3 unreachable, 4 inconclusive), each
through the CLI with --json: the code, and on a non-zero exit its one-line reason on stderr.
Each call is a real ``python -m harness`` subprocess: the status is the one a shell sees.

One short run against the embedded echo server gives a run folder; codes 0 and 4 compare a
copy of it with itself, its step marked judged or client-bound in run.json, so those verdicts
do not depend on how busy the machine is."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from tests.support import free_port, harness_process

pytestmark = pytest.mark.e2e

SHORT = ["--conns", "2", "--duration", "0.5", "--warmup", "0.1", "--workers", "1",
         "--no-report", "--json"]


def reasons(stderr: str) -> list[str]:
    """stderr's lines that are not warnings."""
    return [ln for ln in stderr.splitlines() if ln.strip() and "warning:" not in ln]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("exit-codes")
    r = harness_process("run", *SHORT, "--results-dir", str(base / "results"), cwd=base,
                        timeout=120)
    assert r.returncode in (0, 4), r.stderr
    (folder,) = [p.parent for p in (base / "results").glob("*/run.json")]
    return folder


def marked(folder: Path, dest: Path, bound: bool) -> Path:
    """A copy of the run folder whose step is judged, or client-bound (not judged)."""
    shutil.copytree(folder, dest)
    doc = orjson.loads((dest / "run.json").read_bytes())
    for s in doc["steps"]:
        s.update(client_bound=bound, core_shared=False, partial=False)
        if bound:
            s.update(client_bound_rule="client_cpu",
                     client_bound_detail="a worker used 97% of its core (>= 90%)")
    (dest / "run.json").write_bytes(orjson.dumps(doc))
    return dest


def test_exit_0_when_every_figure_held(run_folder: Path, tmp_path: Path) -> None:
    run = marked(run_folder, tmp_path / "judged", bound=False)
    r = harness_process("compare", str(run), str(run), "--json", "--no-report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert reasons(r.stderr) == []
    cmp = orjson.loads(r.stdout)
    assert cmp["judged"] == 1 and not cmp["inconclusive"] and not cmp["regressed"]


def test_exit_1_when_a_threshold_fails_and_json_still_says_why_on_stderr(
        tmp_path: Path) -> None:
    conf = tmp_path / "strict.toml"
    conf.write_text("[thresholds]\nmin_throughput = 1e12\n")
    r = harness_process("run", *SHORT, "--config", str(conf), "--results-dir", str(tmp_path),
                        cwd=tmp_path, timeout=120)
    assert r.returncode == 1, r.stderr
    assert orjson.loads(r.stdout)["thresholds"]["failed"]
    (line,) = reasons(r.stderr)
    assert line.startswith("harness: threshold failed: min_throughput: ") and \
        "< 1000000000000.0 msgs/s at step conns=2" in line, line


def test_exit_2_on_a_usage_error_with_one_line(tmp_path: Path) -> None:
    r = harness_process("run", "--json", "--conns", "ten", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    (line,) = reasons(r.stderr)
    assert line.startswith("harness: --conns: ") and "not an integer" in line, line


def test_exit_3_when_the_target_refuses(tmp_path: Path) -> None:
    r = harness_process("run", "--json", "--host", f"127.0.0.1:{free_port()}", "--conns", "1",
                        "--duration", "0.3", "--warmup", "0", "--no-report", "--results-dir",
                        str(tmp_path), cwd=tmp_path, timeout=60)
    assert r.returncode == 3, r.stderr
    (line,) = reasons(r.stderr)
    assert line.startswith("harness: ") and "refused" in line, line


def test_exit_4_when_no_step_could_be_judged_and_junit_skips_the_figures(
        run_folder: Path, tmp_path: Path) -> None:
    base = marked(run_folder, tmp_path / "base", bound=False)
    new = marked(run_folder, tmp_path / "new", bound=True)
    xml = tmp_path / "junit.xml"
    r = harness_process("compare", str(base), str(new), "--json", "--no-report", "--junit",
                        str(xml), cwd=tmp_path)
    assert r.returncode == 4, r.stderr
    cmp = orjson.loads(r.stdout)
    assert cmp["judged"] == 0 and cmp["inconclusive"] and not cmp["regressed"]
    (line,) = reasons(r.stderr)
    assert line.startswith("harness: inconclusive comparison: no step could be judged"), line
    root = ET.fromstring(xml.read_bytes())
    assert root.get("failures") == "0" and root.get("skipped") == root.get("tests") != "0"
    skipped = [c.find("skipped") for c in root.iter("testcase")]
    assert all(s is not None and s.get("message", "").startswith(
        "untested: not judged: new step client-bound") for s in skipped)
    text = harness_process("compare", str(base), str(new), "--no-report", cwd=tmp_path)
    assert text.returncode == 4
    assert "INCONCLUSIVE: no step could be judged" in text.stdout
    assert "no regression beyond the limits" not in text.stdout


def test_the_inconclusive_line_names_each_step_by_what_the_sweep_varies() -> None:
    from harness.cli.verdicts import inconclusive_line
    steps = [{"conns": 3, "messages": m, "received": 1, "client_bound": True,
              "client_bound_detail": "a worker used 99% of its core"} for m in (10, 100)]
    line = inconclusive_line(steps)
    assert "messages=10: client-bound (a worker used 99% of its core)" in line, line
    assert "messages=100: client-bound" in line and "3 conns" not in line, line
