"""`INSERT … ON CONFLICT DO NOTHING` on SQLite and PostgreSQL alike (both support it; SQLAlchemy
spells it per dialect). Used where "first writer wins" is the rule: webhook receipts, idempotency keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_or_ignore(session: AsyncSession, model: Any, values: dict[str, Any]) -> bool:
    """Insert one row unless it collides with a unique key; whether it was inserted."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(model).values(**values).on_conflict_do_nothing()
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


def insert_or_update(model: Any, dialect: str, values: dict[str, Any], keys: list[str], update: dict[str, Any]) -> Any:
    """`INSERT … ON CONFLICT (keys) DO UPDATE SET update` (its values may refer to the row's own
    columns, and to `excluded`: see `excluded(model, dialect, values)`); returns the statement."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).values(**values).on_conflict_do_update(index_elements=keys, set_=update)
