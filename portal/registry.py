"""The bench registry: which municipality each bench belongs to (docs/interfaces.md, "Portal
HTTP API").

A municipality's token writes votes, bench-days and states only for its registered benches, so
one municipality can never claim, shadow or overwrite another's. Benches are registered by the
admin, one at a time (`klupa portal bench add`) or from the deployment's inventory
(`klupa portal bench import`): both are idempotent, and moving a registered bench to another
municipality needs `move=True` (`--move`), so a typo cannot hand a bench to the wrong town.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from klupa import contract
from portal.db import bench_registry, reading, writing

# Votes per hour per poll a bench may add when the registry gives it no `vote_cap`: the
# firmware's own default cap (firmware/bench/config.py), so an honest bench never meets it.
DEFAULT_VOTE_CAP = 60
VOTE_CAP_RANGE = (1, 1000)  # what the bench's `set vote_cap` takes (docs/protocol.md)


class RegistryError(ValueError):
    """A bench cannot be registered as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Registered:
    bench: str
    municipality: str
    vote_cap: int | None


def _check(bench: str, municipality: str, vote_cap: int | None) -> None:
    if not contract.BENCH_RE.fullmatch(bench):
        raise RegistryError(f"{bench!r} is not a bench id ({contract.BENCH_RE.pattern})")
    if not contract.MUNICIPALITY_RE.fullmatch(municipality):
        raise RegistryError(
            f"{municipality!r} is not a municipality id ({contract.MUNICIPALITY_RE.pattern})"
        )
    low, high = VOTE_CAP_RANGE
    if vote_cap is not None and not low <= vote_cap <= high:
        raise RegistryError(f"vote cap {vote_cap}: must be {low} to {high} votes per hour")


def _register(
    conn: Connection, bench: str, municipality: str, move: bool, vote_cap: int | None
) -> str:
    _check(bench, municipality, vote_cap)
    row = conn.execute(select(bench_registry).where(bench_registry.c.bench == bench)).first()
    if row is None:
        conn.execute(
            bench_registry.insert().values(
                bench=bench, municipality=municipality, vote_cap=vote_cap, added_at=int(time.time())
            )
        )
        return "added"
    changes: dict[str, object] = {}
    if row.municipality != municipality:
        if not move:
            raise RegistryError(
                f"bench {bench} is registered to {row.municipality}, not {municipality}; "
                "give --move to move it"
            )
        changes["municipality"] = municipality
    if vote_cap is not None and vote_cap != row.vote_cap:
        changes["vote_cap"] = vote_cap
    if not changes:
        return "unchanged"
    conn.execute(bench_registry.update().where(bench_registry.c.bench == bench).values(**changes))
    return "moved" if "municipality" in changes else "updated"


def add_bench(
    engine: Engine,
    bench: str,
    municipality: str,
    move: bool = False,
    vote_cap: int | None = None,
) -> str:
    """Register `bench` to `municipality`: "added", "unchanged", "updated" (its cap) or "moved"."""
    with writing(engine) as conn:
        return _register(conn, bench, municipality, move, vote_cap)


def read_inventory(path: Path) -> list[tuple[str, str]]:
    """(bench, municipality) of every bench in a deployment's inventory.toml (or its folder)."""
    if path.is_dir():
        path = path / "inventory.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"cannot read the inventory {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: {exc}") from exc
    tables = data.get("benches", {})
    if not isinstance(tables, dict) or not tables:
        raise RegistryError(f"{path} has no [benches.<id>] tables")
    out = []
    for bench, table in tables.items():
        municipality = table.get("municipality") if isinstance(table, dict) else None
        if not isinstance(municipality, str) or not municipality:
            raise RegistryError(f"{path}: [benches.{bench}] has no municipality")
        out.append((bench, municipality))
    return out


def import_benches(
    engine: Engine, benches: Iterable[tuple[str, str]], move: bool = False
) -> dict[str, str]:
    """Register every (bench, municipality) in one transaction: all of them, or none."""
    with writing(engine) as conn:
        return {bench: _register(conn, bench, m, move, None) for bench, m in benches}


def import_inventory(engine: Engine, path: Path, move: bool = False) -> dict[str, str]:
    return import_benches(engine, read_inventory(path), move)


def registered(engine: Engine) -> list[Registered]:
    with reading(engine) as conn:
        rows = conn.execute(select(bench_registry).order_by(bench_registry.c.bench)).all()
    return [Registered(r.bench, r.municipality, r.vote_cap) for r in rows]


def homes(conn: Connection, benches: Iterable[str] | None = None) -> dict[str, str]:
    """The municipality each registered bench (of `benches`, else every one) belongs to now."""
    query = select(bench_registry.c.bench, bench_registry.c.municipality)
    if benches is not None:
        query = query.where(bench_registry.c.bench.in_(sorted(set(benches))))
    return {r.bench: r.municipality for r in conn.execute(query)}


def own_benches(
    conn: Connection, municipality: str, benches: Iterable[str], lock: bool = False
) -> dict[str, int]:
    """Of `benches`, those registered to `municipality`, with their hourly vote cap.

    With `lock`, their registry rows are locked for the transaction (PostgreSQL), so two
    requests for one bench judge its hourly cap one after the other.
    """
    wanted = sorted(set(benches))
    if not wanted:
        return {}
    query = (
        select(bench_registry.c.bench, bench_registry.c.vote_cap)
        .where(bench_registry.c.municipality == municipality, bench_registry.c.bench.in_(wanted))
        .order_by(bench_registry.c.bench)
    )
    if lock:
        query = query.with_for_update()
    return {
        r.bench: DEFAULT_VOTE_CAP if r.vote_cap is None else r.vote_cap for r in conn.execute(query)
    }
