"""Claiming work rows so that, with several instances, each row is handled by exactly one.

A claim stamps rows with a lease (`locked_until`, `lock_token`) in a single UPDATE whose inner
SELECT locks with `FOR UPDATE SKIP LOCKED` on PostgreSQL: two instances claiming at once skip
each other's rows instead of waiting or taking the same ones. SQLite has no row locks, but it has
one writer at a time, and one UPDATE statement runs start to end under the write lock, so the
second claimer sees the first one's lease and skips those rows. The same statement runs on both.

A worker that dies keeps its lease until it expires; then the rows are due again and another
instance takes them (at-least-once). The lease must outlast one unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession


def new_token() -> str:
    return uuid.uuid4().hex


def free(model: Any, now: datetime) -> ColumnElement[bool]:
    """Rows that no live lease holds."""
    return or_(model.locked_until.is_(None), model.locked_until < now)


async def claim(
    session: AsyncSession,
    model: Any,
    conditions: Sequence[ColumnElement[bool]],
    order_by: Sequence[Any],
    *,
    limit: int,
    now: datetime,
    lease: timedelta,
    token: str,
) -> list[int]:
    """Lease up to `limit` free rows of `model` that meet `conditions`; their ids, in `order_by` order.

    Runs in the caller's transaction; the lease counts once that commits.
    """
    # A plain read first: an idle poll then never takes SQLite's write lock.
    waiting = await session.scalar(select(model.id).where(*conditions, free(model, now)).limit(1))
    if waiting is None:
        return []
    candidates = (
        select(model.id)
        .where(*conditions, free(model, now))
        .order_by(*order_by)
        .limit(limit)
        .with_for_update(skip_locked=True, of=model)
    )
    claimed = await session.execute(
        update(model)
        # The lease condition again: the outer statement must not trust a stale inner snapshot.
        .where(model.id.in_(candidates.scalar_subquery()), free(model, now))
        .values(locked_until=now + lease, lock_token=token)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    ids = set(claimed.scalars().all())
    if not ids:
        return []
    ordered = await session.scalars(select(model.id).where(model.id.in_(ids)).order_by(*order_by))
    return list(ordered.all())
