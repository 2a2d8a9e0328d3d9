"""The gateway's alert rules, on what it already knows; the engine and channels are
:mod:`klupa.notify` (shared with the portal's gateway-down alert).

Rules: bench offline, battery critical, safe mode, tamper, touch pads wet, forwarding backlog,
disk nearly full, clock not synchronised. What was sent survives a restart (the store's
``alerts`` table), so a restart does not repeat an alert early.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from typing import TYPE_CHECKING

from edge_gateway.store import Store, backlog
from edge_gateway.text import printable
from klupa.notify import Active, Channels, Condition, Engine, Notice, quiet

if TYPE_CHECKING:
    from edge_gateway.config import AlertsConfig
    from edge_gateway.view import GatewayView

__all__ = ["Alerts", "Channels", "Condition", "Notice", "conditions", "cut_off", "quiet"]

log = logging.getLogger("edge_gateway.alerts")

TAMPER_HOLD_S = 3600.0  # a tamper event's alert holds this long after the last one
# The portal raises "gateway down" when it has had no heartbeat for 15 minutes; while this
# gateway's heartbeats have not got through for that long, its bench alerts wait (one alert
# about the gateway, not twelve about its benches).
CUT_OFF_S = 900.0


def _duration(s: float) -> str:
    m = int(s // 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"


# --------------------------------------------------------------------------- rules


def cut_off(gw: GatewayView) -> bool:
    """True while the portal has not taken a heartbeat for CUT_OFF_S (it says gateway down)."""
    ps = gw.poll_sync
    return ps is not None and time.time() - ps.beat_ok_at > CUT_OFF_S


def conditions(gw: GatewayView, cfg: AlertsConfig, now: float) -> list[Condition]:
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
        depth, lag = backlog(gw.cfg.spool.path, [s.name for s in gw.sinks], time.time())
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


class Alerts:
    """The gateway's alerts: its rules, evaluated every ``evaluate_s`` on its own thread."""

    def __init__(
        self, gw: GatewayView, cfg: AlertsConfig, channels: Channels | None = None
    ) -> None:
        self.gw = gw
        self.cfg = cfg
        self.store = Store(gw.cfg.spool.path)
        self.store.conn.execute(
            "CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, since REAL NOT NULL, "
            "sent REAL NOT NULL, summary TEXT NOT NULL, bench TEXT NOT NULL)"
        )
        self.engine = Engine(cfg, gw.m, channels, save=self._save)
        for key, since, sent, summary, bench in self.store.conn.execute(
            "SELECT key, since, sent, summary, bench FROM alerts"
        ):
            self.engine.active[key] = Active(since, summary, bench, sent)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="alerts", daemon=True)

    @property
    def sent(self) -> list[Notice]:
        return self.engine.sent

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
        self.engine.evaluate(conditions(self.gw, self.cfg, now), now)
