"""``[alerts]`` of harness.toml, checked: where to send an alert and on what.

```toml
[alerts]
on = ["threshold", "degradation", "regression", "cut_short", "inconclusive"]   # all five
# on = "failure" is the same; on = "always" sends after every run ("passed" when none of
# the five happened); `harness run --alert-on failure|always` overrides it
webhook = "https://ci.example.com/hooks/harness"   # a generic JSON POST
slack = false              # true: post Slack's {"text": ...} to webhook instead
slack_webhook = "https://hooks.slack.com/services/..."   # a Slack-compatible endpoint
timeout = 5.0              # seconds per endpoint (0.1 to 60)

[alerts.email]
host = "smtp.example.com"
port = 587                 # default 587 with starttls, else 25
starttls = true
user = "harness"           # optional: log in as this user
password_env = "HARNESS_SMTP_PASSWORD"   # the password is read from this variable
from = "harness@example.com"
to = ["ops@example.com"]
```

A ``password`` key in the file is refused: a password lives in the environment, never in a
file that is committed and copied around. Every problem raises ConfigError naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from harness.core.specs import ConfigError, http_url_problem, is_int, shown

EVENTS = ("threshold", "degradation", "regression", "cut_short", "inconclusive")
WHEN = ("failure", "always")  # on = "failure" (the five events) or "always" (every run)
KEYS = {"on", "webhook", "slack", "slack_webhook", "timeout", "email"}
EMAIL_KEYS = {"host", "port", "starttls", "user", "password_env", "from", "to"}
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class EmailSpec:
    host: str
    port: int
    starttls: bool
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password_env: str | None = None


@dataclass(frozen=True, slots=True)
class AlertSpec:
    on: tuple[str, ...] = EVENTS
    always: bool = False  # send after every run, "passed" when no event of ``on`` happened
    webhook: str | None = None
    slack: bool = False
    slack_webhook: str | None = None
    email: EmailSpec | None = None
    timeout_s: float = 5.0


def parse(table: Any, path: str) -> AlertSpec | None:
    """The ``[alerts]`` table of the file at ``path`` (None when there is none)."""
    if table is None:
        return None
    where = f"{path}: alerts"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, not {shown(table)}")
    for key in table:
        if key == "password":
            raise ConfigError(_NO_PASSWORD.format(where=f"{where}.password"))
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown key alerts.{key} "
                              f"(known: {', '.join(sorted(KEYS))})")
    on = _on(table.get("on", list(EVENTS)), where)
    slack = table.get("slack", False)
    if not isinstance(slack, bool):
        raise ConfigError(f"{where}.slack: expected true or false, got {shown(slack)}")
    timeout = table.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
            0.1 <= timeout <= 60):
        raise ConfigError(f"{where}.timeout: expected seconds from 0.1 to 60, "
                          f"got {shown(timeout)}")
    if slack and "webhook" not in table:
        raise ConfigError(f"{where}.slack: true needs a webhook to post to")
    return AlertSpec(on=on, always=table.get("on") == "always",
                     webhook=_url(table, "webhook", where), slack=slack,
                     slack_webhook=_url(table, "slack_webhook", where),
                     email=_email(table.get("email"), f"{where}.email"),
                     timeout_s=float(timeout))


def _on(on: Any, where: str) -> tuple[str, ...]:
    """``on``: a list of EVENTS, or "failure" or "always" (both: all five events)."""
    if on in WHEN:
        return EVENTS
    if not isinstance(on, list) or not all(isinstance(e, str) and e in EVENTS for e in on):
        raise ConfigError(f"{where}.on: expected \"failure\", \"always\" or a list of "
                          f"{', '.join(EVENTS)}, got {shown(on)}")
    return tuple(on)


_NO_PASSWORD = ("{where}: a password never goes in the file: put it in an environment "
                "variable and name that variable in password_env")


def _url(table: dict, key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _URL.match(value):
        raise ConfigError(f"{where}.{key}: expected an http:// or https:// URL, "
                          f"got {shown(value)}")
    if problem := http_url_problem(value, query=True):
        raise ConfigError(f"{where}.{key}: {problem}")
    return value


def _email(table: Any, where: str) -> EmailSpec | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, not {shown(table)}")
    _email_keys(table, where)
    to = table["to"]
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to or not all(
            isinstance(t, str) and "@" in t and t.isprintable() for t in to):
        raise ConfigError(f"{where}.to: expected an address or a list of addresses, got "
                          f"{shown(table['to'])}")
    starttls = table.get("starttls", True)
    if not isinstance(starttls, bool):
        raise ConfigError(f"{where}.starttls: expected true or false, got {shown(starttls)}")
    port = table.get("port", 587 if starttls else 25)
    if not is_int(port) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}.port: expected a port from 1 to 65535, got {shown(port)}")
    env = table.get("password_env")
    if env is not None and not _ENV.match(env):
        raise ConfigError(f"{where}.password_env: {env!r} is not an environment variable name")
    if env is not None and "user" not in table:
        raise ConfigError(f"{where}.password_env: a password needs a user to log in as")
    return EmailSpec(host=table["host"], port=port, starttls=starttls, sender=table["from"],
                     to=tuple(to), user=table.get("user"), password_env=env)


def _email_keys(table: dict, where: str) -> None:
    """No password, no unknown key, the required keys there, the strings strings."""
    for key in table:
        if key == "password":
            raise ConfigError(_NO_PASSWORD.format(where=f"{where}.password"))
        if key not in EMAIL_KEYS:
            raise ConfigError(f"{where}: unknown key {key} "
                              f"(known: {', '.join(sorted(EMAIL_KEYS))})")
    for key in ("host", "from", "to"):
        if key not in table:
            raise ConfigError(f"{where}.{key}: missing (email needs host, from and to)")
    for key in ("host", "from", "user", "password_env"):
        if key in table and (not isinstance(table[key], str) or not table[key]
                             or not table[key].isprintable()):
            raise ConfigError(f"{where}.{key}: expected a non-empty string without control "
                              f"characters (CR, LF, ...), got {shown(table[key])}")


def sent_when(spec: AlertSpec, when: str) -> AlertSpec:
    """``spec`` with ``--alert-on WHEN`` applied: "failure" (the five events) or "always"."""
    return replace(spec, on=EVENTS, always=when == "always")
