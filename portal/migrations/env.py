"""Alembic environment: runs on the engine that `portal.db.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine


def run() -> None:
    engine: Engine | None = context.config.attributes.get("engine")
    if engine is None:
        url = context.config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no database given to the portal's migrations")
        engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
