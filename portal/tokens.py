"""API tokens: one per municipality (a gateway's) or an admin token; stored only as a SHA-256 hash.

A token is 32 random bytes, so a plain hash is enough: nothing can be guessed from it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from klupa import contract
from portal.db import reading, tokens, writing

PREFIX = "klp_"


class TokenError(ValueError):
    """A token command cannot be done; the message names why."""


@dataclass(frozen=True)
class TokenInfo:
    id: int
    municipality: str | None
    admin: bool
    hint: str
    created_at: int
    revoked_at: int | None

    @property
    def scope(self) -> str:
        return "admin" if self.admin else str(self.municipality)


@dataclass(frozen=True)
class Caller:
    """Who an API request comes from."""

    token_id: int
    municipality: str | None
    admin: bool


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, municipality: str | None = None, admin: bool = False) -> str:
    """A new token for `municipality`, or the admin token when `admin`; returned once, stored hashed."""
    if admin == (municipality is not None):
        raise TokenError("give either a municipality or --admin")
    if municipality is not None and not contract.MUNICIPALITY_RE.fullmatch(municipality):
        raise TokenError(
            f"{municipality!r} is not a municipality id ({contract.MUNICIPALITY_RE.pattern})"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    with writing(engine) as conn:
        conn.execute(
            tokens.insert().values(
                municipality=municipality,
                admin=admin,
                token_hash=token_hash(token),
                hint=token[: len(PREFIX) + 6],
                created_at=int(time.time()),
                revoked_at=None,
            )
        )
    return token


def list_tokens(engine: Engine, include_revoked: bool = False) -> list[TokenInfo]:
    query = select(tokens).order_by(tokens.c.id)
    if not include_revoked:
        query = query.where(tokens.c.revoked_at.is_(None))
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    return [
        TokenInfo(r.id, r.municipality, bool(r.admin), r.hint, r.created_at, r.revoked_at)
        for r in rows
    ]


ID_RANGE = (-(2**63), 2**63 - 1)  # any token id fits; SQLite cannot be asked beyond 64 bits


def revoke_token(engine: Engine, token_id: int) -> TokenInfo:
    low, high = ID_RANGE
    if not low <= token_id <= high:  # no token has it, and no database could be asked
        raise _unknown(token_id)
    with writing(engine) as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise _unknown(token_id)
        if row.revoked_at is not None:
            raise TokenError(f"token {token_id} is already revoked")
        now = int(time.time())
        conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now))
    return TokenInfo(row.id, row.municipality, bool(row.admin), row.hint, row.created_at, now)


def _unknown(token_id: int) -> TokenError:
    return TokenError(f"no token with id {token_id}; see `klupa portal token list`")


def rotate_token(engine: Engine, token_id: int) -> str:
    """Revoke token `token_id` and return a new one with the same scope."""
    old = revoke_token(engine, token_id)
    return create_token(engine, old.municipality, old.admin)


def find_caller(engine: Engine, token: str) -> Caller | None:
    """The caller a presented token belongs to, or None if it is unknown or revoked."""
    with reading(engine) as conn:
        row = conn.execute(
            select(tokens.c.id, tokens.c.municipality, tokens.c.admin).where(
                tokens.c.token_hash == token_hash(token), tokens.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    return Caller(row.id, row.municipality, bool(row.admin))
