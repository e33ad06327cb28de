"""`Store` in the database (db/expiring.py), so sign-in, attempt limits and registration limits need
no Redis: every instance sees the same entries, and an outage of Redis stops none of them.

Each operation is one statement (or one short transaction), atomic on both databases: `incr` is an
upsert that restarts an expired counter, `pop` a `DELETE … RETURNING`. Expired rows are ignored as
they are met and deleted by housekeeping (`delete_expired`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Integer, Text, case, cast, delete, func, select, update

from db.engine import Sessions
from db.expiring import ExpiringEntry, WindowHit
from db.models import utcnow
from db.upsert import insert_or_update

HIT_RETENTION = timedelta(days=7)  # longer than any sliding window we keep


class DatabaseStore:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def get(self, key: str) -> str | None:
        async with self.sessions() as session:
            return await session.scalar(select(ExpiringEntry.value).where(
                ExpiringEntry.key == key, ExpiringEntry.expires_at > utcnow()))

    async def put(self, key: str, value: str, ttl_seconds: int) -> None:
        expires = utcnow() + timedelta(seconds=max(1, ttl_seconds))
        async with self.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            await session.execute(insert_or_update(
                ExpiringEntry, dialect, {"key": key, "value": value, "expires_at": expires}, ["key"],
                {"value": value, "expires_at": expires}))

    async def pop(self, key: str) -> str | None:
        async with self.sessions.begin() as session:
            row = (await session.execute(
                delete(ExpiringEntry).where(ExpiringEntry.key == key)
                .returning(ExpiringEntry.value, ExpiringEntry.expires_at))).first()
        return row.value if row is not None and _aware(row.expires_at) > utcnow() else None

    async def delete(self, key: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(ExpiringEntry).where(ExpiringEntry.key == key))

    async def incr(self, key: str, ttl_seconds: int) -> int:
        now = utcnow()
        expires = now + timedelta(seconds=max(1, ttl_seconds))
        expired = ExpiringEntry.expires_at <= now
        async with self.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            statement = insert_or_update(
                ExpiringEntry, dialect, {"key": key, "value": "1", "expires_at": expires}, ["key"],
                {"value": case((expired, "1"), else_=cast(cast(ExpiringEntry.value, Integer) + 1, Text)),
                 "expires_at": case((expired, expires), else_=ExpiringEntry.expires_at)},
            ).returning(ExpiringEntry.value)
            return int((await session.execute(statement)).scalar_one())

    async def decr(self, key: str) -> None:
        current = cast(ExpiringEntry.value, Integer)
        async with self.sessions.begin() as session:
            await session.execute(
                update(ExpiringEntry).where(ExpiringEntry.key == key, ExpiringEntry.expires_at > utcnow())
                .values(value=cast(case((current > 0, current - 1), else_=0), Text)))

    async def ttl(self, key: str) -> int:
        async with self.sessions() as session:
            expires = await session.scalar(select(ExpiringEntry.expires_at).where(ExpiringEntry.key == key))
        if expires is None:
            return 0
        left = (_aware(expires) - utcnow()).total_seconds()
        return max(1, int(left)) if left > 0 else 0

    async def any_exists(self, keys: list[str]) -> bool:
        if not keys:
            return False
        async with self.sessions() as session:
            found = await session.scalar(select(func.count()).select_from(ExpiringEntry).where(
                ExpiringEntry.key.in_(keys), ExpiringEntry.expires_at > utcnow()))
        return bool(found)

    async def hit(self, key: str, window_seconds: int) -> tuple[int, float]:
        now = utcnow()
        start = now - timedelta(seconds=window_seconds)
        async with self.sessions.begin() as session:
            await session.execute(delete(WindowHit).where(WindowHit.key == key, WindowHit.at <= start))
            session.add(WindowHit(key=key, at=now))
            await session.flush()
            count, oldest = (await session.execute(
                select(func.count(), func.min(WindowHit.at)).where(WindowHit.key == key, WindowHit.at > start)
            )).one()
        first = _aware(oldest) if oldest is not None else now
        return int(count), max(0.0, (first + timedelta(seconds=window_seconds) - now).total_seconds())


def _aware(moment: datetime | str) -> datetime:
    """Raw rows (RETURNING, aggregates) skip the column type on SQLite: parse what comes back as text."""
    from datetime import UTC

    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def delete_expired(sessions: Sessions) -> None:
    """Housekeeping."""
    now = utcnow()
    async with sessions.begin() as session:
        await session.execute(delete(ExpiringEntry).where(ExpiringEntry.expires_at <= now))
        await session.execute(delete(WindowHit).where(WindowHit.at <= now - HIT_RETENTION))
