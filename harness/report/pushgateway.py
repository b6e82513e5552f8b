"""Pushing a run's figures to a Prometheus Pushgateway while it runs: after each step (the
steps so far) and once at the end (the whole run), each a PUT of the Prometheus text of
:mod:`harness.report.openmetrics` that replaces the group ``job=harness, name=<run name>``.

A push that fails (refused, unresolvable, a timeout of TIMEOUT_S, an HTTP error) is kept as
one warning and stops the pushes of this run; it never fails the run nor loses its results.
No printing: :mod:`harness.cli` shows :attr:`Pusher.warning`.
"""

from __future__ import annotations

import base64
import http.client
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from harness.core.plan import Plan
from harness.core.specs import http_url_problem
from harness.report import openmetrics
from harness.report.document import with_histograms
from harness.run import sweep as sweep_mod

TIMEOUT_S = 2.0
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+")


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a Pushgateway address (None when it can): see
    :func:`harness.core.specs.http_url_problem` (no ?query or #fragment: the group is a path)."""
    return http_url_problem(url)


def group_url(url: str, name: str) -> str:
    """The group to PUT to: ``url`` as given when it names one (``/metrics/job/...``),
    else ``url/metrics/job/harness/name/<name>`` (base64 when ``name`` is not plain)."""
    if "/metrics/job/" in url:
        return url
    if _PLAIN.fullmatch(name):
        tail = f"name/{name}"
    else:
        tail = "name@base64/" + base64.urlsafe_b64encode(name.encode()).decode()
    return f"{url.rstrip('/')}/metrics/job/harness/{tail}"


def push(url: str, text: str) -> str | None:
    """PUT ``text`` to ``url``; None when accepted, else one line saying why not."""
    req = urllib.request.Request(url, data=text.encode(), method="PUT",
                                 headers={"Content-Type": openmetrics.CONTENT_TYPE})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        return f"pushgateway {url}: HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"pushgateway {url}: {reason}"
    return None


class Pusher:
    """Pushes after each step and at the end, until one push fails (then only ``warning``)."""

    def __init__(self, url: str, plan: Plan, workload: Any,
                 watched: Callable[[Any], Any] | None = None) -> None:
        self.url = group_url(url, plan.name)
        self.watched = watched
        self.plan = plan
        self.workload = workload
        self.steps: list[dict] = []
        self.hists: list[dict] = []
        self.warning: str | None = None
        self.pushes = 0

    def step_done(self, run: Any) -> None:
        """Figures of a finished step (a StepRun) added to those pushed so far, and pushed."""
        if self.warning:
            return
        try:
            watched = self.watched(run) if self.watched else None
            f = sweep_mod.figures(self.plan, self.workload, run, watched)
        except Exception as exc:  # a push must never end the run
            self.warning = f"pushgateway: step figures failed: {type(exc).__name__}: {exc}"
            return
        self.steps.append(f.summary.to_json())
        self.hists.append(f.histograms)
        doc = with_histograms({"steps": self.steps, "workload": self.workload.name},
                              self.hists, [[] for _ in self.steps])
        self._push(doc)

    def run_done(self, doc: dict) -> None:
        """The whole run (run.json with histograms) pushed, replacing the steps so far."""
        if not self.warning:
            self._push(doc)

    def _push(self, doc: dict) -> None:
        try:
            text = openmetrics.run_text(doc, self.plan.name)
        except Exception as exc:  # a push must never end the run
            self.warning = f"pushgateway: {type(exc).__name__}: {exc}"
            return
        self.warning = push(self.url, text)
        self.pushes += self.warning is None
