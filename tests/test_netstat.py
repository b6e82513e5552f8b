"""The kernel's TCP drop counters around a step: read, compared, and noted in the step."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.report import facts
from harness.run import netstat
from tests.support import plan_for, run_plan


def test_counters_parse_from_proc_files(tmp_path: Path) -> None:
    (tmp_path / "netstat").write_text(
        "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts TCPSynRetrans\n"
        "TcpExt: 0 7 9 3 2\n"
        "IpExt: InNoRoutes\nIpExt: 0\n")
    (tmp_path / "softnet_stat").write_text("00e5de94 000008a5 00000001\n00e79c3c 00000010 0\n")
    now = netstat.read(tmp_path)
    assert now == {"listen_overflows": 7, "listen_drops": 9, "retransmit_timeouts": 3,
                   "syn_retransmits": 2, "backlog_drops": 0x8a5 + 0x10}
    assert netstat.moved({**now, "listen_drops": 5}, now) == {"listen_drops": 4}
    assert netstat.read(tmp_path / "absent") == {}


@pytest.mark.e2e
def test_a_full_accept_queue_is_noted_as_the_kernels_doing() -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)  # never accepts: one connection fits, the others' handshakes are dropped
    try:
        (s,) = run_plan(plan_for(f"127.0.0.1:{hole.getsockname()[1]}", conns="4",
                                 connect_timeout=1.5, duration=0.2, warmup=0.0,
                                 timeout=0.3))
    finally:
        hole.close()
    assert s["kernel"].get("listen_overflows", 0) >= 1, s.get("kernel")
    (note,) = [n for n in facts.step_notes(s) if "kernel" in n]
    assert "listen_overflows +" in note and "not the server" in note
