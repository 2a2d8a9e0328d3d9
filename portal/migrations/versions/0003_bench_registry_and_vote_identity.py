"""The bench registry; a vote's identity is (municipality, id); capped votes; gateway heartbeats.

Times that a client sends and the portal keeps as given (poll opens/closes, vote ts) become
64-bit, so every value the checks let through (up to 2^53) fits on SQLite and PostgreSQL alike.

After upgrading, register the benches (`klupa portal bench import INVENTORY`): until a bench is
registered, its municipality's token writes nothing for it.

Revision 0003, revises 0002; created 2026-12-07.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.migrations.columns import bench, municipality, vote_columns

revision = "0003"
down_revision = "0002"
branch_labels = depends_on = None

VOTE_COLUMNS = "municipality, id, poll_id, bench, choice, ts, received_at"


def _vote_indexes() -> None:
    op.create_index("ix_votes_poll_bench_choice", "votes", ["poll_id", "bench", "choice"])
    op.create_index("ix_votes_bench_ts", "votes", ["bench", "ts"])


def upgrade() -> None:
    op.create_table(
        "votes_new",
        *vote_columns("0003"),
        sa.PrimaryKeyConstraint("municipality", "id", name="pk_votes"),
    )
    op.execute(f"INSERT INTO votes_new ({VOTE_COLUMNS}) SELECT {VOTE_COLUMNS} FROM votes")
    op.drop_table("votes")
    op.rename_table("votes_new", "votes")
    _vote_indexes()
    with op.batch_alter_table("polls") as batch:
        batch.alter_column("opens", type_=sa.BigInteger, existing_nullable=False)
        batch.alter_column("closes", type_=sa.BigInteger, existing_nullable=False)
    op.create_table(
        "capped_votes",
        *vote_columns("0003", choice=False),
        sa.PrimaryKeyConstraint("municipality", "id", name="pk_capped_votes"),
    )
    op.create_index("ix_capped_votes_poll_id", "capped_votes", ["poll_id"])
    op.create_table(
        "bench_registry",
        bench(primary_key=True),
        municipality(nullable=False),
        sa.Column("vote_cap", sa.Integer, nullable=True),
        sa.Column("added_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_bench_registry_municipality", "bench_registry", ["municipality"])
    op.create_table(
        "gateways",
        municipality(primary_key=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("lag_s", sa.Float, nullable=False),
        sa.Column("heard_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateways")
    op.drop_index("ix_bench_registry_municipality", table_name="bench_registry")
    op.drop_table("bench_registry")
    op.drop_index("ix_capped_votes_poll_id", table_name="capped_votes")
    op.drop_table("capped_votes")
    with op.batch_alter_table("polls") as batch:
        batch.alter_column("opens", type_=sa.Integer, existing_nullable=False)
        batch.alter_column("closes", type_=sa.Integer, existing_nullable=False)
    op.create_table("votes_old", *vote_columns("0001"))
    # One vote per id, as 0002 keeps them: the first municipality's where two claimed one id.
    op.execute(
        f"INSERT INTO votes_old ({VOTE_COLUMNS}) SELECT {VOTE_COLUMNS} FROM votes v "
        "WHERE v.municipality = (SELECT MIN(w.municipality) FROM votes w WHERE w.id = v.id)"
    )
    op.drop_table("votes")
    op.rename_table("votes_old", "votes")
    _vote_indexes()
