"""The migrations are one chain and build exactly the tables the models describe, on both databases."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import db.collaboration
import db.oauth  # noqa: F401
from db import expiring, idempotency, webhooks  # noqa: F401
from db.engine import make_engine
from db.migrate import alembic_config
from db.models import Base


def test_the_migrations_have_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _compare(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_migrated_tables_match_the_models(database_url: str) -> None:
    assert asyncio.run(_compare(database_url)) == []
