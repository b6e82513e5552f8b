"""memcached: text-protocol ``set`` and ``get`` (``--mc-cmd``, one or a weighted set),
pipelined ``--inflight`` deep; replies are matched in order. ``END`` without a value (a
miss) is counted as ``mc_miss`` (information), ``ERROR``, ``CLIENT_ERROR``,
``SERVER_ERROR`` ... as error replies by kind (``mc_SERVER_ERROR``).

Selected by ``--workload memcached --host host:port``. The requests are rendered at plan
time (harness.protocols.kvcmds: keys ``key:{n}``, n in 1..``--keys``, values of ``--size``
bytes); the replies are parsed by harness.protocols.memcached.memcache.
"""

from __future__ import annotations

from workloads.base import Workload


class Memcached(Workload):
    name = "memcached"
    delivery = "echo"
    matching = "order"
    protocol = "memcache"


WORKLOAD = Memcached
