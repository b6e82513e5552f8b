"""Benchmark: one flow of users with state in harness and in Locust, against the same app
(issue 23, the Locust comparison): requests, failures and p50/p95/p99 side by side.

    PYTHONPATH=$PWD python tests/bench/locust_flow.py [--users 20] [--seconds 10]
        [--think 0.05-0.1] [--rounds 1]

Needs Locust (``pip install locust``; not a dependency of harness: this script says so and
stops when it is missing). Starts tests/flow_backend.py under uvicorn (one worker, pinned to
CPU 0), then per round, pinned to CPU 1, ``harness run`` and ``locust --headless`` with the
same users, think time and duration, and the same flow:

* each user logs in (POST /login, the token from ``$.token``, the session cookie kept),
  creates a report (POST /reports, its id from ``$.id``) and fetches it back;
* then 5 requests drawn 2:3 from GET /auth/status and GET /search (a failure when the
  body's ``$.ok`` is not true: the app says false on every 10th search), each with
  ``Authorization: Bearer TOKEN``, a think time after each;
* then POST /logout and the session starts again at the login.

A think time follows every request in both (Locust: ``self.wait()`` after each request of
on_start and the logout, a task's own wait after each task).

Locust's percentiles are its own (rounded to about 2 significant digits); harness's come
from its histograms. A failure is Locust's failure count; harness's is every counted error
(check_search, http_NNN, ...) plus lost requests. Not a test (pytest does not collect it).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script
from tests.support import free_port, stop, wait_listening  # noqa: E402
from tests.support.bench import CLIENT_CPU, SERVER_CPU, harness_run  # noqa: E402
from tests.test_flows import FLOW  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

LOCUSTFILE = '''
from locust import HttpUser, between, task


class Reg(HttpUser):
    wait_time = between({lo}, {hi})

    # a think time after every request, as harness's (a task's own comes after it)
    def on_start(self):
        self.done = 0
        r = self.client.post("/login", name="login")
        self.auth = {{"Authorization": "Bearer " + r.json()["token"]}}
        self.wait()
        r = self.client.post("/reports", headers=self.auth, name="create")
        self.wait()
        self.client.get("/reports/%d" % r.json()["id"], headers=self.auth, name="fetch")
        self.wait()

    def step(self):
        self.done += 1
        if self.done == 5:
            self.client.post("/logout", headers=self.auth, name="logout")
            self.wait()
            self.on_start()

    @task(2)
    def status(self):
        self.client.get("/auth/status", headers=self.auth, name="status")
        self.step()

    @task(3)
    def search(self):
        with self.client.get("/search?q=x", headers=self.auth, name="search",
                             catch_response=True) as r:
            if r.json().get("ok") is not True:
                r.failure("$.ok is not true")
            else:
                r.success()
        self.step()
'''


def run_harness(port: int, folder: Path, args: argparse.Namespace) -> dict:
    plan = folder / "flow.toml"
    plan.write_text(FLOW.format(extra="", status_capture=""))
    r = subprocess.run(harness_run("--host", f"http://127.0.0.1:{port}/", "--requests",
                                   str(plan), "--conns", str(args.users), "--think", args.think,
                                   "--duration", str(args.seconds), "--warmup", "0"),
                       capture_output=True, text=True, timeout=args.seconds + 60, cwd=folder)
    if r.returncode not in (0, 1, 4):
        raise SystemExit(f"harness exited {r.returncode}: {r.stderr.strip()}")
    (s,) = json.loads(r.stdout)["steps"]
    lat = s["latency_ms"]
    return {"requests": s["received"], "failures": sum(s["errors"].values()) + s["lost"],
            "p50": lat["p50"], "p95": lat["p95"], "p99": lat["p99"],
            "rate": s["throughput_msgs_s"]}


def run_locust(port: int, folder: Path, args: argparse.Namespace) -> dict:
    lo, _, hi = args.think.partition("-")
    (folder / "locustfile.py").write_text(LOCUSTFILE.format(lo=lo, hi=hi or lo))
    cmd = ["taskset", "-c", CLIENT_CPU, sys.executable, "-m", "locust", "-f",
           str(folder / "locustfile.py"), "--headless", "-u", str(args.users), "-r",
           str(args.users), "-t", f"{max(1, round(args.seconds))}s", "-H", f"http://127.0.0.1:{port}",
           "--csv", str(folder / "locust"), "--only-summary", "--loglevel", "WARNING"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60,
                       cwd=folder)
    stats = folder / "locust_stats.csv"
    rows = list(csv.DictReader(stats.open())) if stats.exists() else []
    agg = next((row for row in rows if row["Name"] == "Aggregated"), None)
    if agg is None:
        raise SystemExit(f"locust wrote no summary (exit {r.returncode}): {r.stderr[-300:]}")
    return {"requests": int(agg["Request Count"]), "failures": int(agg["Failure Count"]),
            "p50": float(agg["50%"]), "p95": float(agg["95%"]), "p99": float(agg["99%"]),
            "rate": float(agg["Requests/s"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--think", default="0.05-0.1", help="seconds: LO-HI (uniform)")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if importlib.util.find_spec("locust") is None:
        raise SystemExit("Locust is not installed: pip install locust (this benchmark only)")
    if importlib.util.find_spec("uvicorn") is None:
        raise SystemExit("uvicorn is not installed: pip install '.[test]'")
    port = free_port()
    app = subprocess.Popen(["taskset", "-c", SERVER_CPU, sys.executable, "-m", "uvicorn",
                            "tests.flow_backend:app", "--host", "127.0.0.1", "--port",
                            str(port), "--no-access-log", "--log-level", "warning"],
                           cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        wait_listening(app, port, name="uvicorn", within_s=20.0)
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.rounds):
                got = {"harness": run_harness(port, Path(tmp), args),
                       "locust": run_locust(port, Path(tmp), args)}
                show(k + 1, got, args)
    finally:
        stop(app)


def show(k: int, got: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"round {k}: {args.users} users, think {args.think} s, {args.seconds:g} s")
    print(f"{'tool':<8} {'requests':>9} {'failures':>9} {'fail %':>7} {'req/s':>8} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for tool, g in got.items():
        pct = 100.0 * g["failures"] / max(g["requests"], 1)
        print(f"{tool:<8} {g['requests']:>9,} {g['failures']:>9,} {pct:>6.1f}% "
              f"{g['rate']:>8,.0f} {g['p50']:>8.2f} {g['p95']:>8.2f} {g['p99']:>8.2f}")


if __name__ == "__main__":
    main()
