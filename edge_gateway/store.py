"""The gateway's durable store: one SQLite file in WAL mode.

One writer (the ingest thread) commits messages in groups; each sink reads what lies past its
own watermark on its own connection. Identity is ``(bench, boot, seq)``: the unique index makes
a re-sent message a no-op that is counted as a duplicate. Derived figures that sinks rewrite
whole (votes per minute, the local day) are kept up to date in the same transaction as the
messages they come from, so they count each message exactly once.

Tables:

- ``messages``: every record handled, in arrival order (``id``). ``kind`` is the topic kind,
  ``state`` for a health change the gateway decided, or ``rejected`` for a quarantined message
  whose identity was readable (kept so that its receipt and dedup hold; sinks skip it).
- ``votes``: one row per distinct vote, for the per-minute counts.
- ``daily``: sums per bench per Europe/Sarajevo day.
- ``states``: health changes, for the day's uptime.
- ``benches``: last known state of each bench (for ``klupa gateway status`` and restarts).
- ``quarantine``: rejected payloads with their reason (bounded), ``counters``, ``watermarks``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Europe/Sarajevo")
DAILY_SUMS = ("solar_wh", "charge_wh", "sessions", "seat_occ_s", "touches", "votes")
QUARANTINE_MAX = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    bench TEXT NOT NULL,
    boot INTEGER,
    seq INTEGER,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    received REAL NOT NULL,
    body BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_identity ON messages (bench, boot, seq);
CREATE TABLE IF NOT EXISTS votes (
    bench TEXT NOT NULL, poll TEXT NOT NULL, choice TEXT NOT NULL, minute INTEGER NOT NULL,
    msg INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS votes_minute ON votes (bench, poll, choice, minute);
CREATE TABLE IF NOT EXISTS daily (
    bench TEXT NOT NULL, day TEXT NOT NULL,
    solar_wh REAL NOT NULL DEFAULT 0, charge_wh REAL NOT NULL DEFAULT 0,
    sessions INTEGER NOT NULL DEFAULT 0, seat_occ_s INTEGER NOT NULL DEFAULT 0,
    touches INTEGER NOT NULL DEFAULT 0, votes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (bench, day)
);
CREATE TABLE IF NOT EXISTS states (
    id INTEGER PRIMARY KEY, bench TEXT NOT NULL, t REAL NOT NULL,
    up INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS states_bench ON states (bench, t);
CREATE TABLE IF NOT EXISTS benches (
    bench TEXT PRIMARY KEY, online INTEGER NOT NULL DEFAULT 0, sleeping INTEGER NOT NULL DEFAULT 0,
    until INTEGER, last_seen REAL, period INTEGER, boot INTEGER, fw TEXT, soc REAL, power TEXT,
    changed REAL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, received REAL NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '', payload BLOB
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS watermarks (sink TEXT PRIMARY KEY, id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hidden_polls (
    poll TEXT PRIMARY KEY, closes INTEGER NOT NULL, released INTEGER NOT NULL DEFAULT 0
);
"""

_day_cache: dict[int, str] = {}


def local_day(ts: float) -> str:
    """The Europe/Sarajevo calendar day of a Unix time, ``YYYY-MM-DD`` (DST-correct)."""
    hour = int(ts) // 3600  # the zone's offsets are whole hours, so a day starts on an hour
    day = _day_cache.get(hour)
    if day is None:
        day = datetime.fromtimestamp(hour * 3600, LOCAL_TZ).date().isoformat()
        if len(_day_cache) > 100_000:
            _day_cache.clear()
        _day_cache[hour] = day
    return day


def day_bounds(day: str) -> tuple[float, float]:
    """Unix times of a local day's midnight and the next midnight (23 or 25 h on DST days)."""
    d = date.fromisoformat(day)
    start = datetime(d.year, d.month, d.day, tzinfo=LOCAL_TZ).timestamp()
    n = d + timedelta(days=1)
    end = datetime(n.year, n.month, n.day, tzinfo=LOCAL_TZ).timestamp()
    return start, end


@dataclass
class Row:
    id: int
    bench: str
    boot: int | None
    seq: int | None
    kind: str
    ts: int
    received: float
    body: bytes


PAGE_SIZE = 1024


def connect(path: str, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False
        )
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        # 1 KiB pages (a new store only: an existing file keeps its size): at idle each message
        # is its own commit, and a commit writes whole pages, so smaller pages wear the card less.
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on the card before we acknowledge to the broker.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Store:
    """One connection to the store file. The gateway keeps one per thread."""

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        self.conn = connect(path, readonly)
        if not readonly:
            self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ writer side

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        # SQLite may have rolled back by itself already (SQLITE_FULL, I/O errors): then a
        # ROLLBACK would fail and hide the error that matters.
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` and re-raise on any exception,
        the ``COMMIT``'s own included (a full disk may refuse it: the next ``BEGIN`` must not
        find the transaction still open)."""
        self.begin()
        try:
            yield
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def insert_message(
        self,
        bench: str,
        boot: int | None,
        seq: int | None,
        kind: str,
        ts: int,
        received: float,
        body: bytes | None,
    ) -> int | None:
        """Insert one record; None when its identity is already stored (a duplicate)."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO messages (bench, boot, seq, kind, ts, received, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bench, boot, seq, kind, ts, received, body),
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    def stored_record(self, bench: str, boot: int, seq: int) -> tuple[str, bytes | None] | None:
        """The kind and body stored under a record's identity (None: nothing stored)."""
        row = self.conn.execute(
            "SELECT kind, body FROM messages WHERE bench = ? AND boot = ? AND seq = ?",
            (bench, boot, seq),
        ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def add_vote(self, bench: str, poll: str, choice: str, ts: int, msg: int) -> None:
        self.conn.execute(
            "INSERT INTO votes (bench, poll, choice, minute, msg) VALUES (?, ?, ?, ?, ?)",
            (bench, poll, choice, ts - ts % 60, msg),
        )

    def add_daily(self, sums: dict[tuple[str, str], list[float]]) -> None:
        """Add a group's sums per (bench, day): DAILY_SUMS in order."""
        self.conn.executemany(
            "INSERT INTO daily (bench, day, solar_wh, charge_wh, sessions, seat_occ_s, touches, "
            "votes) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bench, day) DO UPDATE SET "
            "solar_wh = solar_wh + excluded.solar_wh, charge_wh = charge_wh + excluded.charge_wh, "
            "sessions = sessions + excluded.sessions, "
            "seat_occ_s = seat_occ_s + excluded.seat_occ_s, "
            "touches = touches + excluded.touches, votes = votes + excluded.votes",
            [(b, d, *v) for (b, d), v in sums.items()],
        )

    def add_state(self, bench: str, t: float, up: bool) -> None:
        self.conn.execute("INSERT INTO states (bench, t, up) VALUES (?, ?, ?)", (bench, t, int(up)))

    def save_bench(self, bench: str, **fields: Any) -> None:
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        sets = ", ".join(f"{k} = excluded.{k}" for k in fields)
        self.conn.execute(
            f"INSERT INTO benches (bench, {cols}) VALUES (?, {marks}) "
            f"ON CONFLICT (bench) DO UPDATE SET {sets}",
            (bench, *fields.values()),
        )

    def quarantine(
        self, topic: str, reason: str, detail: str, payload: bytes, received: float
    ) -> None:
        cur = self.conn.execute(
            "INSERT INTO quarantine (received, topic, reason, detail, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            (received, topic[:256], reason, detail[:200], payload[:4096]),
        )
        last = cur.lastrowid or 0
        if last % 100 == 0:  # bounded: keep the newest QUARANTINE_MAX rows
            self.conn.execute("DELETE FROM quarantine WHERE id <= ?", (last - QUARANTINE_MAX,))

    def bump(self, counts: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            list(counts.items()),
        )

    def set_watermark(self, sink: str, msg_id: int) -> None:
        self.conn.execute(
            "INSERT INTO watermarks (sink, id) VALUES (?, ?) "
            "ON CONFLICT (sink) DO UPDATE SET id = max(id, excluded.id)",
            (sink, msg_id),
        )

    def set_hidden_polls(self, polls: dict[str, int]) -> None:
        """Polls whose results are hidden until they close (from the portal's poll list)."""
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO hidden_polls (poll, closes) VALUES (?, ?) "
                "ON CONFLICT (poll) DO UPDATE SET closes = excluded.closes, "
                "released = CASE WHEN excluded.closes = closes THEN released ELSE 0 END",
                list(polls.items()),
            )

    def mark_released(self, poll: str) -> None:
        with self.transaction():
            self.conn.execute("UPDATE hidden_polls SET released = 1 WHERE poll = ?", (poll,))

    # ------------------------------------------------------------------ readers

    def hidden_now(self, now: float) -> set[str]:
        """Polls whose per-choice counts must not leave the gateway yet."""
        return {
            p
            for (p,) in self.conn.execute("SELECT poll FROM hidden_polls WHERE closes > ?", (now,))
        }

    def to_release(self, now: float) -> list[str]:
        """Hidden polls that have closed and whose per-choice counts are not written yet."""
        cur = self.conn.execute(
            "SELECT poll FROM hidden_polls WHERE closes <= ? AND released = 0 ORDER BY poll",
            (now,),
        )
        return [p for (p,) in cur]

    def vote_minutes(self, poll: str) -> list[tuple[str, str, int, int]]:
        """(bench, choice, minute, distinct votes) of one poll."""
        cur = self.conn.execute(
            "SELECT bench, choice, minute, count(*) FROM votes WHERE poll = ? "
            "GROUP BY bench, choice, minute ORDER BY bench, choice, minute",
            (poll,),
        )
        return [(b, c, int(m), int(n)) for b, c, m, n in cur]

    def counters(self) -> dict[str, int]:
        return {n: int(v) for n, v in self.conn.execute("SELECT name, value FROM counters")}

    def watermark(self, sink: str) -> int:
        row = self.conn.execute("SELECT id FROM watermarks WHERE sink = ?", (sink,)).fetchone()
        return int(row[0]) if row else 0

    def watermarks(self) -> dict[str, int]:
        return {s: int(i) for s, i in self.conn.execute("SELECT sink, id FROM watermarks")}

    def last_id(self) -> int:
        row = self.conn.execute("SELECT max(id) FROM messages").fetchone()
        return int(row[0] or 0)

    def rows_after(self, msg_id: int, limit: int) -> list[Row]:
        cur = self.conn.execute(
            "SELECT id, bench, boot, seq, kind, ts, received, body FROM messages "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (msg_id, limit),
        )
        return [Row(*r) for r in cur]

    def vote_count(self, bench: str, poll: str, choice: str, minute: int) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM votes WHERE bench = ? AND poll = ? AND choice = ? AND minute = ?",
            (bench, poll, choice, minute),
        ).fetchone()
        return int(row[0])

    def daily(self, bench: str, day: str, now: float) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT solar_wh, charge_wh, sessions, seat_occ_s, touches, votes FROM daily "
            "WHERE bench = ? AND day = ?",
            (bench, day),
        ).fetchone()
        names = ("solar_wh", "charge_wh", "sessions", "seat_occ_s", "touches", "votes")
        out: dict[str, Any] = dict(zip(names, row or (0.0, 0.0, 0, 0, 0, 0), strict=True))
        out["solar_wh"] = round(float(out["solar_wh"]), 3)
        out["charge_wh"] = round(float(out["charge_wh"]), 3)
        # Windows that overlap (a bench whose clock jumped back re-reports a stretch) can sum
        # past the day; no day holds more than its own length of sitting.
        start, end = day_bounds(day)
        out["seat_occ_s"] = min(int(out["seat_occ_s"]), int(end - start))
        out["uptime_pct"] = self.uptime_pct(bench, day, now)
        return out

    def uptime_pct(self, bench: str, day: str, now: float) -> float:
        """Share of the day's elapsed time the bench was online or announced sleeping."""
        start, end = day_bounds(day)
        stop = min(end, now)
        if stop <= start:
            return 0.0
        before = self.conn.execute(
            "SELECT up FROM states WHERE bench = ? AND t < ? ORDER BY t DESC, id DESC LIMIT 1",
            (bench, start),
        ).fetchone()
        up = bool(before[0]) if before else False
        t0 = start
        total = 0.0
        for t, u in self.conn.execute(
            "SELECT t, up FROM states WHERE bench = ? AND t >= ? AND t < ? ORDER BY t, id",
            (bench, start, stop),
        ):
            if up:
                total += t - t0
            t0, up = t, bool(u)
        if up:
            total += stop - t0
        return round(100.0 * total / (stop - start), 3)

    def benches(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT bench, online, sleeping, until, last_seen, period, boot, fw, soc, power, "
            "changed FROM benches ORDER BY bench"
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur]

    def last_changes(self) -> dict[str, float]:
        """The gateway's time of each bench's latest health change still in the store."""
        cur = self.conn.execute("SELECT bench, max(t) FROM states GROUP BY bench")
        return {bench: float(t) for bench, t in cur}

    def receipt_ranges(self) -> dict[str, dict[int, list[tuple[int, int]]]]:
        """Stored seq ranges per bench and boot (every boot; the caller trims)."""
        out: dict[str, dict[int, list[tuple[int, int]]]] = {}
        cur = self.conn.execute(
            "SELECT bench, boot, min(seq), max(seq) FROM ("
            "  SELECT bench, boot, seq,"
            "         seq - row_number() OVER (PARTITION BY bench, boot ORDER BY seq) AS grp"
            "  FROM messages WHERE seq IS NOT NULL"
            ") GROUP BY bench, boot, grp ORDER BY bench, boot, min(seq)"
        )
        for bench, boot, lo, hi in cur:
            out.setdefault(bench, {}).setdefault(int(boot), []).append((int(lo), int(hi)))
        return out

    def quarantine_counts(self) -> dict[str, int]:
        return {
            r: int(n)
            for r, n in self.conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason")
        }

    def depth_and_lag(self, sinks: list[str], now: float) -> tuple[int, float]:
        """Rows not yet forwarded by the slowest sink, and the age of the oldest of them."""
        if not sinks:
            return 0, 0.0
        marks = self.watermarks()
        low = min(marks.get(s, 0) for s in sinks)
        row = self.conn.execute(
            "SELECT count(*), min(received) FROM messages WHERE id > ? AND kind != 'rejected'",
            (low,),
        ).fetchone()
        depth = int(row[0])
        lag = max(0.0, now - float(row[1])) if row[1] is not None else 0.0
        return depth, lag

    # ------------------------------------------------------------------ upkeep

    def prune(self, sinks: list[str], retention_days: float, max_mb: float, now: float) -> int:
        """Delete forwarded rows past retention; over ``max_mb``, drop oldest first (see docs).

        Returns the number of message rows deleted. The newest row is never deleted: SQLite
        numbers a new row one past the largest id left (1 in an empty table), and the sinks'
        watermarks are ids, so after a quiet spell that emptied the table every new row would
        lie below them and never be forwarded.
        """
        marks = self.watermarks()
        top = self.last_id()
        low = min(min((marks.get(s, 0) for s in sinks), default=top), top - 1)
        cutoff = now - retention_days * 86400
        deleted = 0
        with self.transaction():
            deleted += self.conn.execute(
                "DELETE FROM messages WHERE id <= ? AND received < ?", (low, cutoff)
            ).rowcount
            self.conn.execute("DELETE FROM votes WHERE minute < ?", (cutoff - 86400,))
            self.conn.execute("DELETE FROM daily WHERE day < ?", (local_day(cutoff - 86400),))
            self.conn.execute("DELETE FROM states WHERE t < ?", (cutoff - 86400,))
        limit = max_mb * 1024 * 1024
        for _ in range(20):
            if self.size_bytes() <= limit:
                break
            with self.transaction():
                n = self._drop_oldest(low, top)
            if n == 0:
                break
            deleted += n
            if not self.compact():
                break  # no room to rewrite the file: the freed pages are reused in place
        return deleted

    def compact(self) -> bool:
        """Give freed pages back to the file system: ``VACUUM`` writes a whole copy of the file,
        so only when the disk has room for one; else the freed pages are reused by SQLite in
        place (the file stops growing, which is what a full disk needs)."""
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        except OSError:
            return False
        if free < 2 * self.size_bytes() + 16 * 1024 * 1024:
            return False
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # VACUUM went through the WAL
        return True

    def _drop_oldest(self, low: int, top: int) -> int:
        """One step of the size policy: forwarded rows, then quarantine, then telemetry; never
        the row ``top`` (the newest, see :meth:`prune`)."""
        total = self.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        step = max(1000, total // 10)
        oldest = (
            "DELETE FROM messages WHERE id IN "
            "(SELECT id FROM messages WHERE {} AND id < ? ORDER BY id LIMIT ?)"
        )
        for sql, args, unforwarded in (
            (oldest.format("id <= ?"), (low, top, step), False),
            ("DELETE FROM quarantine", (), False),
            (oldest.format("kind = 'telemetry'"), (top, step), True),
            (oldest.format("1"), (top, step), True),
        ):
            n = int(self.conn.execute(sql, args).rowcount)
            if n:
                if unforwarded:
                    self.bump({"dropped_unforwarded": n})
                return n
        return 0

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total


def backlog(path: str, sinks: list[str], now: float) -> tuple[int, float]:
    """:meth:`Store.depth_and_lag` on a read-only connection of its own (any thread)."""
    st = Store(path, readonly=True)
    try:
        return st.depth_and_lag(sinks, now)
    finally:
        st.close()


def state_body(online: bool, sleeping: bool, boot: int | None, fw: str | None) -> bytes:
    return json.dumps(
        {"online": online, "sleeping": sleeping, "boot": boot, "fw": fw}, separators=(",", ":")
    ).encode()
