"""The portal's tables, its database engine, and schema migration (Alembic, shipped in the package).

SQLite by default (a file path), PostgreSQL by URL. Times are Unix seconds, UTC, as integers.
On SQLite every write request takes the write lock at its start (BEGIN IMMEDIATE), so two
gateways' batches never interleave and a batch is one transaction, committed whole or not at all.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.dialects import postgresql, sqlite

metadata = MetaData()


# The column kinds that more than one table has, each defined once.
def _municipality(**options: Any) -> Column:
    return Column("municipality", String(32), **options)


def _bench(**options: Any) -> Column:
    return Column("bench", String(40), **options)


def _poll_id(name: str = "poll_id", **options: Any) -> Column:
    return Column(name, String(64), **options)


def _seconds(name: str, type_: type[Integer] = Integer, *, nullable: bool = False) -> Column:
    """Unix seconds: Integer as the first schema made them, BigInteger where migration 0003 made
    the column or widened it (up to 2^53)."""
    return Column(name, type_, nullable=nullable)


tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _municipality(nullable=True),  # NULL for the admin token
    Column("admin", Boolean, nullable=False, default=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("hint", String(16), nullable=False),  # the token's first characters, for `token list`
    _seconds("created_at"),
    _seconds("revoked_at", nullable=True),
)

polls = Table(
    "polls",
    metadata,
    _poll_id("id", primary_key=True),
    _seconds("opens", BigInteger),
    _seconds("closes", BigInteger),
    Column("question", Text, nullable=False),  # JSON: {"bs": ..., "en": ...}
    Column("options", Text, nullable=False),  # JSON: [{"id": ..., "label": {...}}, ...]
    Column("results", String(16), nullable=False, default="live"),
    _seconds("created_at"),
)

poll_places = Table(
    "poll_places",
    metadata,
    _poll_id(primary_key=True),
    _municipality(primary_key=True, index=True),
)


def _vote(*, choice: bool, poll_index: bool = False) -> list[Column]:
    """A vote's columns, as `votes` keeps a counted one and `capped_votes` (no choice) a refused
    one: a vote is its municipality's, (municipality, id) is its identity (migration 0003), so no
    token can claim, shadow or duplicate another municipality's vote ids."""
    return [
        _municipality(primary_key=True),
        Column("id", String(80), primary_key=True),  # bench/boot/seq
        _poll_id(nullable=False, index=poll_index),
        _bench(nullable=False),
        *([Column("choice", String(16), nullable=False)] if choice else []),
        _seconds("ts", BigInteger),
        _seconds("received_at", BigInteger),
    ]


votes = Table("votes", metadata, *_vote(choice=True))

# Votes refused for being over their bench's hourly cap (migration 0003): kept by identity, so a
# re-sent refusal is counted once, and shown on the poll's page.
capped_votes = Table("capped_votes", metadata, *_vote(choice=False, poll_index=True))

# The bench registry (migration 0003): each bench belongs to one municipality, whose token
# alone writes its votes, days and state. `vote_cap`: votes per hour per poll (None: default).
bench_registry = Table(
    "bench_registry",
    metadata,
    _bench(primary_key=True),
    _municipality(nullable=False, index=True),
    Column("vote_cap", Integer, nullable=True),
    _seconds("added_at", BigInteger),
)

# Each municipality's gateway heartbeat (migration 0003): its version, its own clock and its
# forwarding lag as it last reported them, and when the portal heard it.
gateways = Table(
    "gateways",
    metadata,
    _municipality(primary_key=True),
    Column("version", String(40), nullable=False),
    _seconds("ts", BigInteger),
    Column("lag_s", Float, nullable=False),
    _seconds("heard_at", BigInteger),
)


def _bench_key() -> list[Column]:
    """A bench's identity in the tables of what its municipality's gateway reports."""
    return [_municipality(primary_key=True), _bench(primary_key=True)]


# A bench's figures of one day (portal.checks.BenchDay), each NOT NULL.
DAY_FIGURES = (
    ("solar_wh", Float),
    ("charge_wh", Float),
    ("sessions", Integer),
    ("seat_occ_s", Integer),
    ("touches", Integer),
    ("votes", Integer),
    ("uptime_pct", Float),
)

bench_days = Table(
    "bench_days",
    metadata,
    *_bench_key(),
    Column("date", String(10), primary_key=True),
    *(Column(name, type_, nullable=False) for name, type_ in DAY_FIGURES),
    _seconds("updated_at"),
)

benches = Table(
    "benches",
    metadata,
    *_bench_key(),
    Column("online", Boolean, nullable=False),
    _seconds("since", nullable=True),  # when it went online or offline (migration 0002)
    _seconds("last_seen", nullable=True),
    Column("soc", Float, nullable=True),
    Column("power", String(16), nullable=True),
    Column("fw", String(40), nullable=True),
    _seconds("updated_at"),
)


class DatabaseError(RuntimeError):
    """The database cannot be opened or migrated; the message says what to do."""


def database_url(db: str) -> str:
    """A SQLite file path or a database URL, as a SQLAlchemy URL."""
    if "://" in db:
        if db.startswith("postgres://"):
            db = "postgresql://" + db[len("postgres://") :]
        if (
            db.startswith("postgresql://")
            and _has_module("psycopg")
            and not _has_module("psycopg2")
        ):
            db = "postgresql+psycopg://" + db[len("postgresql://") :]
        return db
    path = Path(db).expanduser().resolve()
    if not path.parent.is_dir():
        raise DatabaseError(f"the folder of the database file {path} does not exist")
    return f"sqlite:///{path}"


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def make_engine(db: str) -> Engine:
    url = database_url(db)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            _sqlite_transactions(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise DatabaseError(
            f"no database driver for {url.split(':')[0]}: install {exc.name}"
        ) from exc
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin() decide how a transaction starts (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("klupa_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back on an exception."""
    with engine.connect() as conn:
        conn.execution_options(klupa_write=True)
        with conn.begin():
            yield conn


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


def insert_into(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in `conn`'s dialect: both spell ON CONFLICT alike
    (`on_conflict_do_nothing`, `on_conflict_do_update`)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(table)


# --------------------------------------------------------------------------- migrations


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("portal") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest), from empty or from any older one."""
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), revision)
    except Exception as exc:  # noqa: BLE001 - reported as one line at the edge
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseError(f"migrating the database failed: {first_line}") from exc


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def open_database(db: str) -> Engine:
    """An engine on `db` with the schema migrated to the newest revision."""
    engine = make_engine(db)
    migrate(engine)
    return engine
