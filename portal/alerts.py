"""The portal's "gateway down" alert: a municipality whose gateway has not been heard for 15
minutes (no heartbeat, no bench state) is one alert, by e-mail and/or webhook, repeated and
resolved like the gateway's own (:mod:`klupa.notify`). While it holds, that gateway's bench
alerts wait on the gateway's side (its heartbeats are not getting through), so a dead Pi or a
cut line is one message, not twelve.

`klupa portal serve --alerts FILE`: FILE is TOML with an ``[alerts]`` table of the channel
keys (docs/portal-deploy.md).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import tomllib
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine as Database

from klupa.notify import LOCAL_TZ, Condition, Engine, NotifyConfig, parse_config
from portal import heartbeat
from portal.db import reading

log = logging.getLogger("portal.alerts")

EVALUATE_S = 60.0


def load_config(path: str | os.PathLike[str]) -> NotifyConfig:
    """The ``[alerts]`` table of a TOML file; ValueError naming each problem."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as TOML ({exc})") from None
    table = data.get("alerts")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: needs an [alerts] table")
    return parse_config(table, dict(os.environ))


def conditions(db: Database, now: float) -> list[Condition]:
    with reading(db) as conn:
        heard = heartbeat.last_heard(conn)
    out = []
    for m, at in sorted(heard.items()):
        if now - at > heartbeat.STALE_AFTER_S:
            since = datetime.fromtimestamp(at, LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
            summary = f"the {m} gateway has not been heard from since {since}"
            out.append(Condition(f"gateway:{m}", summary, municipality=m))
    return out


class GatewayWatch:
    def __init__(self, db: Database, cfg: NotifyConfig) -> None:
        self.db = db
        self.engine = Engine(cfg, "portal")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gateway-watch", daemon=True)

    def evaluate(self, now: float) -> None:
        self.engine.evaluate(conditions(self.db, now), now)

    def start(self) -> GatewayWatch:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.wait(EVALUATE_S):
            try:
                self.evaluate(time.time())
            except Exception as exc:  # noqa: BLE001 - the watch must not die
                log.warning("gateway-down evaluation failed: %s", exc)
