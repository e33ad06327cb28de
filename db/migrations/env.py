"""Alembic environment: runs migrations over the async engine for the URL given by `db.migrate`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import db.collaboration
import db.oauth  # noqa: F401 - registers the OAuth tables on Base.metadata
from db import expiring, idempotency, webhooks  # noqa: F401  (their tables live on Base.metadata too)
from db.engine import make_engine
from db.models import Base

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = make_engine(config.attributes["database_url"])
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run `tandem db upgrade`.")
asyncio.run(_run_online())
