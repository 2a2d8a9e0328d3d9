"""Open data: the counted votes, the results and the benches' days as CSV and JSON (CC BY 4.0),
and the per-bench digest that lets anyone check a closed poll's published count.

A CSV starts with `#` comment lines: the licence and attribution, then one line per column
(`# column: what it is`), then the header row and the data. Readers that skip `#` lines
(`csv` after filtering, `pandas.read_csv(comment="#")`) get a plain table.

**Per-bench digest** (a closed poll): SHA-256, in lowercase hex, of the UTF-8 bytes of one line
`<vote id>,<choice>\\n` for each of that bench's counted votes in the poll, the lines sorted by
vote id (by code point, which for the ASCII ids is byte order). `digest_of` is the whole rule.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select

from portal.db import bench_days, reading, votes

LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
ATTRIBUTION = "klupa smart benches, civic-feedback portal"

VOTE_COLUMNS = {
    "id": "the vote's id, bench/boot/seq (unique within its municipality)",
    "municipality": "the municipality whose gateway forwarded it",
    "bench": "the bench it was pressed on",
    "minute": "UTC start of the minute it was pressed in (ISO 8601); the second is not published",
    "choice": "the option id chosen",
}
RESULT_COLUMNS = {
    "bench": "the bench; empty for the poll's total over all benches",
    "choice": "the option id",
    "votes": "counted votes",
    "digest": "closed polls: the bench's digest (SHA-256 of its sorted `id,choice` lines); "
    "else empty",
}
DAY_COLUMNS = {
    "date": "the local (Sarajevo) day, YYYY-MM-DD",
    "municipality": "the bench's municipality",
    "bench": "the bench",
    "solar_wh": "solar energy harvested that day, Wh",
    "charge_wh": "energy given to charging phones, Wh",
    "sessions": "phone charging sessions that day",
    "seat_occ_s": "seconds the seat was occupied",
    "touches": "touchpad touches",
    "votes": "votes pressed that day (all polls, as the bench counted them)",
    "uptime_pct": "share of the day the bench was running, %",
}


def minute_of(ts: int) -> str:
    """The UTC minute a vote was pressed in, e.g. `2026-12-07T08:15Z`."""
    try:
        t = datetime.datetime.fromtimestamp(ts - ts % 60, datetime.UTC)
    except (ValueError, OverflowError, OSError):
        return str(ts - ts % 60)
    return t.strftime("%Y-%m-%dT%H:%MZ")


def digest_of(pairs: Iterable[tuple[str, str]]) -> str:
    """SHA-256 hex of the `id,choice\\n` lines of (id, choice) pairs, sorted by id."""
    lines = "".join(f"{vote_id},{choice}\n" for vote_id, choice in sorted(pairs))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def poll_votes(engine: Engine, poll_id: str) -> list[dict[str, Any]]:
    """Each counted vote of a poll, by bench and id."""
    query = (
        select(votes.c.id, votes.c.municipality, votes.c.bench, votes.c.ts, votes.c.choice)
        .where(votes.c.poll_id == poll_id)
        .order_by(votes.c.bench, votes.c.id)
    )
    with reading(engine) as conn:
        return [
            {
                "id": r.id,
                "municipality": r.municipality,
                "bench": r.bench,
                "minute": minute_of(int(r.ts)),
                "choice": r.choice,
            }
            for r in conn.execute(query)
        ]


# A poll's digests by its per-bench vote counts: votes are only ever added (never changed or
# removed), so unchanged counts mean unchanged votes, and a closed poll's page or results need
# not read and hash all its votes again (a late vote cast in time changes a count).
_CACHE: dict[str, tuple[tuple[tuple[str, int], ...], dict[str, str]]] = {}
_CACHE_MAX = 256


def digests(
    engine: Engine, poll_id: str, counts: dict[str, dict[str, int]] | None = None
) -> dict[str, str]:
    """Each bench's digest of its counted votes in the poll. `counts` (bench -> choice -> votes,
    as `store.results` gives them), when given, lets an unchanged poll's digests be reused."""
    key = tuple(sorted((b, sum(c.values())) for b, c in counts.items())) if counts else None
    cached = _CACHE.get(poll_id)
    if key is not None and cached is not None and cached[0] == key:
        return dict(cached[1])
    found = _digests(engine, poll_id)
    if key is not None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[poll_id] = (key, found)
    return dict(found)


def _digests(engine: Engine, poll_id: str) -> dict[str, str]:
    per_bench: dict[str, list[tuple[str, str]]] = {}
    query = select(votes.c.bench, votes.c.id, votes.c.choice).where(votes.c.poll_id == poll_id)
    with reading(engine) as conn:
        for bench, vote_id, choice in conn.execute(query):
            per_bench.setdefault(bench, []).append((vote_id, choice))
    return {bench: digest_of(pairs) for bench, pairs in sorted(per_bench.items())}


def bench_day_rows(
    engine: Engine, municipality: str, first: str, last: str
) -> list[dict[str, Any]]:
    query = (
        select(*(bench_days.c[name] for name in DAY_COLUMNS))
        .where(
            bench_days.c.municipality == municipality,
            bench_days.c.date >= first,
            bench_days.c.date <= last,
        )
        .order_by(bench_days.c.date, bench_days.c.bench)
    )
    with reading(engine) as conn:
        return [r._asdict() for r in conn.execute(query)]


def result_rows(
    results: dict[str, Any], bench_digests: dict[str, str] | None
) -> list[dict[str, Any]]:
    rows = [
        {"bench": "", "choice": choice, "votes": n, "digest": ""}
        for choice, n in results["choices"].items()
    ]
    for bench, counts in results["benches"].items():
        digest = (bench_digests or {}).get(bench, "")
        rows += [
            {"bench": bench, "choice": choice, "votes": n, "digest": digest}
            for choice, n in counts.items()
        ]
    return rows


def to_csv(title: str, columns: dict[str, str], rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    out.write(f"# {title}\n# Licence: {LICENCE}. Attribution: {ATTRIBUTION}.\n")
    for name, what in columns.items():
        out.write(f"# {name}: {what}\n")
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def read_csv(body: str) -> list[dict[str, str]]:
    """The rows of an export (its `#` lines skipped): what a reader of the data does."""
    return list(csv.DictReader(line for line in body.splitlines() if not line.startswith("#")))
