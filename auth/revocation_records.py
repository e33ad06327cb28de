"""Revocations in the database (db/expiring.Revocation): the copy that outlives a Redis outage.

A revocation is written here first, then to Redis for the other instances' memory. When Redis cannot
be asked, the check asks the database instead; when a replica gets in sync again it first puts back
into Redis what was revoked while Redis was away (`unexpired`).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, delete, func, literal, select

from db.engine import Sessions
from db.expiring import Revocation
from db.models import UTCDateTime, utcnow
from db.upsert import insert_or_update


class RevocationRecords:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def add(self, name: str, ttl_seconds: int) -> None:
        expires = utcnow() + timedelta(seconds=max(1, ttl_seconds))
        async with self.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            # A later, longer revocation of the same name wins; a shorter one never shortens it.
            later = literal(expires, UTCDateTime())
            await session.execute(insert_or_update(
                Revocation, dialect, {"name": name, "expires_at": expires}, ["name"],
                {"expires_at": case((Revocation.expires_at < later, later), else_=Revocation.expires_at)}))

    async def any_revoked(self, names: list[str]) -> bool:
        async with self.sessions() as session:
            found = await session.scalar(select(func.count()).select_from(Revocation).where(
                Revocation.name.in_(names), Revocation.expires_at > utcnow()))
        return bool(found)

    async def unexpired(self) -> list[tuple[str, int]]:
        """Every revocation still in force, with its seconds left."""
        now = utcnow()
        async with self.sessions() as session:
            rows = (await session.execute(select(Revocation.name, Revocation.expires_at)
                                          .where(Revocation.expires_at > now))).all()
        return [(name, max(1, int((expires - now).total_seconds()))) for name, expires in rows]


async def delete_expired(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await session.execute(delete(Revocation).where(Revocation.expires_at <= utcnow()))
