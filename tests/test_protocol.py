"""Protocols: stamped framing and in-order (FIFO) matching. The in-order ring is tested on
hand-made round buffers; whole runs use a server whose replies carry no stamp
(tests/fifo_server.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.core.plan import Plan
from harness.run.coordinator import Coordinator, resolve
from harness.run.sweep import figures
from harness.wire import framing
from harness.wire.batch import Outbound
from harness.wire.protocol import InOrder, Stamped, protocol_for
from tests import fifo_server, servers  # noqa: F401 (fifo_server registers fixed_reply)
from tests.support import plan_for
from workloads import WorkloadError, load
from workloads.base import Kind
from workloads.echo import Echo


class InOrderEcho(Echo):
    name = "in-order"
    matching = "order"


def in_order(n: int = 3, fr: framing.Framing = framing.NEWLINE) -> InOrder:
    out = Outbound(fr, [Kind("msg", 1.0, 64)], [b"x" * 64], 7, 0, 1)
    return InOrder(fr, out, 1 << 20, 7, n, worker=5)


def send(p: InOrder, idx: list[int], counts: list[int], seq0: int, t: int) -> None:
    i, c = np.asarray(idx, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    gid = (i + 100).repeat(c)
    tint = t + np.arange(int(c.sum()), dtype=np.int64)
    p.build(gid, i, c, seq0, tint, 0)


def replies(p: InOrder, per_conn: dict[int, int], fr: framing.Framing = framing.NEWLINE):
    """A round buffer with ``per_conn[i]`` reply frames from connection ``i``, parsed."""
    buf, seg_conn, seg_end, seg_t, walk = bytearray(), [], [], [], []
    for i, k in per_conn.items():
        for _ in range(k):
            walk.append(len(buf))
            buf += fr.encode(b"OK")
        seg_conn.append(i)
        seg_end.append(len(buf))
        seg_t.append(1000 + i)
    return p.parse(buf, seg_conn, seg_end, seg_t, walk if fr.header else None)


def test_the_kth_reply_on_a_connection_answers_its_kth_request() -> None:
    p = in_order()
    send(p, [0, 1], [3, 2], seq0=10, t=500)  # conn 0: seq 10-12 (t 500-502); 1: 13-14
    got = replies(p, {1: 1, 0: 2})
    assert got.ok.tolist() == [True, True, True]
    assert got.conn.tolist() == [1, 0, 0]
    assert got.st["seq"].tolist() == [13, 10, 11]
    assert got.st["t"].tolist() == [503, 500, 501]
    assert (got.st["worker"] == 5).all() and got.st["conn"].tolist() == [101, 100, 100]
    got = replies(p, {0: 1, 1: 1})
    assert got.st["seq"].tolist() == [12, 14]


def test_a_reply_with_no_request_waiting_is_not_matched() -> None:
    p = in_order()
    send(p, [2], [1], seq0=0, t=0)
    got = replies(p, {2: 2, 0: 1})
    assert got.ok.tolist() == [True, False, False]
    send(p, [2], [1], seq0=1, t=9)  # the extra reply consumed nothing: next one matches
    assert replies(p, {2: 1}).st["seq"].tolist() == [1]


def test_the_queue_grows_and_keeps_each_connections_order() -> None:
    p = in_order(n=2, fr=framing.LEN32)
    seq = 0
    for _ in range(5):  # 5 rounds of 7 on connection 1, 1 on connection 0: ring grows
        send(p, [0, 1], [1, 7], seq0=seq, t=seq)
        seq += 8
    got = replies(p, {1: 20, 0: 3}, framing.LEN32)
    want1 = [r * 8 + 1 + k for r in range(5) for k in range(7)][:20]
    assert got.ok.all()
    assert got.st["seq"].tolist() == want1 + [0, 8, 16]


def test_random_rounds_match_a_fifo_per_connection() -> None:
    """Rounds of one request (or reply) per connection take the ring's short paths; the
    others rank; all must answer each connection's requests in the order sent, with the
    ring growing under either path, and an extra reply never matched."""
    from collections import deque
    rng = np.random.default_rng(7)
    n = 6
    p, want = in_order(n=n, fr=framing.LEN32), [deque() for _ in range(n)]
    seq = 0
    for trial in range(400):
        if trial % 2 == 0:  # a send round
            idx = sorted(rng.choice(n, int(rng.integers(1, n + 1)), replace=False).tolist())
            counts = [1] * len(idx) if trial % 4 == 0 else \
                [int(c) for c in rng.integers(1, 4, len(idx))]
            send(p, idx, counts, seq0=seq, t=seq)
            for i, c in zip(idx, counts, strict=True):
                want[i].extend(range(seq, seq + c))
                seq += c
        else:  # a reply round: sometimes one each, sometimes more, sometimes extra
            per = {int(i): 1 if trial % 3 else int(rng.integers(1, 4))
                   for i in rng.choice(n, int(rng.integers(1, n + 1)), replace=False)}
            got = replies(p, per, framing.LEN32)
            exp_ok, exp_seq = [], []
            for i, k in per.items():
                for _ in range(k):
                    exp_ok.append(bool(want[i]))
                    exp_seq.append(want[i].popleft() if want[i] else 0)
            assert got.ok.tolist() == exp_ok, trial
            assert got.st["seq"][got.ok].tolist() == [q for q, o in zip(exp_seq, exp_ok,
                                                                          strict=True) if o]
    assert p.ring.shape[1] > 1  # it grew


def test_a_closed_connection_forgets_what_it_waited_for() -> None:
    p = in_order()
    send(p, [0], [4], seq0=0, t=0)
    p.forget(0)
    assert not replies(p, {0: 1}).ok.any()


def test_the_workloads_matching_chooses_the_protocol() -> None:
    out = Outbound(framing.LEN32, [Kind("msg", 1.0, 64)], [b"x" * 64], 7, 0, 1)
    assert type(protocol_for("stamp", framing.LEN32, out, 64, 1 << 20, 7, 2, 0)) is Stamped
    assert type(protocol_for("order", framing.LEN32, out, 64, 1 << 20, 7, 2, 0)) is InOrder


@pytest.mark.parametrize(("matching", "delivery", "error"), [
    ("bogus", "echo", "matching must be 'stamp' or 'order'"),
    ("order", "broadcast", "in-order matching needs delivery 'echo'"),
])
def test_load_refuses_a_matching_it_cannot_run(tmp_path: Path, matching: str, delivery: str,
                                               error: str) -> None:
    path = tmp_path / "mine.py"
    path.write_text("from workloads.base import Workload\n"
                    "class Mine(Workload):\n"
                    f"    delivery = {delivery!r}\n    matching = {matching!r}\n"
                    "WORKLOAD = Mine\n")
    with pytest.raises(WorkloadError, match=error):
        load(str(path))


# ---------------------------------------------------------------------------- whole runs


def run_with(plan: Plan, workload: Echo) -> dict:
    with Coordinator(plan, workload, resolve(plan.targets)) as coord:
        outcome = coord.run()
    assert not outcome.error, outcome.error
    (step,) = outcome.steps
    return figures(plan, workload, step).summary


@pytest.mark.e2e
@pytest.mark.parametrize("fr", ["len32", "newline"])
def test_in_order_matching_answers_requests_whose_replies_carry_no_stamp(fr: str) -> None:
    with servers.start("fixed_reply", framing=fr, reply=b"OK") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", framing=fr, conns="4", inflight=4,
                        duration=1.0)
        s = run_with(plan, InOrderEcho(plan.size, plan.seed))
    assert s["received"] > 100 and s["lost"] == 0 and s["duplicates"] == 0
    assert sum(s["errors"].values()) == 0, s["errors"]
    assert s["throughput_mb_s"] > 0 and s["latency_ms"]["p50"] > 0


@pytest.mark.e2e
def test_stamp_matching_refuses_the_same_unstamped_replies() -> None:
    with servers.start("fixed_reply", framing="len32", reply=b"OK") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="2", duration=0.5)
        s = run_with(plan, Echo(plan.size, plan.seed))
    assert s["received"] == 0 and s["errors"]["protocol"] > 0


@pytest.mark.e2e
def test_in_order_latency_comes_from_each_requests_own_send_time() -> None:
    # open loop, a request every 20 ms, each answered 60 ms later: three in flight per
    # connection, each sent at a different time; pairing a reply with a neighbour's send
    # time would read 40 or 80 ms. The margin leaves room for a busy machine: under the
    # parallel suite the server's timers ran late and a correct run read p50 70.5 ms
    with servers.start("fixed_reply", framing="len32", delay=0.060) as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="4", rate=50.0, duration=1.5)
        s = run_with(plan, InOrderEcho(plan.size, plan.seed))
    lat = s["latency_ms"]
    assert 59.0 <= lat["p50"] <= 76.0, lat
    assert s["lost"] == 0 and sum(s["errors"].values()) == 0, s["errors"]


@pytest.mark.e2e
def test_a_reply_nobody_asked_for_is_one_protocol_error_and_closes_its_connection() -> None:
    # a greeting before any request: that connection's replies are out of step with its
    # requests from there on (tests/test_unsolicited.py: every reply twice)
    with servers.start("fixed_reply", framing="len32", greeting=b"HELLO") as srv:
        plan = plan_for(f"127.0.0.1:{srv.port}", conns="3", duration=0.5)
        s = run_with(plan, InOrderEcho(plan.size, plan.seed))
    assert s["errors"]["protocol"] == 3, s["errors"]
    assert s["received"] <= 3 and s["errors"]["timeout"] == 0
