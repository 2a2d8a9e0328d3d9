"""Columns that more than one revision writes alike.

History, as the revisions are: what a revision made never changes here. A vote's table is made
four times (0001; 0003's `votes_new` and `capped_votes`; 0003's downgrade back to 0001's), so
its columns are written once, by revision. A municipality and a bench id are the same columns in
every table of 0001 to 0003 that has them; a later revision that changed one would alter it, not
change these.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def municipality(**options: Any) -> sa.Column:
    return sa.Column("municipality", sa.String(32), **options)


def bench(**options: Any) -> sa.Column:
    return sa.Column("bench", sa.String(40), **options)


def bench_key() -> list[sa.Column]:
    """A bench's identity in the tables of what its municipality's gateway reports."""
    return [municipality(primary_key=True), bench(primary_key=True)]


def not_null(type_: Any, *names: str) -> list[sa.Column]:
    """NOT NULL columns of one type, in this order."""
    return [sa.Column(name, type_, nullable=False) for name in names]


def vote_columns(revision: str, *, choice: bool = True) -> list[sa.Column]:
    """A vote's columns as `revision` made them.

    0001: the id alone is the identity (the primary key), times are 32-bit. 0003: the identity is
    (municipality, id), a key the caller names, and times are 64-bit; a capped vote has no choice.
    """
    if revision == "0001":
        time: type[sa.Integer] = sa.Integer
        identity = [
            sa.Column("id", sa.String(80), primary_key=True),
            sa.Column("poll_id", sa.String(64), nullable=False),
            municipality(nullable=False),
        ]
    elif revision == "0003":
        time = sa.BigInteger
        identity = [
            municipality(nullable=False),
            sa.Column("id", sa.String(80), nullable=False),
            sa.Column("poll_id", sa.String(64), nullable=False),
        ]
    else:
        raise ValueError(f"no vote columns of revision {revision}")
    return [
        *identity,
        bench(nullable=False),
        *([sa.Column("choice", sa.String(16), nullable=False)] if choice else []),
        sa.Column("ts", time, nullable=False),
        sa.Column("received_at", time, nullable=False),
    ]
