"""Alerts that reach people, without storms: rules on what the gateway already knows.

Each rule yields the conditions that hold now, each with a stable key (``offline:mostar-01``).
A condition that starts to hold fires once; while it holds it is repeated at most every
``repeat_h`` hours; when it stops holding a recovery is sent (only for one that was sent).
Nothing is sent during the municipality's quiet hours: a condition still holding when they end
fires then, one that came and went inside them is never sent. What was sent survives a restart
(the store's ``alerts`` table), so a restart does not repeat an alert early.

Channels: e-mail over SMTP (STARTTLS and login when configured) and a JSON webhook (a Telegram
or Matrix bridge takes it). A channel that fails is tried again at the next evaluation.
"""

from __future__ import annotations

import json
import logging
import shutil
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from edge_gateway.store import LOCAL_TZ, Store
from edge_gateway.text import printable

if TYPE_CHECKING:
    from edge_gateway.config import AlertsConfig
    from edge_gateway.service import Gateway

log = logging.getLogger("edge_gateway.alerts")

TAMPER_HOLD_S = 3600.0  # a tamper event's alert holds this long after the last one
# The portal raises "gateway down" when it has had no heartbeat for 15 minutes; while this
# gateway's heartbeats have not got through for that long, its bench alerts wait (one alert
# about the gateway, not twelve about its benches).
CUT_OFF_S = 900.0


@dataclass
class Condition:
    key: str
    summary: str
    bench: str = ""


@dataclass
class Active:
    since: float
    summary: str
    bench: str
    sent: float = 0.0  # when it was last sent (0: never)


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
            lines.append(f"lasted: {_duration(self.at - self.since)}")
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


def _duration(s: float) -> str:
    m = int(s // 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"


def quiet(hours: tuple[int, int] | None, now: float) -> bool:
    """Within the quiet hours ``[start, end)`` of the local day (wrapping past midnight)."""
    if hours is None:
        return False
    start, end = hours
    h = datetime.fromtimestamp(now, LOCAL_TZ).hour
    return start <= h < end if start <= end else (h >= start or h < end)


# --------------------------------------------------------------------------- channels


class Channels:
    def __init__(self, cfg: AlertsConfig) -> None:
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
            log.warning("could not send an alert by %s: %s", name, printable(exc))
            return False

    def mail(self, notice: Notice) -> None:
        c = self.cfg
        msg = EmailMessage()
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
        from edge_gateway.sinks.base import http

        headers = {"Content-Type": "application/json"}
        if self.cfg.webhook_token:
            headers["Authorization"] = f"Bearer {self.cfg.webhook_token}"
        body = json.dumps(notice.json(), ensure_ascii=False).encode()
        http("POST", self.cfg.webhook_url or "", body, headers, timeout=15)


# --------------------------------------------------------------------------- rules


def cut_off(gw: Gateway) -> bool:
    """True while the portal has not taken a heartbeat for CUT_OFF_S (it says gateway down)."""
    ps = gw.poll_sync
    return ps is not None and time.time() - ps.beat_ok_at > CUT_OFF_S


def conditions(gw: Gateway, cfg: AlertsConfig, now: float) -> list[Condition]:
    """What holds now, from what the gateway knows."""
    out: list[Condition] = []
    benches = [] if cut_off(gw) else list(gw.health.benches.values())
    for b in benches:
        if b.last_seen is not None and not b.online and not b.sleeping:
            out.append(Condition(f"offline:{b.bench}", f"{b.bench} is offline", b.bench))
        if b.power == "critical":
            soc = f" (SoC {b.soc:.0f} %)" if b.soc is not None else ""
            out.append(
                Condition(f"battery:{b.bench}", f"{b.bench}: battery critical{soc}", b.bench)
            )
        if b.safe:
            out.append(Condition(f"safe:{b.bench}", f"{b.bench} is in safe mode", b.bench))
        if b.tamper_at is not None and now - b.tamper_at < TAMPER_HOLD_S:
            out.append(
                Condition(
                    f"tamper:{b.bench}",
                    f"{b.bench}: tamper ({printable(b.tamper_kind, 40)})",
                    b.bench,
                )
            )
        if b.wet_since is not None and now - b.wet_since >= cfg.wet_after_s:
            out.append(
                Condition(
                    f"wet:{b.bench}",
                    f"{b.bench}: touch pads wet for {_duration(now - b.wet_since)}",
                    b.bench,
                )
            )
    try:
        st = Store(gw.cfg.spool.path, readonly=True)
        try:
            depth, lag = st.depth_and_lag([s.name for s in gw.sinks], time.time())
        finally:
            st.close()
    except Exception:  # noqa: BLE001 - the store's own trouble is the disk rule's
        depth, lag = 0, 0.0
    if lag > cfg.lag_s or depth > cfg.backlog_rows:
        out.append(
            Condition(
                "backlog", f"forwarding behind: {depth} rows wait, the oldest {lag / 60:.0f} min"
            )
        )
    try:
        free = shutil.disk_usage(gw.cfg.spool.path.rsplit("/", 1)[0] or "/").free
    except OSError:
        free = -1
    if gw.store_state != "ok" or 0 <= free < cfg.disk_free_mb * 1024 * 1024:
        what = "full" if gw.store_state == "disk_full" else f"{free / 1048576:.0f} MB free"
        out.append(Condition("disk", f"the gateway's disk is nearly full ({what})"))
    if not gw.clock_ok.is_set():
        out.append(Condition("clock", "the gateway's clock is not synchronised: taking nothing"))
    return out


# --------------------------------------------------------------------------- engine


@dataclass
class Alerts:
    gw: Gateway
    cfg: AlertsConfig
    channels: Channels | None = None
    active: dict[str, Active] = field(default_factory=dict)
    resolved: list[Notice] = field(default_factory=list)  # waiting out the quiet hours
    sent: list[Notice] = field(default_factory=list)  # this process's, for `status` and tests

    def __post_init__(self) -> None:
        if self.channels is None:
            self.channels = Channels(self.cfg)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self.store = Store(self.gw.cfg.spool.path)
        self.store.conn.execute(
            "CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, since REAL NOT NULL, "
            "sent REAL NOT NULL, summary TEXT NOT NULL, bench TEXT NOT NULL)"
        )
        for key, since, sent, summary, bench in self.store.conn.execute(
            "SELECT key, since, sent, summary, bench FROM alerts"
        ):
            self.active[key] = Active(since, summary, bench, sent)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.wait(self.cfg.evaluate_s):
            try:
                self.evaluate(time.time())
            except Exception as exc:  # noqa: BLE001 - alerts must not die
                log.warning("alert evaluation failed: %s", printable(exc))

    def _notice(self, state: str, key: str, a: Active, now: float) -> Notice:
        return Notice(state, key, a.summary, a.bench, a.since, now, self.gw.m)

    def _deliver(self, n: Notice) -> bool:
        assert self.channels is not None
        if not self.channels.send(n):
            return False
        self.sent.append(n)
        log.warning("alert %s: %s", n.state, n.summary)
        return True

    def _save(self, key: str, a: Active | None) -> None:
        with self.store.transaction():
            if a is None:
                self.store.conn.execute("DELETE FROM alerts WHERE key = ?", (key,))
            else:
                self.store.conn.execute(
                    "INSERT OR REPLACE INTO alerts (key, since, sent, summary, bench) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, a.since, a.sent, a.summary, a.bench),
                )

    def evaluate(self, now: float) -> None:
        holding = {c.key: c for c in conditions(self.gw, self.cfg, now)}
        hushed = quiet(self.cfg.quiet_hours, now)
        # stopped holding
        for key in [k for k in self.active if k not in holding]:
            a = self.active.pop(key)
            self._save(key, None)
            if a.sent:
                self.resolved.append(self._notice("resolved", key, a, now))
        # a resolved alert that fires again before its recovery went out: no recovery
        self.resolved = [n for n in self.resolved if n.key not in holding]
        if not hushed:
            self.resolved = [n for n in self.resolved if not self._deliver(n)]
        for key, c in holding.items():
            known = self.active.get(key)
            if known is None:
                a = self.active[key] = Active(now, c.summary, c.bench)
                self._save(key, a)
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
                self._save(key, a)
