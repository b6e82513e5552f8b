"""Screenshots of the live page (harness run --live) mid-run, with headless chromium:

    python tests/bench/live_screens.py OUT_DIR [sweep] [users] [fanout] [cluster] [reload]

- sweep: --conns 10,100,1000 against the embedded echo server;
- users: the shipped "users" plan (four HTTP user classes) against nginx;
- fanout: a chat fan-out over 3 linked built-in chat nodes, node 2 killed 4 s into the
  measure window (its listeners lose what follows);
- cluster: 3 harness agents of one Dask scheduler, --cluster;
- reload: a tab opened 20 s into a 30 s step, which shows those 20 s at once.

Each run keeps its page up (--live-linger) until the shots are taken; a shot is taken once
the page shows ``want`` (a JavaScript condition), and another when the run has ended.
Not a test (pytest does not collect it): a tool that writes PNG files.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import nginx  # noqa: E402
from tests.support import stop  # noqa: E402
from tests.test_live_browser import browser, wait_for  # noqa: E402

STEPS_DONE = "return window.harnessLive.state().steps.length >= {n} && " \
             "document.getElementById('status').textContent.startsWith('running')"
SECONDS = "return document.querySelectorAll('#seconds tr[data-step]').length >= {n}"
ENDED = "return document.getElementById('status').textContent.startsWith('run ended')"


def start(args: list[str], tmp: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--live", "--live-linger",
                             "120", "--no-report", "--results-dir", str(tmp), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    return proc, line.split("live page at ", 1)[1].strip()


def shoot(out: Path, name: str, args: list[str], want: str,
          during: Callable[[str], None] | None = None) -> None:
    """Run ``args`` with --live; ``during(url)`` in a thread meanwhile (a fault to inject)."""
    tmp = Path(tempfile.mkdtemp(prefix="live-shot-"))
    proc, url = start(args, tmp)
    if during is not None:
        threading.Thread(target=during, args=(url,), daemon=True).start()
    driver = browser()
    try:
        driver.set_window_size(1400, 2100)
        driver.get(url)
        wait_for(driver, want, timeout=300)
        time.sleep(0.5)
        driver.save_screenshot(str(out / f"{name}-midrun.png"))
        wait_for(driver, ENDED, timeout=600)
        time.sleep(0.5)
        driver.save_screenshot(str(out / f"{name}-end.png"))
    finally:
        driver.quit()
        stop(proc)
    print(f"{name}: {out / name}-midrun.png, -end.png")


@contextlib.contextmanager
def nginx_target() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="live-nginx-"))
    from tests.support import free_port
    port = free_port()
    proc = nginx.start(folder, nginx.server(port, {"~ ^/": "ok"}), (port,))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(proc)


@contextlib.contextmanager
def agents(n: int) -> Iterator[str]:
    from tests.test_cluster import Cluster
    c = Cluster(Path(tempfile.mkdtemp(prefix="live-cluster-")))
    try:
        c.scheduler()
        for i in range(n):
            c.agent(f"m{i + 1}")
        c.wait_for(n)
        yield c.address
    finally:
        c.close()


def reload_at_20s(out: Path) -> None:
    """A tab opened once the stream has published second 19 of a 30 s step: how many of
    the first 20 seconds it shows at once (history), and a screenshot."""
    from tests.test_live import read_events
    tmp = Path(tempfile.mkdtemp(prefix="live-shot-"))
    proc, url = start(["--conns", "50", "--duration", "30", "--warmup", "1"], tmp)
    try:
        read_events(url, until="second")  # the first second: the step is measuring
        t0 = time.monotonic()
        while True:
            events = [d for k, d in read_events_now(url) if k == "second"]
            if events and events[-1]["s"] >= 19:
                break
            time.sleep(0.5)
        driver = browser()
        try:
            driver.get(url)
            shown = wait_for(driver, "const n = [...document.querySelectorAll("
                                     "'#seconds tr[data-step]')].filter((tr) => "
                                     "+tr.dataset.s < 20).length; return n >= 20 && n;")
            driver.save_screenshot(str(out / "reload-20s.png"))
        finally:
            driver.quit()
        print(f"reload: opened {time.monotonic() - t0:.1f} s after the first second; "
              f"showed {shown} of the first 20 seconds at once: {out / 'reload-20s.png'}")
    finally:
        stop(proc)


def read_events_now(url: str) -> list[tuple[str, dict]]:
    """The events published so far (the stream read until it has nothing more for 0.5 s)."""
    import http.client
    import json
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=0.5)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    out, kind = [], None
    with contextlib.suppress(TimeoutError, OSError):
        while True:
            line = resp.fp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                out.append((kind, json.loads(line[6:])))
    conn.close()
    return out


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    which = set(sys.argv[2:]) or {"sweep", "users", "fanout", "cluster", "reload"}
    if "reload" in which:
        reload_at_20s(out)
    if "sweep" in which:
        shoot(out, "sweep", ["--conns", "10,100,1000", "--duration", "6", "--warmup", "1"],
              STEPS_DONE.format(n=2))
    if "users" in which:
        with nginx_target() as url:
            shoot(out, "users", ["--plan", "users", "--host", url, "--conns", "24",
                                 "--think", "0.01-0.05", "--duration", "15", "--warmup", "1"],
                  SECONDS.format(n=8))
    if "fanout" in which:
        from harness.targets import launch
        nodes = launch("chat", nodes=3)
        try:
            hosts = ",".join(f"{h}:{p}" for h, p in nodes.addresses)
            def kill_at_4s(url: str) -> None:  # node 2 dies 4 s into the measure window
                while not any(k == "second" and d["s"] >= 3 for k, d in read_events_now(url)):
                    time.sleep(0.3)
                nodes.kill_node(2)

            shoot(out, "fanout", ["--workload", "chat", "--host", hosts, "--conns", "6",
                                  "--listen", "4", "--rate", "50", "--duration", "12",
                                  "--warmup", "1", "--timeout", "0.5"], SECONDS.format(n=8),
                  kill_at_4s)
        finally:
            nodes.stop()
    if "cluster" in which:
        with agents(3) as address:
            shoot(out, "cluster", ["--cluster", address, "--conns", "30,60", "--duration",
                                   "8", "--warmup", "1"], STEPS_DONE.format(n=1))


if __name__ == "__main__":
    main()
