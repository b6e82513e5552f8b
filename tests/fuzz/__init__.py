"""A fuzzer of harness's command line and config surfaces (issue 20, "Hardening").

Each case is an argv for ``harness`` plus the files it writes into its own temp folder
(harness.toml, request and user tables, values files, mangled copies of a real run folder),
generated from a seed and the case's index alone (``random.Random(f"{seed}:{index}")``), so
one case replays by itself: ``python -m tests.fuzz --seed N --only INDEX -v``.

Surfaces: URL schemes (``--host``), request and user tables, WebSocket flags, ``[alerts]``,
``--pushgateway``, baselines and ``--max-regression``, run-wide values, and mangled run.json
(and series CSV) for every command that reads one: report, export hlog, export openmetrics,
merge, compare, history and ``run --baseline``.

A case is judged (tests.fuzz.judge): a traceback = failure; an exit code outside 0-4 =
failure; no answer within the bound = a hang (failure); exit 2 must print exactly one line
on stderr; a case that carries a known-bad value (``must_refuse``) must exit 2.

Speed: cases that start no load run in-process through click's CliRunner (``run`` and
``search`` stop where the load would start: validation is all they exercise), in a pool of
at most 2 processes; a few ``run`` cases (``load``) run for real as tiny CLI subprocesses
(one connection, 0.2 s) against servers the runner starts on 127.0.0.1 port 0.
"""
