"""Issue 26, a million connections from one box: source and destination pools, the
preflight's rules on a synthetic machine, the connect ramp's figures (pure parts)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from harness.analysis.ramp import ramp_figures, ramp_text
from harness.config.build import ConfigError
from harness.core.pools import pair_load, port_pool, source_index, source_pool
from harness.run import preflight as pf
from tests.support import plan_for

MACHINE = pf.Machine(nr_open=1 << 20, file_max=2_400_000, files_open=1_000, port_lo=32768,
                     port_hi=60999, tcp_mem_max=575_826, tcp_mem_used=100, somaxconn=4096,
                     conntrack_max=None, conntrack_count=0, mem_available=22 << 30,
                     nofile=20_000)
MILLION = pf.Needs(conns=1_000_000, sources=254, destinations=60, workers=51, loopback=True,
                   inflight_bytes=128)


def test_a_cidr_block_gives_its_usable_hosts_and_a_list_mixes_every_form() -> None:
    assert source_pool("127.0.0.0/30") == ("127.0.0.1", "127.0.0.2")
    assert len(source_pool("127.0.0.0/24")) == 254
    assert len(source_pool("127.0.0.0/16")) == 65_534
    assert source_pool("10.0.0.8/31") == ("10.0.0.8", "10.0.0.9")
    assert source_pool("127.0.0.5, 127.0.0.1-3,127.0.0.2-127.0.0.4") == (
        "127.0.0.5", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")  # duplicates once


@pytest.mark.parametrize("text, says", [
    ("127.0.0.0/8", "a /16 at most"), ("127.0.0.9-127.0.0.1", "must go up"),
    ("127.0.0.1/33", "127.0.0.1/33"), ("localhost", "not an IPv4 address"), (",", "no address"),
])
def test_a_bad_source_pool_names_the_item(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        source_pool(text)


def test_source_addrs_flag_takes_cidr_blocks_and_names_itself_when_bad() -> None:
    plan = plan_for("127.0.0.1:5000", conns="12", source_addrs="127.0.0.0/29")
    assert plan.source_addrs == tuple(f"127.0.0.{k}" for k in range(1, 7))
    with pytest.raises(ConfigError, match="--source-addrs: .*a /16 at most"):
        plan_for("127.0.0.1:5000", source_addrs="10.0.0.0/8")


def test_a_port_range_host_is_one_target_per_port_and_a_bad_one_is_refused() -> None:
    plan = plan_for("127.0.0.1:7001-7004,127.0.0.2:9000", conns="8")
    assert [(t.host, t.port) for t in plan.targets] == [
        ("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003), ("127.0.0.1", 7004),
        ("127.0.0.2", 9000)]
    for bad, says in (("127.0.0.1:7004-7001", "going up"), ("127.0.0.1:1-5000", "at most"),
                      ("127.0.0.1:7001-x", "FIRST-LAST")):
        with pytest.raises(ConfigError, match=says):
            plan_for(bad)
    assert port_pool("7001") is None


@pytest.mark.parametrize("dests, sources", [(2, 2), (3, 6), (60, 254), (1, 5), (7, 3)])
def test_every_source_destination_pair_gets_an_equal_share(dests: int, sources: int) -> None:
    conns = dests * sources * 5 + 3
    pairs = Counter((g % dests, source_index(g, dests, sources)) for g in range(conns))
    assert len(pairs) == dests * sources  # no pair left unused (gid % sources left half)
    assert max(pairs.values()) - min(pairs.values()) <= 1
    assert max(pairs.values()) == pair_load(conns, dests, sources)


def test_workers_default_to_what_the_open_files_limit_needs() -> None:
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    conns = 3 * (hard - 64) + 1
    if conns > 1_000_000:
        pytest.skip("the open-files limit is too high for a step to need more workers")
    assert plan_for("127.0.0.1:7001-7004", conns=str(conns), workers=0).workers >= 4
    assert plan_for("127.0.0.1:7001-7004", conns=str(conns), workers=9).workers == 9


def test_a_million_fits_a_machine_set_up_right() -> None:
    assert pf.check(MILLION, MACHINE) == []


@pytest.mark.parametrize("needs, machine, what, fix", [
    (replace(MILLION, sources=1, destinations=1), MACHINE, "ports", "--source-addrs with 36"),
    (MILLION, replace(MACHINE, port_lo=60950), "ports", "ip_local_port_range"),
    (MILLION, replace(MACHINE, nofile=1_000), "open files", "ulimit -Hn"),
    (replace(MILLION, workers=10), MACHINE, "open files", "--workers 51"),
    (MILLION, replace(MACHINE, file_max=1_500_000), "fs.file-max", "sysctl -w fs.file-max="),
    (MILLION, replace(MACHINE, tcp_mem_max=100_000), "tcp_mem", "net.ipv4.tcp_mem"),
    (MILLION, replace(MACHINE, somaxconn=128), "somaxconn", "net.core.somaxconn=4096"),
    (MILLION, replace(MACHINE, conntrack_max=262_144, conntrack_count=5), "conntrack",
     "nf_conntrack_max="),
    (MILLION, replace(MACHINE, mem_available=4 << 30), "memory", "fewer connections"),
])
def test_each_shortfall_is_named_with_its_fix(needs: pf.Needs, machine: pf.Machine, what: str,
                                              fix: str) -> None:
    found = [f for f in pf.check(needs, machine) if f.fatal]
    assert [f.what for f in found] == [what]
    assert fix in found[0].fix


def test_conntrack_loaded_but_tracking_nothing_is_not_a_shortfall() -> None:
    assert pf.check(MILLION, replace(MACHINE, conntrack_max=1000, conntrack_count=0)) == []


def test_more_connections_per_destination_than_a_server_process_holds_is_a_warning() -> None:
    (found,) = pf.check(replace(MILLION, destinations=40), MACHINE)
    assert found.what == "server open files" and not found.fatal and "51 destinations" in found.fix


def test_this_machine_reads_as_a_machine() -> None:
    m = pf.read_machine()
    assert m.port_lo < m.port_hi and m.nofile > 0 and m.nr_open >= m.nofile
    assert m.mem_available > 0 and m.file_max > m.files_open


def test_the_ramp_counts_each_connect_in_the_second_it_completed() -> None:
    sec = 1_000_000_000
    # worker 0: 3 connects in second 0 (1, 2, 3 ms), worker 1: 2 in second 1 (10 ms each)
    w0 = np.array([[5 * sec, 5 * sec + k * 1_000_000] for k in (1, 2, 3)])
    w1 = np.array([[6 * sec + 100, 6 * sec + 100 + 10_000_000]] * 2)
    r = ramp_figures([w0, w1], {"connect_refused": 4})
    assert r is not None
    assert [(p["s"], p["connected"]) for p in r["per_second"]] == [(0, 3), (1, 2)]
    assert r["per_second"][0]["max_ms"] == pytest.approx(3.0, rel=0.01)
    assert r["per_second"][1]["p50_ms"] == pytest.approx(10.0, rel=0.01)
    assert r["connected"] == 5 and r["time_to_connect_s"] == pytest.approx(1.01, abs=0.001)
    assert r["failed"] == {"connect_refused": 4}
    assert "5 in 1.0 s" in ramp_text(r) and "connect_refused 4" in ramp_text(r)
    assert ramp_figures([], {}) is None
