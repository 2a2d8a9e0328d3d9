"""Schema migrations: from an empty database, and from the previous revision with data in it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, inspect, text

from portal import checks, db, registry, store
from portal.tokens import create_token, find_caller


def poll_with_a_vote(engine: Engine, now: int) -> None:
    """A live poll `old-poll` (choices a and b) at Mostar and one vote for a from mostar-01,
    written as SQL, as a revision before 0003 stored them."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO polls VALUES ('old-poll', :o, :c, '{\"bs\": \"Pitanje?\"}',"
                ' \'[{"id": "a", "label": {"bs": "A"}}, {"id": "b", "label": {"bs": "B"}}]\','
                " 'live', :o)"
            ),
            {"o": now - 100, "c": now + 100},
        )
        conn.execute(text("INSERT INTO poll_places VALUES ('old-poll', 'mostar')"))
        conn.execute(
            text(
                "INSERT INTO votes (id, poll_id, municipality, bench, choice, ts, received_at)"
                " VALUES ('mostar-01/1/1', 'old-poll', 'mostar', 'mostar-01', 'a', :t, :t)"
            ),
            {"t": now - 50},
        )


def test_an_empty_database_is_migrated_to_the_newest_revision(tmp_path: Path) -> None:
    engine = db.open_database(str(tmp_path / "p.sqlite"))
    assert db.current_revision(engine) == "0003"
    assert db.table_names(engine) == [
        "alembic_version",
        "bench_days",
        "bench_registry",
        "benches",
        "capped_votes",
        "gateways",
        "poll_places",
        "polls",
        "tokens",
        "votes",
    ]
    # Running again changes nothing.
    db.migrate(engine)
    assert db.current_revision(engine) == "0003"


def test_a_database_at_the_previous_revision_is_upgraded_keeping_its_data(tmp_path: Path) -> None:
    engine = db.make_engine(str(tmp_path / "p.sqlite"))
    db.migrate(engine, "0001")
    assert db.current_revision(engine) == "0001"
    assert "since" not in {c["name"] for c in inspect(engine).get_columns("benches")}
    now = int(time.time())
    token = create_token(engine, "mostar")  # tokens work at 0001 already
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO benches (municipality, bench, online, last_seen, soc, power, fw,"
                " updated_at) VALUES ('mostar', 'mostar-01', 1, :seen, 55.0, 'saver', '1.0.0', :now)"
            ),
            {"seen": now - 30, "now": now},
        )
    poll_with_a_vote(engine, now)
    db.migrate(engine)
    assert db.current_revision(engine) == "0003"
    indexes = {i["name"] for i in inspect(engine).get_indexes("votes")}
    assert {"ix_votes_poll_bench_choice", "ix_votes_bench_ts"} <= indexes
    assert "ix_votes_poll" not in indexes
    bench = store.bench_overview(engine, now)[0]
    assert (bench.bench, bench.online, bench.since, bench.soc) == (
        "mostar-01",
        True,
        now - 30,
        55.0,
    )
    assert find_caller(engine, token) is not None
    assert store.results(engine, "old-poll")["choices"] == {"a": 1, "b": 0}
    assert inspect(engine).get_pk_constraint("votes")["constrained_columns"] == [
        "municipality",
        "id",
    ]
    vote = checks.VoteItem("mostar-01/1/2", "mostar", "mostar-01", "old-poll", "b", now - 10)
    # Until the bench is registered, its municipality writes nothing for it.
    assert store.ingest_votes(engine, "mostar", [vote])["rejected"][0]["reason"] == "not_your_bench"
    registry.add_bench(engine, "mostar-01", "mostar")
    assert store.ingest_votes(engine, "mostar", [vote])["accepted"] == 1
    assert store.results(engine, "old-poll")["total"] == 2


def test_the_newest_revision_downgrades_to_the_previous_one(tmp_path: Path) -> None:
    engine = db.open_database(str(tmp_path / "p.sqlite"))
    command.downgrade(db.alembic_config(engine), "0002")
    assert db.current_revision(engine) == "0002"
    assert "bench_registry" not in db.table_names(engine)
    assert inspect(engine).get_pk_constraint("votes")["constrained_columns"] == ["id"]
    command.downgrade(db.alembic_config(engine), "0001")
    assert db.current_revision(engine) == "0001"
    assert "since" not in {c["name"] for c in inspect(engine).get_columns("benches")}
    command.downgrade(db.alembic_config(engine), "base")
    assert db.table_names(engine) == ["alembic_version"]
    db.migrate(engine)
    assert db.current_revision(engine) == "0003"


def test_postgres_is_upgraded_from_0002_keeping_votes_keyed_by_municipality(
    postgres_portal: Any,
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(postgres_portal.engine.url)
    with create_engine(server, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS migrate_from_0002"))
        conn.execute(text("CREATE DATABASE migrate_from_0002"))
    engine = db.make_engine(server.set(database="migrate_from_0002").render_as_string(False))
    try:
        db.migrate(engine, "0002")
        now = int(time.time())
        poll_with_a_vote(engine, now)
        db.migrate(engine)
        assert db.current_revision(engine) == "0003"
        pk = inspect(engine).get_pk_constraint("votes")["constrained_columns"]
        assert pk == ["municipality", "id"]
        assert store.results(engine, "old-poll")["choices"] == {"a": 1, "b": 0}
        registry.add_bench(engine, "mostar-01", "mostar")
        again = checks.VoteItem("mostar-01/1/1", "mostar", "mostar-01", "old-poll", "b", now - 10)
        assert store.ingest_votes(engine, "mostar", [again])["duplicates"] == 1
        command.downgrade(db.alembic_config(engine), "0002")
        assert inspect(engine).get_pk_constraint("votes")["constrained_columns"] == ["id"]
    finally:
        engine.dispose()
