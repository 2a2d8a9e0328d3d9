"""Alerts that reach people, without storms: the part the gateway and the portal share.

Whoever watches something (the gateway its benches, the portal the gateways' heartbeats)
hands :class:`Engine` the conditions that hold now, each with a stable key. A condition that
starts to hold fires once; while it holds it is repeated at most every ``repeat_h`` hours;
when it stops holding a recovery is sent (only for one that was sent). Nothing is sent in the
quiet hours: a condition still holding when they end fires then, one that came and went
inside them is never sent. Channels: e-mail over SMTP (STARTTLS and login when configured)
and a JSON webhook; a channel that fails is tried again at the next evaluation.

A leaf: it imports nothing of the project's (../shared/DESIGN.md, Layers).
"""

from __future__ import annotations

import email.policy
import json
import logging
import smtplib
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from klupa.outbound import OPENER

LOCAL_TZ = ZoneInfo("Europe/Sarajevo")
log = logging.getLogger("klupa.notify")


class ChannelConfig(Protocol):
    """What the channels and the engine read (the gateway's and the portal's [alerts])."""

    repeat_h: float
    quiet_hours: tuple[int, int] | None
    smtp_host: str
    smtp_port: int
    smtp_starttls: bool
    smtp_ca_file: str | None
    smtp_user: str
    smtp_password: str | None
    mail_from: str
    mail_to: list[str]
    webhook_url: str | None
    webhook_token: str | None


@dataclass
class Condition:
    key: str
    summary: str
    bench: str = ""
    municipality: str = ""  # the engine's own when empty


@dataclass
class Active:
    since: float
    summary: str
    bench: str
    sent: float = 0.0  # when it was last sent (0: never)
    municipality: str = ""


@dataclass
class Notice:
    state: str  # "firing", "repeat" or "resolved"
    key: str
    summary: str
    bench: str
    since: float
    at: float
    municipality: str

    def subject(self) -> str:
        word = {"firing": "ALERT", "repeat": "STILL", "resolved": "RESOLVED"}[self.state]
        return f"[klupa {self.municipality}] {word}: {self.summary}"

    def body(self) -> str:
        since = datetime.fromtimestamp(self.since, LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
        lines = [self.summary, "", f"municipality: {self.municipality}"]
        if self.bench:
            lines.append(f"bench: {self.bench}")
        lines.append(f"since: {since} (Europe/Sarajevo)")
        if self.state == "resolved":
            lines.append(f"lasted: {duration(self.at - self.since)}")
        lines += ["", "See docs/operations.md, 'Alerts', for what to do."]
        return "\n".join(lines) + "\n"

    def json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "alert": self.key,
            "summary": self.summary,
            "municipality": self.municipality,
            "bench": self.bench or None,
            "since": int(self.since),
            "ts": int(self.at),
            "text": self.subject(),
        }


def duration(s: float) -> str:
    m = int(s // 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"


def quiet(hours: tuple[int, int] | None, now: float) -> bool:
    """Within the quiet hours ``[start, end)`` of the local day (wrapping past midnight)."""
    if hours is None:
        return False
    start, end = hours
    h = datetime.fromtimestamp(now, LOCAL_TZ).hour
    return start <= h < end if start <= end else (h >= start or h < end)


def _one_line(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").replace("\r", " ")
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


class Channels:
    def __init__(self, cfg: ChannelConfig) -> None:
        self.cfg = cfg

    def send(self, notice: Notice) -> bool:
        """Every configured channel; True when all of them took it."""
        ok = True
        if self.cfg.mail_to:
            ok &= self._try("e-mail", lambda: self.mail(notice))
        if self.cfg.webhook_url:
            ok &= self._try("webhook", lambda: self.webhook(notice))
        return ok

    def _try(self, name: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:  # noqa: BLE001 - a channel's trouble is retried, never fatal
            log.warning("could not send an alert by %s: %s", name, _one_line(exc))
            return False

    def mail(self, notice: Notice) -> None:
        c = self.cfg
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = c.mail_from
        msg["To"] = ", ".join(c.mail_to)
        msg["Subject"] = notice.subject()
        msg.set_content(notice.body())
        with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=20) as smtp:
            if c.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=c.smtp_ca_file))
            if c.smtp_user:
                smtp.login(c.smtp_user, c.smtp_password or "")
            smtp.send_message(msg)

    def webhook(self, notice: Notice) -> None:
        headers = {"Content-Type": "application/json"}
        if self.cfg.webhook_token:
            headers["Authorization"] = f"Bearer {self.cfg.webhook_token}"
        body = json.dumps(notice.json(), ensure_ascii=False).encode()
        req = urllib.request.Request(
            self.cfg.webhook_url or "", data=body, method="POST", headers=headers
        )
        # A non-2xx raises HTTPError; a 3xx too: followed, it would carry the token elsewhere.
        with OPENER.open(req, timeout=15) as resp:
            resp.read()


@dataclass
class Engine:
    """Fire, repeat, resolve and hold back in quiet hours; ``save`` persists (optional)."""

    cfg: ChannelConfig
    municipality: str
    channels: Channels | None = None
    save: Callable[[str, Active | None], None] | None = None
    active: dict[str, Active] = field(default_factory=dict)
    resolved: list[Notice] = field(default_factory=list)  # waiting out the quiet hours
    sent: list[Notice] = field(default_factory=list)  # this process's

    def __post_init__(self) -> None:
        if self.channels is None:
            self.channels = Channels(self.cfg)

    def _store(self, key: str, a: Active | None) -> None:
        if self.save is not None:
            self.save(key, a)

    def _notice(self, state: str, key: str, a: Active, now: float) -> Notice:
        m = a.municipality or self.municipality
        return Notice(state, key, a.summary, a.bench, a.since, now, m)

    def _deliver(self, n: Notice) -> bool:
        assert self.channels is not None
        if not self.channels.send(n):
            return False
        self.sent.append(n)
        log.warning("alert %s: %s", n.state, n.summary)
        return True

    def evaluate(self, conditions: list[Condition], now: float) -> None:
        holding = {c.key: c for c in conditions}
        hushed = quiet(self.cfg.quiet_hours, now)
        for key in [k for k in self.active if k not in holding]:  # stopped holding
            a = self.active.pop(key)
            self._store(key, None)
            if a.sent:
                self.resolved.append(self._notice("resolved", key, a, now))
        # a resolved alert that fires again before its recovery went out: no recovery
        self.resolved = [n for n in self.resolved if n.key not in holding]
        if not hushed:
            self.resolved = [n for n in self.resolved if not self._deliver(n)]
        for key, c in holding.items():
            known = self.active.get(key)
            if known is None:
                a = self.active[key] = Active(now, c.summary, c.bench, 0.0, c.municipality)
                self._store(key, a)
            else:
                a = known
                a.summary = c.summary
            if hushed:
                continue
            if a.sent == 0:
                state = "firing"
            elif now - a.sent >= self.cfg.repeat_h * 3600:
                state = "repeat"
            else:
                continue
            if self._deliver(self._notice(state, key, a, now)):
                a.sent = now
                self._store(key, a)


# --------------------------------------------------------------------------- configuration


@dataclass
class NotifyConfig:
    """The channel keys of an ``[alerts]`` table (the portal's alerts file)."""

    repeat_h: float = 6
    quiet_hours: tuple[int, int] | None = None
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_ca_file: str | None = None
    smtp_user: str = ""
    smtp_password: str | None = field(default=None, repr=False)
    mail_from: str = ""
    mail_to: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    webhook_token: str | None = field(default=None, repr=False)


def quiet_hours(value: Any) -> tuple[int, int] | None:
    """``quiet_hours`` as a config gives it: ``[start, end]``, two different local hours
    0..23 (``[22, 7]``: 22:00 to 07:00); None when it is anything else."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in value)
        and value[0] != value[1]
    ):
        return (value[0], value[1])
    return None


def parse_config(table: dict[str, Any], env: dict[str, str] | None = None) -> NotifyConfig:
    """A NotifyConfig from an ``[alerts]`` table; ValueError with one line per problem.

    Secrets: ``smtp_password``/``webhook_token``, their ``*_file`` twins, or the environment's
    ``KLUPA_SMTP_PASSWORD``/``KLUPA_WEBHOOK_TOKEN``.
    """
    env = env or {}
    known = set(NotifyConfig.__dataclass_fields__) | {"smtp_password_file", "webhook_token_file"}
    problems = [f"alerts.{k}: unknown key" for k in table if k not in known]
    cfg = NotifyConfig()

    def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in table:
            return default
        v = table[key]
        if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
            problems.append(f"alerts.{key}: must be {getattr(kind, '__name__', 'a number')}")
            return default
        return v

    def secret(key: str, env_key: str) -> str | None:
        if f"{key}_file" in table:
            try:
                with open(str(table[f"{key}_file"]), encoding="utf-8") as f:
                    return f.read().strip()
            except OSError as exc:
                problems.append(f"alerts.{key}_file: cannot read it ({exc.strerror})")
                return None
        value = get(key, str, None)
        return value if value is not None else env.get(env_key)

    cfg.repeat_h = float(get("repeat_h", (int, float), 6))
    if "quiet_hours" in table:
        cfg.quiet_hours = quiet_hours(table["quiet_hours"])
        if cfg.quiet_hours is None:
            problems.append("alerts.quiet_hours: must be [start, end], local hours 0..23")
    cfg.smtp_host = get("smtp_host", str, "")
    cfg.smtp_port = int(get("smtp_port", int, 587))
    cfg.smtp_starttls = get("smtp_starttls", bool, True)
    cfg.smtp_ca_file = get("smtp_ca_file", str, None)
    cfg.smtp_user = get("smtp_user", str, "")
    cfg.smtp_password = secret("smtp_password", "KLUPA_SMTP_PASSWORD")
    cfg.mail_from = get("mail_from", str, "")
    mail_to = get("mail_to", list, [])
    if not all(isinstance(x, str) and "@" in x for x in mail_to):
        problems.append("alerts.mail_to: must be a list of e-mail addresses")
        mail_to = []
    cfg.mail_to = mail_to
    url = get("webhook_url", str, None)
    if url is not None and not url.startswith(("https://", "http://")):
        problems.append("alerts.webhook_url: must be an http:// or https:// URL")
    cfg.webhook_url = url
    cfg.webhook_token = secret("webhook_token", "KLUPA_WEBHOOK_TOKEN")
    if cfg.mail_to and not cfg.smtp_host:
        problems.append("alerts.smtp_host: required with mail_to")
    if cfg.mail_to and "@" not in cfg.mail_from:
        problems.append("alerts.mail_from: required with mail_to: the sender's address")
    if not cfg.mail_to and not cfg.webhook_url:
        problems.append("alerts.mail_to: give mail_to (with smtp_host) or webhook_url")
    if problems:
        raise ValueError("\n".join(problems))
    return cfg
