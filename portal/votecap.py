"""Plausibility: a bench adds at most its `vote_cap` votes per hour to each poll.

The bench enforces the cap itself (firmware/bench/voting.py, settable 1..1000 by `set
vote_cap`, 60 by default); the portal holds every bench to it again, so a gateway, a tampered
bench or a replayed spool cannot stuff a poll. Hours are clock hours of the votes' own `ts`
(UTC); a bench within its cap over any sliding hour is within it over every clock hour. The
cap is the bench registry's `vote_cap`, else registry.DEFAULT_VOTE_CAP.

Votes over the cap are refused with a reason and kept in `capped_votes` by their identity, so
the poll's page counts them once however often they are sent. The anomaly flag (portal.anomaly)
is a separate, softer signal: a day far above the bench's usual, shown but counted.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from portal.db import capped_votes, insert_into, reading, votes

HOUR = 3600
CHUNK = 500


def known_ids(conn: Connection, municipalities: Iterable[str], ids: Iterable[str]) -> set[str]:
    """Of `ids`, those one of `municipalities` already has a vote for.

    An id is bench/boot/seq, and only the municipality a bench is registered to writes its
    votes, so one id under two municipalities is one vote of a bench that has moved: the
    caller names the municipality writing and those of the votes' polls (a vote stored under
    another municipality counted for its poll only if the poll runs there).
    """
    places = sorted(set(municipalities))
    wanted = sorted(set(ids))
    found: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        query = select(votes.c.id).where(
            votes.c.municipality.in_(places), votes.c.id.in_(wanted[start : start + CHUNK])
        )
        found.update(r.id for r in conn.execute(query))
    return found


def split_over_cap(
    conn: Connection,
    municipalities: Iterable[str],
    rows: list[dict[str, Any]],
    caps: dict[str, int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """New vote rows split into (within their bench's hourly cap, over it), earliest first.
    The votes counted so far are looked up under `municipalities`, as by known_ids: a moved
    bench's votes its former municipality counted are the same bench's."""
    if not rows:
        return [], []
    keys = {(r["bench"], r["poll_id"], r["ts"] // HOUR) for r in rows}
    hour = votes.c.ts // HOUR
    query = (
        select(votes.c.bench, votes.c.poll_id, hour, func.count())
        .where(
            votes.c.municipality.in_(sorted(set(municipalities))),
            votes.c.bench.in_(sorted({k[0] for k in keys})),
            votes.c.poll_id.in_(sorted({k[1] for k in keys})),
            votes.c.ts >= min(k[2] for k in keys) * HOUR,
            votes.c.ts < (max(k[2] for k in keys) + 1) * HOUR,
        )
        .group_by(votes.c.bench, votes.c.poll_id, hour)
    )
    counts = {(b, p, int(h)): int(n) for b, p, h, n in conn.execute(query)}
    kept: list[dict[str, Any]] = []
    over: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r["ts"], r["id"])):
        key = (row["bench"], row["poll_id"], row["ts"] // HOUR)
        if counts.get(key, 0) >= caps[row["bench"]]:
            over.append(row)
        else:
            counts[key] = counts.get(key, 0) + 1
            kept.append(row)
    return kept, over


def reason(row: dict[str, Any], cap: int) -> str:
    return (
        f"over_vote_cap: {row['bench']} already added its {cap} votes per hour to poll "
        f"{row['poll_id']!r} in the hour from {_hour_named(row['ts'] // HOUR * HOUR)}"
    )


def _hour_named(start: int) -> str:
    """The hour starting at Unix `start`, in UTC; past the calendar's last year (a vote time
    may be as late as 2^53 s when its poll closes that late) as its Unix seconds."""
    try:
        when = datetime.datetime.fromtimestamp(start, datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return f"{start} (Unix s)"
    return f"{when:%Y-%m-%d %H:00} UTC"


def keep_capped(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Remember votes refused over the cap (a re-sent one is counted once)."""
    if not rows:
        return
    stmt = insert_into(conn, capped_votes).on_conflict_do_nothing(
        index_elements=["municipality", "id"]
    )
    conn.execute(
        stmt,
        [
            {k: r[k] for k in ("municipality", "id", "poll_id", "bench", "ts", "received_at")}
            for r in rows
        ],
    )


def capped_counts(engine: Engine, poll_id: str) -> dict[str, int]:
    """Per bench, the votes for `poll_id` refused over the hourly cap."""
    query = (
        select(capped_votes.c.bench, func.count())
        .where(capped_votes.c.poll_id == poll_id)
        .group_by(capped_votes.c.bench)
    )
    with reading(engine) as conn:
        return {b: int(n) for b, n in conn.execute(query)}
