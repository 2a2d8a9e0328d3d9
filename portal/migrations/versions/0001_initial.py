"""The first schema: tokens, polls and where they run, votes, bench days, bench status.

Revision 0001, the first; created 2026-11-26.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.migrations.columns import bench_key, municipality, not_null, vote_columns

revision = "0001"
down_revision = None
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        municipality(nullable=True),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("revoked_at", sa.Integer, nullable=True),
    )
    op.create_table(
        "polls",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("opens", sa.Integer, nullable=False),
        sa.Column("closes", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("results", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
    )
    op.create_table(
        "poll_places",
        sa.Column("poll_id", sa.String(64), primary_key=True),
        municipality(primary_key=True),
    )
    op.create_index("ix_poll_places_municipality", "poll_places", ["municipality"])
    op.create_table("votes", *vote_columns("0001"))
    op.create_index("ix_votes_poll", "votes", ["poll_id"])
    op.create_table(
        "bench_days",
        *bench_key(),
        sa.Column("date", sa.String(10), primary_key=True),
        *not_null(sa.Float, "solar_wh", "charge_wh"),
        *not_null(sa.Integer, "sessions", "seat_occ_s", "touches", "votes"),
        *not_null(sa.Float, "uptime_pct"),
        *not_null(sa.Integer, "updated_at"),
    )
    op.create_table(
        "benches",
        *bench_key(),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("last_seen", sa.Integer, nullable=True),
        sa.Column("soc", sa.Float, nullable=True),
        sa.Column("power", sa.String(16), nullable=True),
        sa.Column("fw", sa.String(40), nullable=True),
        sa.Column("updated_at", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("benches", "bench_days", "votes", "poll_places", "polls", "tokens"):
        op.drop_table(table)
