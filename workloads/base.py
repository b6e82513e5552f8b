"""The workload interface: what to send on connect, what the next messages look like, and
how replies are delivered. Workloads never touch sockets; the harness frames, stamps, sends,
receives and matches.

A workload is a class with these attributes and methods (subclass ``Workload``):

* ``name``: short name shown in reports.
* ``delivery``: ``"echo"`` (each message comes back once, on the connection that sent it)
  or ``"broadcast"`` (every connection in the room gets every message, the sender included).
* ``framing``: ``None`` to use the run's ``--framing``, or a framing name to force one.
* ``matching``: ``"stamp"`` (each reply carries the stamp of the message it answers) or
  ``"order"`` (replies carry no stamp: the k-th reply on a connection answers its k-th
  request; echo delivery only).
* ``protocol``: ``"framed"`` (the run's framing, stamped messages) or ``"http"``
  (HTTP/1.1 requests from ``request(host, path)``; see workloads/http.py), ``"resp"`` or
  ``"memcache"`` (redis and memcached requests rendered at plan time; see workloads/redis.py).
* ``ignore_unstamped``: when True, frames without a valid stamp (a server's welcome line, a
  join acknowledgement) are skipped; when False they count as protocol errors.
* ``hello(conn)``: frame bodies to send once, right after connecting (a handshake or a join
  line); ``[]`` for none.
* ``kinds()``: the message mix, a list of ``Kind(name, weight, size)``; ``size`` is bytes
  on the wire per message, framing included.
* ``filler(kind, n)``: ``n`` bytes that follow the stamp in a message of that kind (no
  newline byte).
"""

from __future__ import annotations

from dataclasses import dataclass

Size = int | tuple[int, int] | list[int]  # bytes: fixed, uniform in [lo, hi], or drawn from


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    weight: float
    size: Size


class Workload:
    name = "base"
    delivery = "echo"
    framing: str | None = None
    matching = "stamp"
    protocol = "framed"
    ignore_unstamped = False

    def __init__(self, size: Size = 64, seed: int = 1) -> None:
        self.size = size
        self.seed = seed

    def hello(self, conn: int) -> list[bytes]:
        return []

    def kinds(self) -> list[Kind]:
        return [Kind("msg", 1.0, self.size)]

    def filler(self, kind: int, n: int) -> bytes:
        return b"x" * n
