"""What one user may own: counted in the transaction that would add one more."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers.errors import LimitExceeded


async def within_quota(session: AsyncSession, model: Any, owner_column: Any, owner_id: int, limit: int,
                       what: str) -> None:
    """`LimitExceeded` when the owner already has `limit` rows of `model`. Concurrent creations can
    pass together by at most their number: the quota bounds growth, it is not a unique constraint."""
    owned = await session.scalar(select(func.count()).select_from(model).where(owner_column == owner_id))
    if (owned or 0) >= limit:
        raise LimitExceeded(f"You own {limit} {what}, the most allowed; delete some first.", field="title")
