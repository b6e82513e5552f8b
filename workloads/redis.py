"""redis: RESP requests (PING, ECHO, SET, GET; ``--redis-cmd``, one or a weighted set),
pipelined ``--inflight`` deep; replies are matched in order (the k-th reply on a connection
answers its k-th request). Error replies are counted by kind (``redis_ERR``,
``redis_WRONGTYPE``), nil replies as ``redis_miss``.

Selected by ``--workload redis --host host:port`` or a ``redis://host[:port]`` target. The
requests are rendered at plan time (harness.protocols.kvcmds: keys ``key:{n}``, n in 1..``--keys``,
values of ``--size`` bytes); the replies are parsed by harness.protocols.redis.resp.
"""

from __future__ import annotations

from workloads.base import Workload


class Redis(Workload):
    name = "redis"
    delivery = "echo"
    matching = "order"
    protocol = "resp"


WORKLOAD = Redis
