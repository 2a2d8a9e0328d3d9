"""Since when a bench is online or offline; vote indexes that serve results and anomaly checks.

Revision 0002, revises 0001; created 2026-11-26.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("benches") as batch:
        batch.add_column(sa.Column("since", sa.Integer, nullable=True))
    # Best knowledge for benches already known: their last report.
    op.execute("UPDATE benches SET since = COALESCE(last_seen, updated_at)")
    op.drop_index("ix_votes_poll", table_name="votes")
    # Covers the results query (GROUP BY bench, choice for one poll) without touching the table.
    op.create_index("ix_votes_poll_bench_choice", "votes", ["poll_id", "bench", "choice"])
    op.create_index("ix_votes_bench_ts", "votes", ["bench", "ts"])


def downgrade() -> None:
    op.drop_index("ix_votes_bench_ts", table_name="votes")
    op.drop_index("ix_votes_poll_bench_choice", table_name="votes")
    op.create_index("ix_votes_poll", "votes", ["poll_id"])
    with op.batch_alter_table("benches") as batch:
        batch.drop_column("since")
