"""harness.report.results: reading run folders back (run.json's schema version)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report.results import SchemaError, read_run
from tests.support import harness

# ---------------------------------------------------------------------------- schema versions


def test_read_run_refuses_a_schema_version_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"schema_version": 1, "steps": []}')
    assert read_run(tmp_path)["schema_version"] == 1
    for version, why in ((2, "a newer harness wrote it"), (0, "not a version")):
        (tmp_path / "run.json").write_text(f'{{"schema_version": {version}, "steps": []}}')
        with pytest.raises(SchemaError, match=f"schema_version {version} is not one this "
                                              rf"harness reads \(1\): {why}"):
            read_run(tmp_path)


@pytest.mark.e2e
def test_report_and_merge_name_an_unknown_schema_version_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text('{"schema_version": 9, "steps": []}')
    for args in (["report", str(tmp_path)], ["merge", str(tmp_path), str(tmp_path)]):
        r = harness(*args, cwd=tmp_path, timeout=60)
        err = r.stderr
        assert r.returncode == 2 and err.count("\n") == 1, err
        assert err.startswith("harness: ") and "schema_version 9 is not one this harness " \
            "reads (1): a newer harness wrote it" in err, err


# ---------------------------------------------------------------------------- the config


def test_a_request_tables_config_is_json_without_its_bytes(tmp_path: Path) -> None:
    """run.json's config holds each request's name, weight and number of renderings, not
    the pre-rendered bytes (orjson cannot write bytes: --json used to crash)."""
    import orjson

    from harness.report.document import plan_dict
    from tests.support import plan_for
    (tmp_path / "r.toml").write_text('[[requests]]\nname = "u"\npath = "/u/{i}/"\n'
                                     'values = { i = "1-3" }\n')
    plan = plan_for("http://127.0.0.1:9/", requests=str(tmp_path / "r.toml"))
    d = orjson.loads(orjson.dumps(plan_dict(plan)))
    assert d["requests"] == [{"name": "u", "weight": 1.0, "renderings": 3}]


# ---------------------------------------------------------------------------- writing


@pytest.mark.parametrize("name", [".", "", "/"])
def test_write_atomic_to_a_path_with_no_file_name_is_an_os_error(tmp_path: Path,
                                                                  name: str) -> None:
    """``--junit .`` was a ValueError traceback from Path.with_name (found by tests/fuzz)."""
    from harness.report.results import write_atomic
    with pytest.raises(IsADirectoryError):
        write_atomic(Path(name), b"x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", [".", ""])
def test_junit_to_a_path_with_no_file_name_is_a_warning_line(name: str) -> None:
    """``compare A B --junit .`` and ``run --junit .``: a warning naming the flag."""
    from harness.report.compare_files import write_junit
    problem = write_junit(name, None, None)
    assert problem is not None and problem.startswith("--junit: cannot write"), problem
