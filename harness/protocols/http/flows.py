"""Users with state in a worker (``[[users]]`` flows, captures, checks, cookies): each
connection's variables and cookie jar, the request it sends next, and what its responses
give or break. Used by harness.protocols.http.http1 only when a class reads responses
(:attr:`UserClass.reads`); other runs never build one.

Requests without a captured ``{name}`` keep their pre-rendered bytes; only those that use
one (``Rendered.uses``), and any request of a connection holding cookies, are finished
here at send time (variables filled in, Content-Length fixed, a ``Cookie`` line added).
Responses are read (:class:`~harness.protocols.http.checks.Response`) only for the kinds
that capture or check, and, for a class that keeps cookies, their heads for Set-Cookie.

A failure is counted once per response: a failed check as its ``check_<name>``, else a
capture that found nothing as ``capture_<name>``; a response whose status is an error
(``http_NNN``, or outside its check's status set) is counted by that alone, and its
captures are not tried (the flow reacts as to a missing one). Sizes are bytes.
"""

from __future__ import annotations

import re

import numpy as np

from harness.core.users import Sessions, UserClass
from harness.protocols.http.checks import Check, Response

SAMPLE_KEEP = 256  # bytes of the first failing response's body kept per error kind
_LENGTH = re.compile(rb"\r\nContent-Length: [0-9]+")


class Flows:
    """The state of a step's connections (``classes``: each local connection's class)."""

    def __init__(self, users: tuple[UserClass, ...], uses: list[tuple[str, ...]],
                 classes: np.ndarray, accepted: np.ndarray) -> None:
        n_kinds = len(uses)
        self.sessions = Sessions(users, classes)
        self.uses = [tuple(("{" + v + "}").encode() for v in u) for u in uses]
        self.late = np.asarray([bool(u) for u in uses], dtype=bool)  # rendered at send time
        self.captures: list[tuple] = [()] * n_kinds
        self.checks: list[Check | None] = [None] * n_kinds
        for u in users:
            for k in range(u.count):
                self.captures[u.first + k] = u.captures[k] if u.captures else ()
                self.checks[u.first + k] = u.checks[k] if u.checks else None
        self.reads = np.asarray([bool(c) or k is not None
                                 for c, k in zip(self.captures, self.checks, strict=True)])
        # status accepted per kind and code: the run's --accept, or the kind's check's set
        self.accept = np.tile(accepted[:1000], (n_kinds, 1))
        for k, chk in enumerate(self.checks):
            if chk is not None and chk.status is not None:
                self.accept[k] = False
                self.accept[k, [c for c in chk.status if c < 1000]] = True
        self.own_status = np.asarray([c is not None and c.status is not None
                                      for c in self.checks], dtype=bool)
        self.jar_on = np.asarray([u.cookies for u in users], dtype=bool)[classes] \
            if len(classes) else np.zeros(0, dtype=bool)
        self.restart = np.asarray([u.restart for u in users], dtype=bool)[classes] \
            if len(classes) else np.zeros(0, dtype=bool)
        n = len(classes)
        self.vars: list[dict[bytes, bytes]] = [{} for _ in range(n)]
        self.jars: list[dict[bytes, bytes]] = [{} for _ in range(n)]
        self.has_jar = np.zeros(n, dtype=bool)  # holds cookies: every request finished late
        self.errors: dict[str, int] = {}  # counted since the last round's hand-over
        self.bodies: dict[str, bytes] = {}  # the first failing body per error kind

    def kinds(self, idx: np.ndarray, counts: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self.sessions.next(idx, counts, u)

    # ------------------------------------------------------------------ sending

    def render(self, kinds: np.ndarray, conn: np.ndarray, parts: list[bytes]) -> None:
        """Finish, in ``parts`` (each message's pre-rendered bytes), the messages that use a
        captured variable or carry cookies."""
        late = self.late[kinds] | self.has_jar[conn]
        if not late.any():
            return
        for m in np.flatnonzero(late).tolist():
            parts[m] = self.finish(parts[m], int(kinds[m]), int(conn[m]))

    def finish(self, raw: bytes, kind: int, i: int) -> bytes:
        """One request with connection ``i``'s variables and cookies (a variable never
        captured is empty; in the request line a space is sent as %20)."""
        head, _, body = raw.partition(b"\r\n\r\n")
        tags = self.uses[kind]
        if tags:
            values = self.vars[i]
            eol = head.find(b"\r\n")
            line, rest, size = head[:eol], head[eol:], len(body)
            for tag in tags:
                v = values.get(tag, b"")
                line = line.replace(tag, v.replace(b" ", b"%20"))
                rest = rest.replace(tag, v)
                body = body.replace(tag, v)
            head = line + rest
            if len(body) != size:
                head = _LENGTH.sub(b"\r\nContent-Length: %d" % len(body), head, count=1)
        jar = self.jars[i]
        if jar:
            head += b"\r\nCookie: " + b"; ".join(k + b"=" + v for k, v in jar.items())
        return head + b"\r\n\r\n" + body

    # ------------------------------------------------------------------ responses

    def response(self, i: int, kind: int, code: int, raw: bytes) -> None:
        """Connection ``i``'s response ``raw`` (status ``code``) to a request of ``kind``."""
        if self.jar_on[i]:
            self._cookies(i, raw)
        if not self.reads[kind]:
            return
        caps = self.captures[kind]
        if not self.accept[kind, min(code, 999)]:  # counted by its status alone
            if caps and self.restart[i]:
                self.sessions.restart(i)
            return
        resp = Response(raw)
        check = self.checks[kind]
        failed = check is not None and check.fails(resp)
        if failed:
            assert check is not None
            self._fail(check.kind, resp)
        for cap in caps:
            value = cap.take(resp)
            if value is not None:
                self.vars[i][("{" + cap.name + "}").encode()] = value
                continue
            if not failed:  # one count per response
                self._fail(f"capture_{cap.name}", resp)
                failed = True
            if self.restart[i]:
                self.sessions.restart(i)

    def _fail(self, kind: str, resp: Response) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if kind not in self.bodies:
            self.bodies[kind] = resp.head.partition(b"\r\n")[0] + b"\r\n\r\n" + \
                resp.body[:SAMPLE_KEEP]

    def _cookies(self, i: int, raw: bytes) -> None:
        """Set-Cookie lines of the head into connection ``i``'s jar: name=value (path,
        domain and expiry ignored; Max-Age=0 or an empty value removes the cookie)."""
        end = raw.find(b"\r\n\r\n")
        head = raw[:end]
        if b"set-cookie:" not in head.lower():
            return
        jar = self.jars[i]
        for line in head.split(b"\r\n")[1:]:
            k, sep, v = line.partition(b":")
            if not sep or k.strip().lower() != b"set-cookie":
                continue
            pair, _, attrs = v.strip().partition(b";")
            name, eq, value = pair.partition(b"=")
            name, value = name.strip(), value.strip()
            if not eq or not name:
                continue
            if not value or b"max-age=0" in attrs.lower().replace(b" ", b""):
                jar.pop(name, None)
            else:
                jar[name] = value
        self.has_jar[i] = bool(jar)

    def take(self) -> tuple[dict[str, int], dict[str, bytes]]:
        """The failures counted since the last call (and the first bodies, kept)."""
        out, self.errors = self.errors, {}
        return out, self.bodies
