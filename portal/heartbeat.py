"""Gateway heartbeats: when the portal last heard each municipality's gateway.

A gateway reports `PUT /api/v1/gateways/{municipality}` every 60 s (its version, its clock and
its forwarding lag). A bench state is only as fresh as the gateway that reports it: while a
municipality's gateway has not been heard for STALE_AFTER_S, its benches show as *unknown*, not
online, so a bench whose Raspberry Pi died does not look online for ever. Any write of the
gateway's (a bench state) counts as hearing it too, so a gateway that predates heartbeats is
judged by what it sends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from portal.checks import Heartbeat
from portal.db import benches, gateways, insert_into, reading, writing

STALE_AFTER_S = 15 * 60


@dataclass(frozen=True)
class GatewayReport:
    municipality: str
    version: str
    ts: int  # the gateway's own clock when it reported
    lag_s: float  # age of the oldest row it has not forwarded yet
    heard_at: int  # the portal's clock when it heard the report

    def stale(self, now: int) -> bool:
        return now - self.heard_at > STALE_AFTER_S


def record(engine: Engine, municipality: str, beat: Heartbeat, now: int | None = None) -> None:
    values = {
        "municipality": municipality,
        "version": beat.version,
        "ts": beat.ts,
        "lag_s": beat.lag_s,
        "heard_at": int(time.time()) if now is None else now,
    }
    with writing(engine) as conn:
        stmt = insert_into(conn, gateways).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["municipality"],
            set_={k: stmt.excluded[k] for k in values if k != "municipality"},
        )
        conn.execute(stmt)


def reports(engine: Engine) -> list[GatewayReport]:
    with reading(engine) as conn:
        rows = conn.execute(select(gateways).order_by(gateways.c.municipality)).all()
    return [GatewayReport(r.municipality, r.version, r.ts, r.lag_s, r.heard_at) for r in rows]


def last_heard(conn: Connection) -> dict[str, int]:
    """Per municipality, when the portal last heard its gateway (heartbeat or bench state)."""
    heard: dict[str, int] = {}
    for m, at in conn.execute(select(gateways.c.municipality, gateways.c.heard_at)):
        heard[m] = int(at)
    query = select(benches.c.municipality, func.max(benches.c.updated_at)).group_by(
        benches.c.municipality
    )
    for m, at in conn.execute(query):
        if at is not None:
            heard[m] = max(heard.get(m, 0), int(at))
    return heard
