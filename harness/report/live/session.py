"""``harness run --live``: the feed and its server wired to a run's callbacks (progress,
each step's end, the verdict), and kept up for ``--live-linger`` seconds after the run.
Nothing here prints (the CLI shows the address and the warnings)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.core.plan import Plan
from harness.report.live.feed import Feed
from harness.report.live.server import DEFAULT, LiveServer

LINGER_STEP_S = 0.2


class Live:
    """The live page of one run: :meth:`begin` once the targets are up, the callbacks while
    it runs, :meth:`done` with the verdict, :meth:`linger`, then :meth:`close`."""

    def __init__(self, address: str | None, linger_s: float, name: str) -> None:
        self.feed = Feed()
        self.server = LiveServer(self.feed, address or DEFAULT, name)  # LiveError: exit 2
        self.linger_s = linger_s
        self.warning: str | None = None
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def begin(self, plan: Plan, workload: Any, watched: Callable[[], dict] | None) -> None:
        """The run's description, first event of the stream; ``watched``: the server
        processes' latest samples for each second's record (None: not watched)."""
        self.feed.server = watched
        self.feed.publish("meta", {
            "name": plan.name, "target": ", ".join(t.label for t in plan.targets) or
            "embedded", "delivery": workload.delivery, "workload": workload.name,
            "workers": plan.workers, "conns": [s.conns for s in plan.steps],
            "until_degraded": plan.until_degraded})

    def progress(self, inner: Callable | None) -> Callable:
        """The coordinator's progress callback: ``inner`` (the terminal line) and the feed."""
        def both(step: Any, rows: list[dict]) -> None:
            if inner is not None:
                inner(step, rows)
            self.feed.progress(step, rows)
        return both

    def on_step(self, plan: Plan, workload: Any, session: Any,
                inner: Callable | None) -> Callable:
        """Each step's end: its figures (as run.json will hold them; with --cluster each
        machine's part) to the feed, then ``inner`` (the Pushgateway's)."""
        from harness.run import sweep as sweep_mod

        def step_done(run: Any) -> None:
            try:
                f = sweep_mod.figures(plan, workload, run, session.watched(run))
                summary = dict(f.summary.to_json(), step=run.step.index)
                parts = getattr(session, "breakdown", None)  # a ClusterSession's
                if parts and parts[-1].get("step") == run.step.index:
                    summary["machines"] = parts[-1]["machines"]
                self.feed.step_done(run.step.index, summary, f.series, f.second_hists)
            except Exception as exc:  # the live page must never end the run
                self.warning = f"live page: step figures failed: {type(exc).__name__}: {exc}"
            if inner is not None:
                inner(run)
        return step_done

    def done(self, verdict: dict | None, code: int, reason: str | None) -> None:
        self.feed.verdict(verdict or {}, code, reason)
        self.feed.publish("end", {})

    def linger(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Keep serving for --live-linger seconds; Ctrl-C, or ``stop()`` turning true (a
        signal recorded by harness.core.interrupts), ends it early."""
        end = time.monotonic() + self.linger_s
        try:
            while time.monotonic() < end and not stop():
                time.sleep(min(LINGER_STEP_S, max(end - time.monotonic(), 0)))
        except KeyboardInterrupt:
            pass

    def close(self) -> None:
        self.server.stop()


def watched_servers(monitor: Any) -> Callable[[], dict] | None:
    """The latest CPU % and RSS (MB) of each watched server process (not the workers), from
    a :class:`harness.run.monitor.Monitor`; None without one."""
    if monitor is None:
        return None

    def latest() -> dict:
        out: dict[str, dict] = {}
        since = time.monotonic_ns() - 3 * 10**9
        for r in monitor.samples(since_ns=since):
            if not r["role"].startswith("worker"):
                rss = r["rss_bytes"]
                out[r["role"]] = {"cpu": _round(r["cpu_pct"]),
                                  "rss_mb": None if rss is None else round(rss / 1e6, 1)}
        return out
    return latest


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
