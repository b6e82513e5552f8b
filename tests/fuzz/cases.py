"""The cases: each generator draws one case of its surface from a seeded ``random.Random``.

A case's argv may hold ``{RAW}``, ``{WS}`` and ``{HTTP}`` (the load servers' addresses, for
``load`` cases) and its files are written under the case's own folder; ``runs/base`` (and
``runs/new``) are copies of the real run folder the runner made once, possibly mangled.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fuzz import mangle
from tests.fuzz.vocab import number, text, toml_string, toml_value

REFUSED = "127.0.0.1:9"  # in-process cases never connect: validation stops before the load
RUN = ("run", "--duration", "0.2", "--warmup", "0", "--conns", "1", "--workers", "1",
       "--no-report", "--results-dir", "res")


@dataclass(frozen=True)
class Case:
    index: int
    surface: str
    argv: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    load: bool = False       # runs real load: a CLI subprocess against the runner's servers
    must_refuse: str = ""    # a known-bad value (the list): anything but exit 2 fails

    @property
    def command(self) -> str:
        return " ".join(self.argv[:2]) if self.argv[:1] == ("export",) else self.argv[0]


@dataclass
class Draft:
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    must_refuse: str = ""

    def refuse(self, why: str) -> None:
        self.must_refuse = self.must_refuse or why


Gen = Callable[[random.Random, dict[str, bytes]], Draft]

# ---------------------------------------------------------------------------- URLs

SCHEMES = ["http://", "https://", "ws://", "wss://", "redis://", "", "", "tcp://", "ftp://",
           "HTTP://", "//", "http:/", "ws:", "unix://"]
HOSTS = ["127.0.0.1", "localhost", "[::1]", "[::1", "::1", "", "a" * 64, "a." * 130, "é.com",
         "127.0.0.256", "-x", "x_y", "0", "[fe80::1%lo]", "user@127.0.0.1", "127.1", "[]"]
PORTS = ["", ":0", ":1", ":9", ":65535", ":65536", ":-1", ":x", ":", ":00080", ":1e3", ": 80",
         ":٣"]
PATHS = ["", "/", "/a b", "/\r\n", "/%00", "?q=1", "#f", "/é", "/" + "a" * 5000, "/x?y#z",
         "/\x1b", "/{stamp}"]


def url(rng: random.Random) -> tuple[str, bool]:
    """A target URL, and whether it is an http/ws URL with port 0 (must be refused)."""
    scheme = rng.choice(SCHEMES)
    port = rng.choice(PORTS) if rng.random() < 0.8 else ":" + number(rng)
    host = rng.choice(HOSTS) if rng.random() < 0.85 else text(rng)
    path = rng.choice(PATHS) if scheme else ""
    zero = scheme in ("http://", "https://", "ws://", "wss://") and port == ":0"
    return scheme + host + port + path, zero


def gen_url(rng: random.Random, _: dict[str, bytes]) -> Draft:
    urls = [url(rng) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
    d = Draft([*RUN, "--host", ",".join(u for u, _ in urls)])
    if any(zero for _, zero in urls):
        d.refuse("port 0 in a URL")
    for flag in ("--tls", "--insecure", "--ws"):
        if rng.random() < 0.1:
            d.argv.append(flag)
    return d

# ---------------------------------------------------------------------------- tables

METHODS = ['"POST"', '"get"', '"G T"', '""', '"DELETE"', '"X\\r\\nY"', "1"]
REQ_PATHS = ['"x"', '"/a b"', '"/{nope}"', '"/{name}"', '"/\\r\\n"', '""', '"/\\u001b"']
RANGES = ['"5-1"', '"a-b"', '"-5-5"', '"1-1000000000"', '"0-99999999999999999999"', '"1-²"',
          '"1-' + "9" * 5000 + '"', '"1-100000000"', '"1--1"', '" 1 - 2 "', '"1"', '"٣-٩"']
HEADERS_T = ['{ Host = "e" }', '{ Content-Length = "5" }', '{ "X\\r\\nY" = "1" }', "{ X = 1 }",
             "[]", '{ X = "a\\r\\nb" }', '{ "" = "v" }', '{ Content-Type = "application/json" }']
BODIES = ["'{\"owner\": {user_id}}'", '"{name}"', "1", '"{nope}"', '"\\u0000"', "'{\"a\": '"]


def values_source(rng: random.Random, files: dict[str, bytes]) -> str:
    """A hostile ``values`` source: a range, a list, or a values file."""
    r = rng.random()
    if r < 0.5:
        return rng.choice(RANGES)
    if r < 0.7:
        return rng.choice(["[]", "[1, 2.5, true]", "[[1]]", '[""]', "[" + toml_string(text(rng))
                           + "]"])
    lines = [text(rng) for _ in range(rng.randrange(0, 5))]
    if rng.random() < 0.15:
        lines.append("v" * rng.choice((70_000, 300_000)))
    files["vals.txt"] = "\n".join(lines).encode("utf-8", "surrogateescape")
    return rng.choice(['{ file = "vals.txt" }'] * 4 + ['{ file = "nope.txt" }', "{ file = 1 }",
                                                      '{ file = "." }', '{ file = "/dev/zero" }'])


def request_entry(rng: random.Random, files: dict[str, bytes], table: str, k: int = 0) -> str:
    """A valid request, then none, one or two of its keys made hostile."""
    files.setdefault("names.txt", b"pen\nink\n")
    keys = {"name": toml_string(f"r{k}"), "weight": "1", "method": '"GET"',
            "path": '"/users/{user_id}/"',
            "headers": '{ Content-Type = "application/json" }',
            "body": "'{\"owner\": {user_id}, \"name\": \"{name}\"}'",
            "values": '{ user_id = "1-1000", name = { file = "names.txt" } }'}
    hostile = {"name": lambda: toml_string(rng.choice(["a.b", "", "x" * 300, text(rng)])),
               "weight": lambda: toml_value(rng, "-1"),
               "method": lambda: rng.choice(METHODS), "path": lambda: rng.choice(REQ_PATHS),
               "headers": lambda: rng.choice(HEADERS_T), "body": lambda: rng.choice(BODIES),
               "values": lambda: "{ user_id = " + values_source(rng, files)
                                 + ', name = ["pen"] }',
               "bogus": lambda: "1"}
    for key in rng.sample(list(hostile), rng.choice((0, 1, 1, 1, 2))):
        keys[key] = hostile[key]()
    return f"[[{table}]]\n" + "".join(f"{key} = {v}\n" for key, v in keys.items())


def gen_requests(rng: random.Random, _: dict[str, bytes]) -> Draft:
    files: dict[str, bytes] = {}
    body = "".join(request_entry(rng, files, "requests", k) for k in range(rng.randint(1, 3)))
    return _table_case(rng, body, files)


CLASS_HOSTILE = {"name": ['"a.b"', '""', '"c0"', "1"],
                 "weight": ["0", "-1", '"x"', "nan", "inf"],
                 "think": ['"2-1"', '"x"', "-1", "1e308", '"1-"', "nan"], "bogus": ["1"]}


def gen_users(rng: random.Random, _: dict[str, bytes]) -> Draft:
    files: dict[str, bytes] = {}
    body = ""
    for c in range(rng.randint(1, 3)):
        keys = {"name": f'"c{c}"', "weight": "1", "think": '"0.1-0.2"'}
        if rng.random() < 0.4:
            key = rng.choice(list(CLASS_HOSTILE))
            keys[key] = rng.choice(CLASS_HOSTILE[key])
        body += "[[users]]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for k in range(rng.choice((0, 1, 1, 2))):
            body += request_entry(rng, files, "users.requests", k)
    if rng.random() < 0.1:
        body += request_entry(rng, files, "requests")  # both tables: exit 2
    return _table_case(rng, body, files)


def _table_case(rng: random.Random, body: str, files: dict[str, bytes]) -> Draft:
    host = rng.choice(["http://127.0.0.1:9/"] * 8 + [REFUSED, "ws://127.0.0.1:9/"])
    raw = body.encode("utf-8", "surrogateescape")
    if rng.random() < 0.5:
        files["harness.toml"] = raw
        return Draft([*RUN, "--host", host], files)
    files["reqs.toml"] = raw
    return Draft([*RUN, "--host", host, "--requests", rng.choice(["reqs.toml"] * 9 + [".", "x"])],
                 files)

# ---------------------------------------------------------------------------- WebSocket

WS_TEXT = ['{"stamp": "{stamp}", "text": "{text}"}', '{"stamp": "{stamp}"}', '{"a": 1}',
           '{"stamp": {stamp}}', "{stamp}", '{"s": "{stamp}", "t": "{stamp}"}', "not json",
           '{"stamp": "{stamp}", "x": "\udcff"}', "\udcff", '["{stamp}"]', "",
           '{"stamp": "{stamp}", "text": "{text}", "big": "' + "a" * 5000 + '"}']
WS_FLAGS = ["--ws-text", "--ws-match", "--ping-interval", "--reconnect", "--ws-compress",
            "--ws-subprotocol", "--header"]
HEADERS = ["X-Token: 1", "Host: evil", "host: evil", "NoColon", ": v", "X: \r\nY: z", "X:",
           "X-A: 1", "Authorization: Bearer t", "Sec-WebSocket-Key: x", "\udcff: 1", "X: é"]


def ws_flag(rng: random.Random, flag: str) -> list[str]:
    if flag in ("--reconnect", "--ws-compress"):
        return [flag]
    if flag == "--ws-text":
        return [flag, rng.choice(WS_TEXT) if rng.random() < 0.8 else text(rng)]
    if flag == "--ws-match":
        return [flag, rng.choice(["type=message", "=", "a", "a=b=c", "=x", text(rng)])]
    if flag == "--ping-interval":
        return [flag, number(rng)]
    if flag == "--ws-subprotocol":
        return [flag, rng.choice(["chat", "\r\n", "", "a,b", "é", " x", "a b", text(rng)])]
    return [flag, rng.choice(HEADERS) if rng.random() < 0.8 else text(rng)]


def gen_ws(rng: random.Random, _: dict[str, bytes]) -> Draft:
    target = rng.choice(["ws://127.0.0.1:9/chat", "ws://127.0.0.1:9/chat", "wss://127.0.0.1:9/",
                         "http://127.0.0.1:9/", REFUSED, "", "--ws"])
    d = Draft(list(RUN) + (["--ws"] if target == "--ws" else ["--host", target] if target else []))
    flags = rng.sample(WS_FLAGS, rng.randint(1, 3))
    if "--header" in flags and rng.random() < 0.3:
        flags.append("--header")
    given = []
    for flag in flags:
        given.append(ws_flag(rng, flag))
        d.argv += given[-1]
    # The rule: a flag that does not apply to the target is exit 2. --header on
    # http:// is left out (a fix may well send it there), and so are a repeated --header and
    # 'Host:' (sending every header, or refusing, are both fixes): they are fuzzed, not judged.
    # A flag given its default value ("", 0) cannot be told from the default: not judged.
    ws_target = target.startswith(("ws://", "wss://")) or target == "--ws"
    judged = [f for f, *v in given if not _is_default(v)
              and (f != "--header" or not target.startswith("http://"))]
    if judged and not ws_target:
        d.refuse("a WebSocket flag on a target that is not ws://")
    return d


def _is_default(value: list[str]) -> bool:
    """A flag's value that equals its default: "" for the text flags, 0 for the interval."""
    if not value:
        return False  # a switch (--reconnect, --ws-compress) given is never its default
    try:
        return value[0] == "" or float(value[0]) == 0.0
    except ValueError:
        return False

# ---------------------------------------------------------------------------- alerts


def alerts_toml(rng: random.Random, webhook: str = "http://127.0.0.1:9/hook",
                smtp: str = "127.0.0.1") -> str:
    """A valid [alerts] table (email to a closed port), then none, one or two keys hostile."""
    keys = {"on": '["threshold"]', "webhook": toml_string(webhook), "slack": "false",
            "timeout": "0.5"}
    email = {"host": toml_string(smtp), "port": "9", "starttls": "false",
             "from": '"h@example.com"', "to": '["o@example.com"]'}
    hostile = {"on": lambda: rng.choice(["[]", '["x"]', '"threshold"', "[1]"]),
               "webhook": lambda: toml_string(rng.choice(WEBHOOKS) if rng.random() < 0.8
                                              else "http://" + text(rng)),
               "slack": lambda: toml_value(rng, '"yes"'),
               "slack_webhook": lambda: toml_string(rng.choice(WEBHOOKS)),
               "timeout": lambda: rng.choice(["0", "-1", "nan", "1e308", '"5"', "61"]),
               "bogus": lambda: "1",
               "email.host": lambda: toml_string(rng.choice(["", "h\r\n", "[::1", text(rng)])),
               "email.port": lambda: rng.choice(["0", "65536", "-1", '"25"', "1.5"]),
               "email.from": lambda: toml_string(rng.choice(ADDRESSES) if rng.random() < 0.8
                                                 else text(rng)),
               "email.to": lambda: "[" + toml_string(rng.choice(ADDRESSES) if rng.random() < 0.8
                                                     else text(rng)) + "]",
               "email.password": lambda: '"p"',
               "email.password_env": lambda: rng.choice(['"FUZZ_PW"', '"1X"', '""', '"UNSET_PW"']),
               "email.user": lambda: toml_string(rng.choice(["u", "", "u\r\nx", text(rng)]))}
    for key in rng.sample(list(hostile), rng.choice((0, 1, 1, 1, 2))):
        table, _, name = key.rpartition(".")
        (email if table else keys)[name] = hostile[key]()
    body = "[alerts]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    if rng.random() < 0.7:
        body += "[alerts.email]\n" + "".join(f"{k} = {v}\n" for k, v in email.items())
    return body


WEBHOOKS = ["https://h/x", "ftp://h", "http://[::1", "http://h/\r\nX: y", "http://h:0/",
            "http://h/ a", "http://h:99999/", "http://é/", "http://h/?q#f", ""]
ADDRESSES = ["a\r\nBcc: x@y", "", "é@x", "a,b", "o\r\n@x", "<a@b>", "a@b\n", "@", "a@[::1"]


def gen_alerts(rng: random.Random, _: dict[str, bytes]) -> Draft:
    raw = alerts_toml(rng).encode("utf-8", "surrogateescape")
    return Draft([*RUN, "--host", REFUSED], {"harness.toml": raw})

# ---------------------------------------------------------------------------- pushgateway

PUSH = ["http://127.0.0.1:9", "http://127.0.0.1:9/", "http://[::1", "http://[::1]:9/",
        "http://h\r\n:9", "http://127.0.0.1:9/\r\nX: y", "ftp://h", "", "http://", "http://:0",
        "http://h:99999", "http://é/", "https://h/p", "http://h/p?x=1", "http://h/p#f",
        "http://u:p@h/", "http://h:0/", "http://h/ a", "//h", "http://h/%zz"]


def gen_push(rng: random.Random, _: dict[str, bytes]) -> Draft:
    u = rng.choice(PUSH) if rng.random() < 0.8 else "http://" + text(rng)
    d = Draft([*RUN, "--host", REFUSED, "--pushgateway", u])
    if u.startswith("http") and ("?" in u or "#" in u):
        d.refuse("a pushgateway URL with ? or #")
    return d

# ---------------------------------------------------------------------------- baselines

LIMITS = ["p99=10%", "p99=10%,throughput=5%", "10%%", "errors=200%", "p99=10%,", "max=1%",
          "p99=", "=10%", "p99=-1%", "p99=nan%", "p99=1e308%", "x=1%", "p99=10", ",", "",
          "p99=10%,p99=20%", "errors=0.1%", "lost=0", "lost=-1", "p50=10%;p90=1%"]
BAD_LIMITS = {"10%%", "errors=200%", "p99=10%,"}


def max_regression(rng: random.Random, d: Draft) -> None:
    value = rng.choice(LIMITS) if rng.random() < 0.85 else text(rng)
    d.argv += ["--max-regression", value]
    if value in BAD_LIMITS:
        d.refuse("a bad --max-regression")


def gen_baseline(rng: random.Random, run: dict[str, bytes]) -> Draft:
    d = Draft([*RUN, "--host", REFUSED])
    where = rng.choice(["runs/base", "runs/base", "nope", "runs/base/run.json", ".", "runs",
                        text(rng)])
    if rng.random() < 0.5:
        d.argv += ["--baseline", where]
    else:
        value = rng.choice([where, "runs/{scenario}", "{env}", "{", "{nope}", "runs/{env}"])
        d.files["harness.toml"] = f"[run]\nbaseline = {toml_string(value)}\n".encode(
            "utf-8", "surrogateescape")
        if rng.random() < 0.3:
            d.argv += ["--env", rng.choice(["staging", "x", ""])]
    _add_run(rng, d.files, "runs/base", run, mangled=rng.random() < 0.4)
    if rng.random() < 0.6:
        max_regression(rng, d)
    return d


def _add_run(rng: random.Random, files: dict[str, bytes], where: str, run: dict[str, bytes],
             mangled: bool) -> None:
    folder = mangle.mangled_folder(rng, run) if mangled else run
    for name, raw in folder.items():
        files[f"{where}/{name}"] = raw

# ---------------------------------------------------------------------------- mangled run.json


# report renders plots (about 1 s a case): drawn less often than the others
RUNJSON_COMMANDS = ["report", "hlog", "openmetrics", "merge", "compare", "history", "baseline"]
RUNJSON_WEIGHTS = [0.5, 1, 1, 1, 2, 1, 1]


def gen_runjson(rng: random.Random, run: dict[str, bytes]) -> Draft:
    d = Draft([])
    _add_run(rng, d.files, "runs/base", run, mangled=True)
    _add_run(rng, d.files, "runs/new", run, mangled=rng.random() < 0.1)
    pair = ["runs/base", "runs/new"] if rng.random() < 0.5 else ["runs/new", "runs/base"]
    command = rng.choices(RUNJSON_COMMANDS, RUNJSON_WEIGHTS)[0]
    d.argv = {"report": ["report", "runs/base"],
              "hlog": ["export", "hlog", "runs/base"],
              "openmetrics": ["export", "openmetrics", "runs/base"],
              "merge": ["merge", *pair, "--results-dir", "res", "--no-report"],
              "compare": ["compare", *pair, "--no-report"],
              "history": ["history", "runs"],
              "baseline": [*RUN, "--host", REFUSED, "--baseline", "runs/base"]}[command]
    if command in ("compare", "history", "merge") and rng.random() < 0.3:
        d.argv.append("--json")
    if command == "compare" and rng.random() < 0.3:
        max_regression(rng, d)
    if command in ("compare", "history") and rng.random() < 0.25:
        d.argv += ["--html", rng.choice(OUT_PATHS)]
    if command == "compare" and rng.random() < 0.2:
        d.argv += ["--junit", rng.choice(OUT_PATHS)]
    return d


# output files the commands write: only inside the case's folder (never a device: --junit
# /dev/null as root would replace it, issue 20's first defect)
OUT_PATHS = ["out.xml", ".", "", "..", "nope/out.xml", "runs", "runs/base/run.json", "out.xml/",
             "./", "-", "\udcff.xml", "a" * 300]

# ---------------------------------------------------------------------------- values

VALUE_FLAGS = ["--conns", "--messages", "--size", "--rate", "--think", "--inflight",
               "--timeout", "--connect-timeout", "--connect-rate", "--max-frame", "--listen",
               "--seed", "--keys", "--accept", "--redis-cmd", "--mc-cmd", "--framing",
               "--workload", "--duration", "--warmup", "--max-conns", "--increment",
               "--monitor-interval", "--push-hosts", "--name", "--source-addrs"]
SPECIAL = {"--accept": ["2xx", "2xx,3xx,404", "200-299", "6xx", "299-200", "", "x"],
           "--redis-cmd": ["ping", "set:1,get:3", "set:0", "get:-1", "flushall", "set:1,"],
           "--mc-cmd": ["set", "get", "set:1,get:9", "delete", "set:nan"],
           "--framing": ["newline", "len16", "len32", "len64", "NEWLINE"],
           "--workload": ["echo", "chat", "redis", "memcached", "http", "nope", "x.py", "."],
           "--size": ["64", "64-1024", "64,128,1024", "1024-64", "10", "64-", "-64"],
           "--think": ["1-5", "5-1", "0.1", "1-", "-1"]}


def gen_values(rng: random.Random, _: dict[str, bytes]) -> Draft:
    host = rng.choice([REFUSED, "http://127.0.0.1:9/", "redis://127.0.0.1:9", ""])
    d = Draft([*RUN] + (["--host", host] if host else []))
    workload = "echo"
    for flag in rng.sample(VALUE_FLAGS, rng.randint(1, 3)):
        choices = SPECIAL.get(flag)
        value = rng.choice(choices) if choices and rng.random() < 0.7 else number(rng)
        d.argv += [flag, value]
        workload = value if flag == "--workload" else workload
    _inapplicable(d, host, workload)
    return d


DEFAULTS = {"--accept": "2xx", "--redis-cmd": "ping", "--mc-cmd": "set"}


def _inapplicable(d: Draft, host: str, workload: str) -> None:
    """A flag that does not apply is exit 2; one given with its default value cannot be
    told from the default once the config is merged, so it is not judged."""
    given = {f: v for f, v in zip(d.argv, d.argv[1:], strict=False)
             if f in DEFAULTS and v != DEFAULTS[f]}
    redis = host.startswith("redis://") or workload == "redis"
    if "--accept" in given and not host.startswith("http://"):
        d.refuse("--accept on a target that is not HTTP")
    if "--redis-cmd" in given and not redis:
        d.refuse("--redis-cmd without the redis workload")
    if "--mc-cmd" in given and workload != "memcached":
        d.refuse("--mc-cmd without the memcached workload")

# ---------------------------------------------------------------------------- search


def gen_search(rng: random.Random, _: dict[str, bytes]) -> Draft:
    slo = rng.choice(["p99<5ms", "p99<5ms and errors<1%", "p99<", "x<1", "p99<5parsec",
                      "p99<nan ms", "throughput>1e308", "errors<200%", text(rng)])
    d = Draft(["search", "--host", REFUSED, "--duration", "0.2", "--warmup", "0", "--slo", slo])
    for flag in ("--max-errors", "--lo", "--hi", "--tolerance", "--max-probes", "--over"):
        if rng.random() < 0.3:
            d.argv += [flag, rng.choice(["conns", "rate"]) if flag == "--over" else number(rng)]
    return d

# ---------------------------------------------------------------------------- load

LOAD = ("run", "--duration", "0.2", "--warmup", "0", "--conns", "1", "--workers", "1",
        "--timeout", "0.5", "--results-dir", "res", "--no-report")


def gen_load(rng: random.Random, run: dict[str, bytes]) -> Draft:
    """A real (tiny) run with one hostile surface, against the runner's servers."""
    kind = rng.choice(["ws", "push", "alerts", "requests", "baseline", "raw"])
    if kind == "ws":
        d = Draft([*LOAD, "--host", "ws://{WS}/x"])
        for flag in rng.sample(WS_FLAGS, rng.randint(1, 3)):
            d.argv += ws_flag(rng, flag)
        return d
    if kind == "push":
        tail = rng.choice(["/", "/\r\nX: y", "/p?x=1", "/p#f", "/ a", "/%zz", "/é"])
        return Draft([*LOAD, "--host", "{RAW}", "--pushgateway", "http://{HTTP}" + tail])
    if kind == "alerts":
        body = alerts_toml(rng, "http://{HTTP}/hook", "127.0.0.1")
        body += "[thresholds]\np50_ms = 0.000001\n"  # fails: the alert is sent
        return Draft([*LOAD, "--host", "{RAW}"], {"harness.toml": body.encode(
            "utf-8", "surrogateescape")})
    if kind == "requests":
        files: dict[str, bytes] = {}
        body = "".join(request_entry(rng, files, "requests", k) for k in range(rng.randint(1, 2)))
        files["harness.toml"] = body.encode("utf-8", "surrogateescape")
        return Draft([*LOAD, "--host", "http://{HTTP}/"], files)
    if kind == "baseline":
        d = Draft([*LOAD, "--host", "{RAW}", "--baseline", "runs/base", "--junit", "out.xml"])
        _add_run(rng, d.files, "runs/base", run, mangled=True)
        return d
    d = Draft([*LOAD, "--host", "{RAW}"])
    for flag in rng.sample(["--size", "--inflight", "--rate", "--think", "--max-frame"], 1):
        d.argv += [flag, rng.choice(SPECIAL.get(flag, ["1", "2", "100", "0.5"]))]
    return d

# ---------------------------------------------------------------------------- the mix

SURFACES: list[tuple[str, Gen, float]] = [
    ("runjson", gen_runjson, 0.33), ("url", gen_url, 0.10), ("requests", gen_requests, 0.09),
    ("users", gen_users, 0.06), ("ws", gen_ws, 0.10), ("alerts", gen_alerts, 0.06),
    ("pushgateway", gen_push, 0.05), ("baseline", gen_baseline, 0.07),
    ("values", gen_values, 0.08), ("search", gen_search, 0.02), ("load", gen_load, 0.04)]


def make(seed: int, index: int, run: dict[str, bytes]) -> Case:
    """Case ``index`` of seed ``seed`` (its own generator: it replays alone)."""
    rng = random.Random(f"{seed}:{index}")
    names, gens, weights = zip(*SURFACES, strict=True)
    k = rng.choices(range(len(names)), weights)[0]
    d = gens[k](rng, run)
    return Case(index, names[k], tuple(d.argv), d.files, names[k] == "load", d.must_refuse)
