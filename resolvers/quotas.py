"""What one user may own: counted in the transaction that would add one more."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.errors import BadUserInput, LimitExceeded


async def within_quota(
    session: AsyncSession, owner_column: Any, owner_id: int, limit: int, message: str, *, field: str,
    error: type[BadUserInput] = LimitExceeded,
) -> None:
    """`error(message)` when the owner already has `limit` rows of `owner_column`'s table. Concurrent
    creations can pass together by at most their number: the quota bounds growth, it is no constraint."""
    owned = await session.scalar(select(func.count()).where(owner_column == owner_id))
    if (owned or 0) >= limit:
        raise error(message, field=field)
