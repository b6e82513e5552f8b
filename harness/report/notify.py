"""Alerts at the end of a run: a webhook (a generic JSON POST, or Slack's ``{"text": ...}``)
and email over SMTP, sent when a threshold failed, the sweep degraded, NEW regressed against
its baseline, or the run was cut short (``[alerts] on``); with ``on = "always"`` after every
run (the event ``passed`` when none of those happened). The results folder is given as an
absolute path; a mail carries Date and Message-ID headers.

Network I/O, so it sits with the commands (the cli layer); nothing here prints or exits.
:func:`send` is called after the results are written and returns one warning line per
endpoint that failed: an alert never fails the run and never loses its results.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from harness import __version__
from harness.config.alerts import AlertSpec, EmailSpec

MAX_LINES = 20  # of each kind in a message: a long sweep's failures are cut


def reasons(doc: dict, cut_short: bool, cmp: dict | None) -> dict[str, list[str]]:
    """What went wrong, by event (only the events that happened): threshold failure lines,
    the degradation verdict, regression lines, why the run was cut short."""
    out: dict[str, list[str]] = {}
    failed = (doc.get("thresholds") or {}).get("failed") or []
    if failed:
        out["threshold"] = list(failed)
    d = doc.get("degradation") or {}
    if d.get("degraded_at") is not None:
        out["degradation"] = [f"degraded at {d['degraded_at']} (rule {d.get('rule')}); last "
                              f"healthy step: {d.get('last_healthy')}"]
    if cmp and cmp.get("regressions"):
        out["regression"] = [f"against {cmp['base']}: {r}" for r in cmp["regressions"]]
    if cut_short or doc.get("partial"):
        out["cut_short"] = ["the run was cut short: the results are partial"]
    unjudged = _unjudged(d, cmp)
    if unjudged and not out:  # as the exit codes: 1 (any event above) over 4
        out["inconclusive"] = unjudged
    return out


def _unjudged(d: dict, cmp: dict | None) -> list[str]:
    """The run (exit 4) or its comparison could judge nothing, because harness or another
    process on its cores was the bottleneck: the figures describe the client or a busy
    machine as much as the server."""
    out = []
    busy = {"client-bound", "shared core"}
    if d.get("judged") == 0 and d.get("skipped") and set(d.get("skipped_why") or ()) <= busy:
        out.append("no step could be judged (client-bound, shared core or cut short): "
                   + ", ".join(f"{load} {why}" for load, why in
                               zip(d["skipped"], d.get("skipped_why") or (), strict=False)))
    if cmp and not cmp.get("judged", True):
        out.append(f"against {cmp.get('base')}: no compared step could be judged")
    return out


def subject(doc: dict, events: list[str]) -> str:
    name = (doc.get("config") or {}).get("name") or "run"
    return f"harness: {', '.join(e.replace('_', ' ') for e in events)}: {name} against " \
           f"{doc.get('target') or 'the embedded server'}"


def text(doc: dict, why: dict[str, list[str]], folder: str | None) -> str:
    lines = []
    for event, items in why.items():
        lines.append(f"{event.replace('_', ' ')}:")
        lines += [f"  - {item}" for item in items[:MAX_LINES]]
        if len(items) > MAX_LINES:
            lines.append(f"  ... and {len(items) - MAX_LINES} more")
    lines.append(f"results: {folder or 'not written'}")
    if doc.get("argv"):
        lines.append("command: harness " + " ".join(map(str, doc["argv"])))
    return "\n".join(lines)


def payload(doc: dict, why: dict[str, list[str]], folder: str | None) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    return {"source": "harness", "version": __version__, "events": list(why),
            "reasons": why, "subject": subject(doc, list(why)), "target": doc.get("target"),
            "name": (doc.get("config") or {}).get("name"), "results": folder,
            "partial": bool(doc.get("partial")), "degradation": doc.get("degradation"),
            "steps": [{k: s.get(k) for k in ("conns", "throughput_msgs_s", "latency_ms",
                                             "lost")} for s in doc.get("steps", [])]}


def send(spec: AlertSpec | None, doc: dict, cut_short: bool, cmp: dict | None,
         folder: str | None) -> tuple[list[str], list[str]]:
    """Send the alerts the events call for: (endpoints reached, a warning per failure)."""
    if spec is None:
        return [], []
    why = to_send(spec, reasons(doc, cut_short, cmp), doc)
    if not why:
        return [], []
    events = list(why)
    folder = os.path.abspath(folder) if folder else None
    body = text(doc, why, folder)
    sent: list[str] = []
    warnings: list[str] = []
    posts = []
    if spec.webhook:
        posts.append(("webhook", spec.webhook, {"text": subject(doc, events) + "\n" + body}
                      if spec.slack else payload(doc, why, folder)))
    if spec.slack_webhook:
        posts.append(("slack", spec.slack_webhook, {"text": subject(doc, events) + "\n" + body}))
    for kind, url, data in posts:
        problem = post_json(url, data, spec.timeout_s)
        (warnings if problem else sent).append(f"{kind} {url}: {problem}" if problem else kind)
    if spec.email:
        problem = send_email(spec.email, subject(doc, events), body, spec.timeout_s)
        (warnings if problem else sent).append(
            f"email via {spec.email.host}:{spec.email.port}: {problem}" if problem else "email")
    return sent, [f"alert not sent: {w}" for w in warnings]


def to_send(spec: AlertSpec, why: dict[str, list[str]], doc: dict) -> dict[str, list[str]]:
    """The events ``spec`` sends of those that happened (``why``); with ``always`` every
    one that happened, or ``passed`` when none did."""
    if spec.always:
        return why or {"passed": [passed_line(doc)]}
    return {e: why[e] for e in why if e in spec.on}


def passed_line(doc: dict) -> str:
    steps = doc.get("steps") or []
    judged = (doc.get("degradation") or {}).get("judged")
    judged_text = f", {judged} judged" if judged is not None else ""
    return f"no threshold failed and no degradation ({len(steps)} step(s){judged_text})"


def post_json(url: str, data: dict, timeout: float) -> str | None:
    """POST ``data`` as JSON; None when the endpoint answered 2xx, else why not."""
    req = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": f"harness/{__version__}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http/https only)
            resp.read(65536)
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        return str(getattr(exc.reason, "strerror", None) or exc.reason)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"


def send_email(spec: EmailSpec, subj: str, body: str, timeout: float) -> str | None:
    """One message to every address of ``spec``; None when the server took it."""
    password = None
    if spec.password_env:
        password = os.environ.get(spec.password_env)
        if password is None:
            return f"the environment variable {spec.password_env} (the password) is not set"
    try:
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = subj, spec.sender, ", ".join(spec.to)
        msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid("harness", _domain(spec.sender))
        msg.set_content(body)
        with smtplib.SMTP(spec.host, spec.port, timeout=timeout) as smtp:
            if spec.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if spec.user and password is not None:
                smtp.login(spec.user, password)
            smtp.send_message(msg)
    except (OSError, ValueError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    return None


def _domain(sender: str) -> str:
    """The sender's domain, for the Message-ID (so no DNS lookup of this host is made)."""
    domain = sender.rpartition("@")[2].strip(" >")
    return domain or "harness.invalid"
