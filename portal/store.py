"""What the portal does with its data: polls, vote ingest, bench days and status, results.

Plain functions over an engine; the HTTP layer (portal.api), the pages (portal.pages) and the
command line (portal.cli) are thin layers over them.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, case, func, select

from klupa import contract
from portal import anomaly, heartbeat, names, registry, votecap
from portal.checks import BenchDay, BenchStatus, PollSpec, VoteItem
from portal.db import (
    bench_days,
    benches,
    insert_into,
    poll_places,
    polls,
    reading,
    votes,
    writing,
)

LOCAL = ZoneInfo(names.LOCAL_TZ)
UPCOMING_S = 7 * 86400  # GET /polls lists polls opening within this
RECENT_S = 30 * 86400  # the front page keeps closed polls this long
CHUNK = 500  # rows per INSERT statement (SQLite's bound-parameter limit)
NOT_YOUR_BENCH = "not_your_bench"  # the reason for an item of a bench not the token's


class PollExists(ValueError):
    pass


class UnknownPoll(LookupError):
    pass


@dataclass(frozen=True)
class Poll(PollSpec):
    """A stored poll: the checked PollSpec it was created from, as the portal keeps it."""

    def hidden(self, now: int) -> bool:
        return self.results == "after_close" and now < self.closes

    def option_ids(self) -> list[str]:
        return [o["id"] for o in self.options]


def _polls(conn: Connection, where: Any = None) -> list[Poll]:
    query = select(polls).order_by(polls.c.opens.desc(), polls.c.id)
    if where is not None:
        query = query.where(where)
    found = {
        r.id: Poll(
            r.id,
            r.opens,
            r.closes,
            json.loads(r.question),
            json.loads(r.options),
            municipalities=[],  # filled in from poll_places below
            results=r.results,
        )
        for r in conn.execute(query)
    }
    if found:
        places = select(poll_places).where(poll_places.c.poll_id.in_(list(found)))
        for r in conn.execute(places.order_by(poll_places.c.municipality)):
            found[r.poll_id].municipalities.append(r.municipality)
    return list(found.values())


def create_poll(engine: Engine, spec: PollSpec, now: int | None = None) -> Poll:
    with writing(engine) as conn:
        # One statement that inserts unless the id is taken, so two requests for one new id at
        # once (PostgreSQL) are a 201 and a 409, never a duplicate key.
        stmt = (
            insert_into(conn, polls)
            .values(
                id=spec.id,
                opens=spec.opens,
                closes=spec.closes,
                question=json.dumps(spec.question, ensure_ascii=False),
                options=json.dumps(spec.options, ensure_ascii=False),
                results=spec.results,
                created_at=int(time.time()) if now is None else now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(polls.c.id)
        )
        if conn.execute(stmt).first() is None:
            raise PollExists(f"poll {spec.id!r} already exists")
        conn.execute(
            poll_places.insert(),
            [{"poll_id": spec.id, "municipality": m} for m in spec.municipalities],
        )
    return Poll(
        spec.id,
        spec.opens,
        spec.closes,
        spec.question,
        spec.options,
        municipalities=list(spec.municipalities),
        results=spec.results,
    )


def get_poll(engine: Engine, poll_id: str) -> Poll:
    with reading(engine) as conn:
        found = _polls(conn, polls.c.id == poll_id)
    if not found:
        raise UnknownPoll(f"poll {poll_id!r} not found")
    return found[0]


def polls_for(engine: Engine, municipality: str, now: int) -> list[Poll]:
    """Polls running in `municipality` that are open at `now` or open within 7 days."""
    ids = select(poll_places.c.poll_id).where(poll_places.c.municipality == municipality)
    with reading(engine) as conn:
        found = _polls(
            conn,
            polls.c.id.in_(ids) & (polls.c.closes > now) & (polls.c.opens <= now + UPCOMING_S),
        )
    return sorted(found, key=lambda p: (p.opens, p.id))


def all_polls(engine: Engine) -> list[Poll]:
    with reading(engine) as conn:
        return _polls(conn)


def front_page_polls(engine: Engine, now: int) -> list[Poll]:
    """Polls open now, opening within 7 days, or closed within the last 30 days."""
    with reading(engine) as conn:
        return _polls(conn, (polls.c.closes > now - RECENT_S) & (polls.c.opens <= now + UPCOMING_S))


# --------------------------------------------------------------------------- votes


def _insert_ignoring_known(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert the votes whose (municipality, id) is new; return how many went in.

    One statement executed for many rows: SQLAlchemy batches it into multi-row INSERTs from one
    compiled form, and RETURNING names only the rows that went in (a vote another request
    stored a moment ago is skipped, not an error).
    """
    stmt = (
        insert_into(conn, votes)
        .on_conflict_do_nothing(index_elements=["municipality", "id"])
        .returning(votes.c.id)
    )
    return len(conn.execute(stmt, rows).all())


def ingest_votes(
    engine: Engine, municipality: str, items: list[VoteItem], now: int | None = None
) -> dict[str, Any]:
    """Apply a batch of `municipality`'s votes in one transaction: new ones are stored, known
    ids are duplicates, and votes that cannot count are rejected with their reason (the rest
    still apply). A vote for a bench not registered to `municipality` is `not_your_bench`; a
    new vote over its bench's hourly cap is refused too (portal.votecap)."""
    received = int(time.time()) if now is None else now
    rejected: list[dict[str, str]] = []
    fresh: list[dict[str, Any]] = []
    seen: set[str] = set()
    repeats = 0
    with writing(engine) as conn:
        own = registry.own_benches(conn, municipality, {v.bench for v in items}, lock=True)
        wanted = {v.poll for v in items if contract.POLL_ID_RE.fullmatch(v.poll)}
        known = {p.id: p for p in _polls(conn, polls.c.id.in_(wanted))} if wanted else {}
        for vote in items:
            if vote.id in seen:
                repeats += 1
                continue
            if not vote.id.startswith(vote.bench + "/"):
                reason = f"id {vote.id!r} is not one of bench {vote.bench}'s (bench/boot/seq)"
            elif vote.bench not in own or vote.municipality != municipality:
                reason = NOT_YOUR_BENCH
            else:
                reason = _why_not_counted(vote, known.get(vote.poll))
            if reason:
                rejected.append({"id": vote.id, "reason": reason})
                continue
            seen.add(vote.id)
            fresh.append(
                {
                    "id": vote.id,
                    "poll_id": vote.poll,
                    "municipality": municipality,
                    "bench": vote.bench,
                    "choice": vote.choice,
                    "ts": vote.ts,
                    "received_at": received,
                }
            )
        # A vote the bench's former municipality counted is a duplicate too, and counts
        # against its hourly cap (a moved bench).
        places = {municipality}.union(*(known[r["poll_id"]].municipalities for r in fresh))
        known_ids = votecap.known_ids(conn, places, [r["id"] for r in fresh])
        new = [r for r in fresh if r["id"] not in known_ids]
        kept, over = votecap.split_over_cap(conn, places, new, own)
        accepted = _insert_ignoring_known(conn, kept) if kept else 0
        votecap.keep_capped(conn, over)
        rejected += [{"id": r["id"], "reason": votecap.reason(r, own[r["bench"]])} for r in over]
    return {
        "accepted": accepted,
        "duplicates": repeats + len(known_ids) + len(kept) - accepted,
        "rejected": rejected,
    }


def _why_not_counted(vote: VoteItem, poll: Poll | None) -> str:
    if poll is None:
        return f"unknown poll {vote.poll!r}"
    if vote.municipality not in poll.municipalities:
        return f"poll {poll.id!r} does not run in {vote.municipality}"
    if not poll.opens <= vote.ts < poll.closes:
        return (
            f"ts {vote.ts} is outside the poll's window: poll {poll.id!r} is open "
            f"for opens {poll.opens} <= ts < closes {poll.closes}"
        )
    if vote.choice not in poll.option_ids():
        return (
            f"unknown choice {vote.choice!r}: poll {poll.id!r} has {', '.join(poll.option_ids())}"
        )
    return ""


def results(engine: Engine, poll_id: str, poll: Poll | None = None) -> dict[str, Any]:
    """Totals per choice and per bench (every option listed, zero included)."""
    poll = poll or get_poll(engine, poll_id)
    choices = dict.fromkeys(poll.option_ids(), 0)
    per_bench: dict[str, dict[str, int]] = {}
    query = (
        select(votes.c.bench, votes.c.choice, func.count())
        .where(votes.c.poll_id == poll_id)
        .group_by(votes.c.bench, votes.c.choice)
    )
    with reading(engine) as conn:
        for bench, choice, count in conn.execute(query):
            choices[choice] = choices.get(choice, 0) + count
            per_bench.setdefault(bench, dict.fromkeys(poll.option_ids(), 0))[choice] = count
    return {
        "poll": poll.id,
        "total": sum(choices.values()),
        "choices": choices,
        "benches": dict(sorted(per_bench.items())),
    }


def _local_day(ts: Any, start: int, end: int) -> Any:
    """SQL for the local day number (days since 1970-01-01 in Europe/Sarajevo) of ``ts`` in
    [start, end]: each stretch of the span with the UTC offset in force in it, so a vote before a
    change of clock falls on its own day, not an hour off (offsets change on the hour)."""
    at = start - start % 3600
    offsets: list[tuple[int, int]] = []  # (from, offset s), in order
    while at <= end + 3600:
        off = datetime.datetime.fromtimestamp(at, LOCAL).utcoffset()
        off_s = int(off.total_seconds()) if off else 0
        if not offsets or offsets[-1][1] != off_s:
            offsets.append((at, off_s))
        at += 3600
    day = (ts + offsets[-1][1]) // 86400
    if len(offsets) == 1:
        return day
    whens = [(ts < nxt, (ts + off) // 86400) for (_, off), (nxt, _) in pairwise(offsets)]
    return case(*whens, else_=day)


def daily_votes(
    engine: Engine, bench_ids: list[str], now: int, days: int
) -> tuple[dict[str, dict[int, int]], int]:
    """Each bench's votes per local day over the last ``days`` days, and today's day number."""
    start = now - days * 86400
    day = _local_day(votes.c.ts, start, now)
    query = (
        select(votes.c.bench, day, func.count())
        .where(votes.c.bench.in_(bench_ids), votes.c.ts >= start)
        .group_by(votes.c.bench, day)
    )
    daily: dict[str, dict[int, int]] = {}
    with reading(engine) as conn:
        for bench, day_no, count in conn.execute(query):
            daily.setdefault(bench, {})[int(day_no)] = count
    today = datetime.datetime.fromtimestamp(now, LOCAL).date()
    return daily, (today - datetime.date(1970, 1, 1)).days


def vote_spikes(engine: Engine, bench_ids: Iterable[str], now: int, days: int = 15) -> set[str]:
    """Benches (of `bench_ids`) whose votes today are far above their own usual day."""
    ids = list(bench_ids)
    if not ids:
        return set()
    daily, today = daily_votes(engine, ids, now, days)
    return anomaly.spiking_benches(daily, today)


# --------------------------------------------------------------------------- benches


class NotYourBench(PermissionError):
    """A bench state for a bench not registered to the writing municipality."""


def upsert_days(
    engine: Engine, municipality: str, days: list[BenchDay], now: int | None = None
) -> dict[str, Any]:
    """Store `municipality`'s bench-days (a day already there is replaced); a day of a bench
    not registered to it is rejected as `not_your_bench`, the others still apply."""
    stamp = int(time.time()) if now is None else now
    rejected: list[dict[str, str]] = []
    with writing(engine) as conn:
        # Its benches' registry rows locked, in bench order (PostgreSQL): batches naming the
        # same days in other orders take turns instead of deadlocking on each other's rows.
        own = registry.own_benches(conn, municipality, {d.bench for d in days}, lock=True)
        rows = []
        for d in days:
            if d.bench not in own or d.municipality != municipality:
                rejected.append({"bench": d.bench, "date": d.date, "reason": NOT_YOUR_BENCH})
            else:
                rows.append({**d.__dict__, "updated_at": stamp})
        # The last row for a key wins when a batch names one day twice.
        unique = list({(r["municipality"], r["bench"], r["date"]): r for r in rows}.values())
        for start in range(0, len(unique), CHUNK):
            stmt = insert_into(conn, bench_days).values(unique[start : start + CHUNK])
            keys = ("municipality", "bench", "date")
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_={
                    c.name: stmt.excluded[c.name] for c in bench_days.columns if c.name not in keys
                },
            )
            conn.execute(stmt)
    return {"upserted": len(rows), "rejected": rejected}


def set_bench_status(
    engine: Engine, bench: str, status: BenchStatus, now: int | None = None
) -> None:
    """Store a bench's state; NotYourBench unless the bench is registered to its municipality."""
    stamp = int(time.time()) if now is None else now
    key = (benches.c.municipality == status.municipality) & (benches.c.bench == bench)
    values = {
        "online": status.online,
        "last_seen": status.last_seen,
        "soc": status.soc,
        "power": status.power,
        "fw": status.fw,
        "updated_at": stamp,
    }
    with writing(engine) as conn:
        # The registry row locked (PostgreSQL): two states of a new bench sent at once insert
        # its row one after the other, not both (a duplicate key, a 500).
        if bench not in registry.own_benches(conn, status.municipality, [bench], lock=True):
            raise NotYourBench(f"bench: {bench} is not registered to {status.municipality}")
        old = conn.execute(select(benches.c.online, benches.c.since).where(key)).first()
        if old is None:
            since = status.last_seen if status.online and status.last_seen else stamp
            conn.execute(
                benches.insert().values(
                    municipality=status.municipality, bench=bench, since=since, **values
                )
            )
            return
        if bool(old.online) != status.online:
            # Offline since the last report, online since now (or since that report).
            values["since"] = status.last_seen or stamp
        conn.execute(benches.update().where(key).values(**values))


@dataclass
class BenchOverview:
    municipality: str
    bench: str
    online: bool | None  # None: never reported a status
    since: int | None
    last_seen: int | None
    soc: float | None
    power: str | None
    fw: str | None
    today: dict[str, Any] | None
    heard: int | None = None  # when the portal last heard this bench's gateway
    stale: bool = False  # that gateway has been silent too long for its state to hold

    @property
    def state(self) -> str:
        """online | offline | unknown (never reported, or its gateway has gone silent)."""
        if self.online is None or self.stale:
            return "unknown"
        return "online" if self.online else "offline"

    @property
    def last_heard(self) -> int | None:
        """When its gateway last heard from the bench (else when the portal last heard of it)."""
        return self.last_seen or self.reported

    reported: int | None = None  # when the portal last stored its state


def local_date(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, LOCAL).date().isoformat()


def bench_overview(engine: Engine, now: int) -> list[BenchOverview]:
    today = local_date(now)
    with reading(engine) as conn:
        status = {(r.municipality, r.bench): r for r in conn.execute(select(benches))}
        days = {
            (r.municipality, r.bench): r._asdict()
            for r in conn.execute(select(bench_days).where(bench_days.c.date == today))
        }
        known = {
            (r.municipality, r.bench)
            for r in conn.execute(select(bench_days.c.municipality, bench_days.c.bench).distinct())
        }
        heard = heartbeat.last_heard(conn)
        home = registry.homes(conn)
    out = []
    for key in sorted(set(status) | known):
        if home.get(key[1], key[0]) != key[0]:
            continue  # a moved bench's last state and days from its former municipality
        s = status.get(key)
        out.append(
            BenchOverview(
                municipality=key[0],
                bench=key[1],
                online=None if s is None else bool(s.online),
                since=None if s is None else s.since,
                last_seen=None if s is None else s.last_seen,
                soc=None if s is None else s.soc,
                power=None if s is None else s.power,
                fw=None if s is None else s.fw,
                today=days.get(key),
                heard=heard.get(key[0]),
                stale=now - heard.get(key[0], 0) > heartbeat.STALE_AFTER_S,
                reported=None if s is None else s.updated_at,
            )
        )
    return out


def bench_history(
    engine: Engine, bench: str, now: int, days: int = 30
) -> tuple[str, list[dict[str, Any]]]:
    """The bench's municipality and one row per local day for the last `days` days (None if no row)."""
    first = datetime.datetime.fromtimestamp(now, LOCAL).date() - datetime.timedelta(days=days - 1)
    with reading(engine) as conn:
        places = [
            r.municipality
            for r in conn.execute(select(benches.c.municipality).where(benches.c.bench == bench))
        ] + [
            r.municipality
            for r in conn.execute(
                select(bench_days.c.municipality).where(bench_days.c.bench == bench).distinct()
            )
        ]
        if not places:
            raise LookupError(f"bench {bench!r} not found")
        # Where it is registered now, unless only a former municipality has its figures yet.
        home = registry.homes(conn, [bench]).get(bench)
        municipality = home if home is not None and home in places else places[0]
        rows = {
            r.date: r._asdict()
            for r in conn.execute(
                select(bench_days).where(
                    bench_days.c.municipality == municipality,
                    bench_days.c.bench == bench,
                    bench_days.c.date >= first.isoformat(),
                )
            )
        }
    series = []
    for i in range(days):
        date = (first + datetime.timedelta(days=i)).isoformat()
        series.append(rows.get(date) or {"date": date})
    return municipality, series
