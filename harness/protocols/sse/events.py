"""A round of whole Server-Sent Events as arrays, sans-I/O.

The round buffer holds, per read, whole events decoded by harness.protocols.sse.stream (every
line ended by ``\\n``, each event by a blank line). One pass of numpy over the round finds
the lines, the events, their ``data:`` and ``event:`` lines and the stamp in each event's
data: the JSON field ``"stamp":"<56 hex digits>"`` (as ``--ws-text`` writes it). An event is
a delivery when it has data and its type is the one asked for (``message`` unless said);
comments (heartbeats), ``id:``/``retry:``-only blocks and events of another type are no
deliveries and no errors. A delivery whose data holds the stamp in another layout (spaces,
split over ``data:`` lines) is read with orjson; one with no valid stamp, or whose bytes are
not UTF-8, is a bad frame (a protocol error; the stream goes on).

Sizes are bytes; times ns.
"""

from __future__ import annotations

import numpy as np
import orjson

from harness.wire import stamp
from harness.wire.inbound import Parsed

MARKER = b'"stamp":"'  # the stamp field as the POST body writes it
_SPAN = len(MARKER) + stamp.ASCII_SIZE  # the marker, then the stamp's digits
_DATA = np.frombuffer(b"data", dtype=np.uint8)
_EVENT = np.frombuffer(b"event", dtype=np.uint8)


def parse_round(buf: bytearray, seg_conn: list[int], seg_end: list[int], seg_t: list[int],
                key: int, event: bytes = b"message") -> Parsed:
    """The deliveries among a round's events: their connection, receive time, stamp, whether
    it is good, and the event's size."""
    total = seg_end[-1]
    a = np.frombuffer(buf, dtype=np.uint8, count=total)
    ends = np.asarray(seg_end, dtype=np.int64)
    nl = np.flatnonzero(a == 10)
    blank = nl[1:][np.diff(nl) == 1] + 1  # the end of each blank line
    starts = np.union1d(np.concatenate(([0], ends[:-1])), blank[blank < total])
    line = np.concatenate(([0], nl[:-1] + 1))  # every line ends in \n: one start each
    ev_of_line = np.searchsorted(starts, line, side="right") - 1
    is_data = _field(a, line, _DATA)
    deliver = np.zeros(len(starts), dtype=bool)
    deliver[ev_of_line[is_data]] = True
    is_event = _field(a, line, _EVENT)
    if is_event.any():
        deliver &= _of_type(a, line[is_event], ev_of_line[is_event], nl, event, len(starts))
    ev = np.flatnonzero(deliver)
    st, ok = _stamps(a, line, is_data, starts, ev, key)
    ev_end = np.append(starts[1:], total)
    _slow(buf, starts, ev_end, line, is_data, ev, st, ok, key)
    seg = np.searchsorted(ends, starts[ev], side="right")
    return Parsed(np.asarray(seg_conn, dtype=np.int64)[seg],
                  np.asarray(seg_t, dtype=np.int64)[seg], st, ok, ev_end[ev] - starts[ev], [])


def _field(a: np.ndarray, line: np.ndarray, name: np.ndarray) -> np.ndarray:
    """Which lines are the field ``name`` (``name:`` or ``name`` alone on its line)."""
    k = len(name)
    last = len(a) - 1
    cols = np.minimum(line[:, None] + np.arange(k + 1), last)
    head = a[cols]
    return (head[:, :k] == name).all(axis=1) & ((head[:, k] == 58) | (head[:, k] == 10))


def _of_type(a: np.ndarray, line: np.ndarray, ev: np.ndarray, nl: np.ndarray, event: bytes,
             n_events: int) -> np.ndarray:
    """Per event: True unless its last ``event:`` line names another type than ``event``
    (an empty one means ``message``)."""
    at = line + 5 + (a[np.minimum(line + 5, len(a) - 1)] == 58)
    at += a[np.minimum(at, len(a) - 1)] == 32  # one space after the colon
    eol = nl[np.searchsorted(nl, line)]
    name = np.frombuffer(event, dtype=np.uint8)
    same = eol - at == len(name)
    if same.any() and len(name):
        cols = np.minimum(at[same][:, None] + np.arange(len(name)), len(a) - 1)
        same[same] = (a[cols] == name).all(axis=1)
    if event == b"message":
        same |= eol == at  # "event:" with no name: the default type
    last = np.full(n_events, -1, dtype=np.int64)
    np.maximum.at(last, ev, np.arange(len(ev)))
    out = np.full(n_events, event == b"message")  # no event line: a message
    has = last >= 0
    out[has] = same[last[has]]
    return out


def _stamps(a: np.ndarray, line: np.ndarray, is_data: np.ndarray, starts: np.ndarray,
            ev: np.ndarray, key: int) -> tuple[np.ndarray, np.ndarray]:
    """Each delivery's stamp from the first stamp field in its data lines (zeros and not ok
    where none is found there)."""
    st = np.zeros(len(ev), dtype=stamp.BIN_DTYPE)
    ok = np.zeros(len(ev), dtype=bool)
    at = _markers(a)
    if not len(at) or not len(ev):
        return st, ok
    at = at[is_data[np.searchsorted(line, at, side="right") - 1]]  # in a data line
    owner = np.searchsorted(starts, at, side="right") - 1
    owner, first = np.unique(owner, return_index=True)
    at = at[first]
    slot = np.searchsorted(ev, owner)
    mine = (slot < len(ev)) & (ev[np.minimum(slot, len(ev) - 1)] == owner)
    at, slot = at[mine], slot[mine]
    cols = np.minimum(at[:, None] + len(MARKER) + np.arange(stamp.ASCII_SIZE + 1), len(a) - 1)
    raw = a[cols]
    got, good = stamp.from_bytes(raw[:, :-1], True, key)
    st[slot] = got
    ok[slot] = good & (raw[:, -1] == 34)  # the closing quote
    return st, ok


def _markers(a: np.ndarray) -> np.ndarray:
    """Where ``"stamp":"`` starts, with room after it for the stamp."""
    at = np.flatnonzero(a[:max(len(a) - _SPAN, 0)] == MARKER[0])
    for j in range(1, len(MARKER)):
        at = at[a[at + j] == MARKER[j]]
    return at


def _slow(buf: bytearray, starts: np.ndarray, ends: np.ndarray, line: np.ndarray,
          is_data: np.ndarray, ev: np.ndarray, st: np.ndarray, ok: np.ndarray,
          key: int) -> None:
    """Deliveries whose stamp the fast scan did not find, read with orjson; deliveries with
    bytes that are not UTF-8 made bad (in place)."""
    a = np.frombuffer(buf, dtype=np.uint8, count=int(ends[-1]) if len(ends) else 0)
    high = np.zeros(len(ev), dtype=bool)
    if len(ev) and (a >= 0x80).any():
        hi_ev = np.unique(np.searchsorted(starts, np.flatnonzero(a >= 0x80), side="right") - 1)
        high = np.isin(ev, hi_ev)
    for j in np.flatnonzero(~ok | high).tolist():
        e = int(ev[j])
        text = bytes(buf[int(starts[e]):int(ends[e])])
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            ok[j] = False
            continue
        if not ok[j]:
            st[j], ok[j] = _json_stamp(text, key)


def _json_stamp(event: bytes, key: int) -> tuple[np.ndarray, bool]:
    """The stamp of one event's data read as JSON (its data lines joined by \\n)."""
    data = b"\n".join(ln[5:].removeprefix(b" ") if ln[4:5] == b":" else b""
                      for ln in event.split(b"\n") if ln.startswith(b"data")
                      and ln[4:5] in (b":", b""))
    none = np.zeros(1, dtype=stamp.BIN_DTYPE)[0]
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return none, False
    s = doc.get("stamp") if isinstance(doc, dict) else None
    if not isinstance(s, str) or len(s) != stamp.ASCII_SIZE or not s.isascii():
        return none, False
    got, good = stamp.from_bytes(np.frombuffer(s.encode(), dtype=np.uint8)[None, :], True, key)
    return got[0], bool(good[0])
