"""Request table values (harness.wire.reqtable): a range is sampled, never listed; a value has a
bounded length; a bad range is one line, exit 2 (issue 20, item 5)."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest

from harness.core.specs import ConfigError
from harness.wire.reqtable import MAX_VALUE_CHARS, POOL, POOL_BYTES, parse_requests
from tests.support import harness


def table(values: dict, path: str = "/u/{x}") -> list[dict]:
    return [{"name": "r", "path": path, "values": values}]


def test_a_billion_wide_range_is_sampled_in_little_memory_and_time() -> None:
    tracemalloc.start()
    t0 = time.monotonic()
    (r,) = parse_requests(table({"x": "1-1000000000"}), "t.toml", "h", seed=1)
    elapsed = time.monotonic() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6 and elapsed < 5, (peak, elapsed)  # was 7.45 GiB, a MemoryError
    got = [int(re.search(rb"/u/(\d+) ", b)[1]) for b in r.pool]  # type: ignore[index]
    assert len(got) > POOL * 0.99 and all(1 <= v <= 1_000_000_000 for v in got)


def test_the_widest_range_reaches_the_int64_bound() -> None:
    (r,) = parse_requests(table({"x": "9223372036854775806-9223372036854775807"}), "t", "h", 1)
    assert {b.split(b" ")[1] for b in r.pool} == {b"/u/9223372036854775806",
                                                   b"/u/9223372036854775807"}


BAD = {"over int64": "0-99999999999999999999", "5,000 digits": "1-" + "9" * 5000,
       "superscript": "1-²", "reversed": "5-1", "negative": "-1-5", "no HI": "1-",
       "letters": "x-y"}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
def test_a_bad_range_is_one_config_error_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"requests\[0\] \(r\)\.values\.x: .*range|LO <= HI"
                       ) as err:
        parse_requests(table({"x": bad}), "t.toml", "h", seed=1)
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_a_value_over_the_length_bound_is_refused_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "names.txt"
    f.write_text("ok\n" + "a" * 3_000_000 + "\n")
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="value 2 has 3,000,000 characters, at most 4,096"):
        parse_requests(table({"x": {"file": str(f)}}), "t.toml", "h", seed=1)
    assert time.monotonic() - t0 < 2  # was 28-55 s and 6.1 GB
    with pytest.raises(ConfigError, match="value 1 has"):
        parse_requests(table({"x": ["b" * (MAX_VALUE_CHARS + 1)]}), "t.toml", "h", seed=1)


def test_long_values_render_fewer_requests_not_more_memory() -> None:
    vals = [f"{k:04d}" + "v" * (MAX_VALUE_CHARS - 4) for k in range(3000)]
    (r,) = parse_requests(table({"x": vals}, path="/{x}" * 8), "t.toml", "h", seed=1)
    assert 100 < len(r.pool) < POOL and sum(map(len, r.pool)) <= POOL_BYTES * 1.01


@pytest.mark.e2e
def test_a_bad_range_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "req.toml").write_text('[[requests]]\npath = "/u/{x}"\n'
                                       'values = { x = "1-²" }\n')
    r = harness("run", "--host", "http://127.0.0.1:1", "--requests", "req.toml",
                "--duration", "0.1", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "values.x" in r.stderr, r.stderr
