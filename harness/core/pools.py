"""Address pools: source addresses (``--source-addrs``) and destination port ranges
(``--host 127.0.0.1:7001-7050``), and how connections spread over them.

Pure: parsing raises ValueError with the reason; no sockets. Units: addresses, ports,
connections.
"""

from __future__ import annotations

import ipaddress

MAX_SOURCES = 65_536  # a /16: more source addresses than any step could use
MAX_PORT_RANGE = 1_000  # ports in one ``host:A-B`` destination pool


def source_pool(text: str) -> tuple[str, ...]:
    """IPv4 source addresses from a comma list whose items are an address, a range
    ``A-B`` (whole addresses, or ``A-N`` for the last octet) or a CIDR block ``a.b.c.d/n``
    (its usable hosts: without the network and broadcast address below /31). In order,
    duplicates dropped; ValueError names the bad item."""
    out: dict[str, None] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        for addr in _pool_item(item):
            out[addr] = None
            if len(out) > MAX_SOURCES:
                raise ValueError(f"more than {MAX_SOURCES:,} addresses (a /16 at most)")
    if not out:
        raise ValueError("no address given")
    return tuple(out)


def _pool_item(item: str) -> list[str]:
    if "/" in item:
        try:
            net = ipaddress.IPv4Network(item, strict=False)
        except ValueError as exc:
            raise ValueError(f"{item!r}: {exc}") from None
        if net.num_addresses > MAX_SOURCES:
            raise ValueError(f"{item!r}: more than {MAX_SOURCES:,} addresses (a /16 at most)")
        hosts = list(net.hosts()) if net.prefixlen < 31 else list(net)
        return [str(a) for a in hosts]
    if "-" in item:
        lo_text, hi_text = (x.strip() for x in item.split("-", 1))
        lo = _address(lo_text, item)
        if hi_text.isdigit():  # "127.0.0.1-8": the last octet
            hi_text = lo_text.rsplit(".", 1)[0] + "." + hi_text
        hi = _address(hi_text, item)
        if int(hi) < int(lo):
            raise ValueError(f"{item!r}: the range must go up")
        if int(hi) - int(lo) >= MAX_SOURCES:
            raise ValueError(f"{item!r}: more than {MAX_SOURCES:,} addresses (a /16 at most)")
        return [str(ipaddress.IPv4Address(a)) for a in range(int(lo), int(hi) + 1)]
    return [str(_address(item, item))]


def _address(text: str, item: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{item!r}: {text!r} is not an IPv4 address") from None


def port_pool(text: str) -> tuple[int, ...] | None:
    """The ports of ``A-B`` (both 1-65535, going up, MAX_PORT_RANGE at most), or None when
    ``text`` is not a range (a single port is the caller's to parse)."""
    lo_text, sep, hi_text = text.partition("-")
    if not sep:
        return None
    if not (lo_text.strip().isdigit() and hi_text.strip().isdigit()):
        raise ValueError(f"port range {text!r}: expected FIRST-LAST, e.g. 7001-7050")
    lo, hi = int(lo_text), int(hi_text)
    if not (1 <= lo <= hi <= 65535):
        raise ValueError(f"port range {text!r}: ports 1-65535, the range going up")
    if hi - lo + 1 > MAX_PORT_RANGE:
        raise ValueError(f"port range {text!r}: {hi - lo + 1} ports, at most {MAX_PORT_RANGE}")
    return tuple(range(lo, hi + 1))


def source_index(gid: int, destinations: int, sources: int) -> int:
    """The source address of connection ``gid`` when connections go round-robin over
    ``destinations`` (``gid % destinations``): the next source each time a connection comes
    back to the same destination, so every (source, destination) pair gets an equal share
    (within one) and none runs out of ports before the others."""
    return (gid // max(destinations, 1)) % max(sources, 1)


def pair_load(conns: int, destinations: int, sources: int) -> int:
    """The most connections any one (source, destination) pair carries under
    :func:`source_index`'s spread."""
    per_dest = -(-conns // max(destinations, 1))
    return -(-per_dest // max(sources, 1))
