"""The live page in a real browser (headless chromium through selenium) during a real run
against a known server (a fixed delay, a rate cap, a node that drops replies): its charts
have points, its per-second table equals run.json's per-second series and histograms, the
server's mark is in it (the delay in every p50, no second above the cap, the drops as
errors), and it makes no request outside its origin."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from harness.core.histogram import Histogram
from harness.report.live.feed import percentiles_ms
from tests import servers
from tests.support import stop
from tests.test_live import finish, run_json, start_live_run

DELAY_S = 0.004  # the server answers every frame this long after reading it
CAP = 2000  # token_bucket: replies per second, all connections together (burst CAP / 50)
DROP_EVERY = 40  # drop: every 40th frame of a connection gets no reply
SERVERS = {"delay": {"delay": DELAY_S}, "token_bucket": {"rate": CAP},
           "drop": {"every": DROP_EVERY}}
PAGE_TIMEOUT_S = 60


def browser() -> Any:
    """A headless chromium driven by chromedriver, with its network log kept."""
    webdriver = pytest.importorskip("selenium.webdriver")
    driver_path = shutil.which("chromedriver")
    if driver_path is None or shutil.which("chromium") is None:
        pytest.skip("chromium and chromium-driver not installed (tests/setup.sh)")
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1400,2000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def requested_urls(driver: Any) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def wait_for(driver: Any, script: str, timeout: float = PAGE_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"the page never satisfied: {script}")


@pytest.mark.e2e
@pytest.mark.parametrize("server", list(SERVERS))
def test_the_live_page_renders_the_run_and_agrees_with_run_json(tmp_path: Path,
                                                                 server: str) -> None:
    with servers.start(server, framing="len32", **SERVERS[server]) as srv:
        proc, url = start_live_run(tmp_path, "--host", f"127.0.0.1:{srv.port}",
                                   "--conns", "2,4", "--duration", "2", "--warmup", "0.5",
                                   "--timeout", "0.3", "--live-linger", "60", "--no-report")
        driver = browser()
        try:
            driver.get(url)
            wait_for(driver, "return document.querySelectorAll('#seconds tr').length > 1")
            mid_run = driver.execute_script("return document.getElementById('status')"
                                            ".textContent")
            wait_for(driver, "return document.getElementById('status').textContent"
                             ".startsWith('run ended')")
            time.sleep(0.3)  # one render after the last event
            rows = driver.execute_script("""
                return [...document.querySelectorAll('#seconds tr[data-step]')].map(
                  (tr) => [...tr.children].map((td) => td.textContent));""")
            points = driver.execute_script("""
                const out = {};
                for (const svg of document.querySelectorAll('svg[data-chart]'))
                  out[svg.dataset.chart] = [...svg.querySelectorAll('polyline')].map(
                    (p) => +p.dataset.points);
                return out;""")
            verdict = driver.find_element("id", "verdict").text
            urls = requested_urls(driver)
        finally:
            driver.quit()
            stop(proc)  # ends the linger
        code, _, err = finish(proc) if proc.returncode is None else (proc.returncode, {}, "")
    assert mid_run.startswith("running")
    origin = url.rstrip("/")
    assert urls and all(u.startswith(origin) for u in urls), urls
    assert points["throughput"] and min(points["throughput"]) > 0
    assert points["latency"] and min(points["latency"]) > 0
    assert verdict.startswith("verdict: exit")
    doc = run_json(tmp_path)
    expect = []
    for k, step in enumerate(doc["steps"]):
        hists = [Histogram.from_dict(h) for h in step["second_histograms"]]
        series = (tmp_path / "results").glob(f"*/series-step{k}.csv")
        lines = next(series).read_text().splitlines()[1:]
        cum = Histogram()
        for line, h in zip(lines, hists, strict=True):
            sec, sent, received, errors = line.split(",")[:4]
            cum.merge(h)
            cells = [str(k), sec, sent, received, errors]
            cells += ["" if v is None else _js(v) for v in [*percentiles_ms(h),
                                                           percentiles_ms(cum)[2]]]
            expect.append(cells)
    shown = sorted((r[:11] for r in rows), key=lambda r: (int(r[0]), int(r[1])))
    assert shown == expect
    _the_servers_mark(server, shown)


def _the_servers_mark(server: str, shown: list[list[str]]) -> None:
    """What the known server must leave in the page's per-second table."""
    received = [int(r[3]) for r in shown]
    errors = sum(int(r[4]) for r in shown)
    if server == "delay":
        p50s = [float(r[5]) for r in shown if r[5]]
        assert min(p50s) >= DELAY_S * 1000 * 0.99, "the fixed delay is in every second"
    elif server == "token_bucket":
        assert max(received) <= CAP * 1.05 + CAP / 50, received  # never above the cap
        assert max(received) >= CAP * 0.5, received  # and the run reached it
    else:  # every DROP_EVERY-th frame unanswered: a reply timeout each, in its second
        assert errors > 0, shown


def _js(v: float) -> str:
    """A number as JavaScript's String() writes it (integers without '.0')."""
    return str(int(v)) if float(v).is_integer() else repr(v)
