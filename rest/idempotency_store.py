"""Where first responses to `Idempotency-Key` requests are kept: the database, in the request's own
transaction, so that a key's answer and the effects it stands for commit together (Stripe's design).

`claim()` opens one transaction for the whole request and looks the key up in it. It finds the
stored answer (`Replay`), a different request under the same key (`Mismatch`), or nothing: then it
inserts the key's row and the request runs inside that transaction (`db/request_transaction.py`:
every session the request opens joins it as a savepoint), and `Claim.commit(response)` stores the
answer and commits everything at once. A process that dies before that commit leaves nothing behind,
neither effects nor key, so the client's retry runs once; after it, the retry gets the answer.

A retry that arrives while the first still runs waits on the first's uncommitted row (PostgreSQL's
unique index; SQLite's write lock) for at most `wait_seconds`, then gets the stored answer, or
`InProgress` if the first is still running. No claim ever has to expire for a retry to proceed.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, event, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.engine import Sessions
from db.idempotency import IdempotencyKey
from db.models import utcnow
from db.request_transaction import RequestTransaction
from db.upsert import insert_or_ignore

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Acquired:
    token: str


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


@dataclass(frozen=True, slots=True)
class InProgress: ...


@dataclass(frozen=True, slots=True)
class Mismatch: ...


Outcome = Acquired | Replay | InProgress | Mismatch


class Claim:
    """What `claim()` found; when `Acquired`, the transaction the request runs in."""

    def __init__(self, outcome: Outcome, transaction: RequestTransaction, scope: str, key: str,
                 ttl: timedelta) -> None:
        self.outcome = outcome
        self.transaction = transaction
        self._scope, self._key, self._ttl = scope, key, ttl

    async def commit(self, response: StoredResponse) -> None:
        """Store `response` under the key and commit it with the request's effects."""
        assert isinstance(self.outcome, Acquired)
        async with self.transaction.begin() as session:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.scope == self._scope, IdempotencyKey.key == self._key,
                       IdempotencyKey.token == self.outcome.token)
                .values(state=COMPLETED, status_code=response.status, headers=[list(h) for h in response.headers],
                        body=response.body, expires_at=utcnow() + self._ttl)
            )
        await self.transaction.commit()


class IdempotencyKeys:
    def __init__(self, engine: AsyncEngine, *, ttl_seconds: float, wait_seconds: float) -> None:
        """`engine`: one whose transactions hold savepoints (`db.engine.make_transaction_engine`)."""
        self.engine = engine
        self.ttl = timedelta(seconds=ttl_seconds)
        self.wait_ms = max(1, int(wait_seconds * 1000))
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", self._sqlite_wait)

    def _sqlite_wait(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={self.wait_ms}")  # how long BEGIN IMMEDIATE waits for the writer
        cursor.close()

    @contextlib.asynccontextmanager
    async def claim(self, scope: str, key: str, fingerprint: str) -> AsyncIterator[Claim]:
        """Rolls back whatever was not committed when the block ends."""
        async with self.engine.connect() as connection:
            transaction = RequestTransaction(connection)
            try:
                outcome = await self._look_up(connection, transaction, scope, key, fingerprint)
                if connection.dialect.name == "postgresql":
                    # The bound is for waiting on the key; the request's own statements wait as they would.
                    await connection.exec_driver_sql("SET LOCAL lock_timeout TO DEFAULT")
            except DBAPIError as exc:
                if not _lock_wait(exc):
                    raise
                outcome = InProgress()
            try:
                yield Claim(outcome, transaction, scope, key, self.ttl)
            finally:
                transaction.close()
                if connection.in_transaction():
                    await connection.rollback()

    async def _look_up(self, connection: AsyncConnection, transaction: RequestTransaction, scope: str, key: str,
                       fingerprint: str) -> Outcome:
        await connection.begin()  # SQLite: BEGIN IMMEDIATE, which waits for the writer
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{self.wait_ms}ms'")
        now = utcnow()
        token = uuid.uuid4().hex
        claim = {"fingerprint": fingerprint, "token": token, "state": IN_PROGRESS, "status_code": None,
                 "headers": None, "body": None, "locked_until": now, "expires_at": now + self.ttl}
        async with transaction.begin() as session:
            # Waits while another transaction holds an uncommitted row for this key.
            if await insert_or_ignore(session, IdempotencyKey, {"scope": scope, "key": key, **claim}):
                return Acquired(token)
            row = await session.get(IdempotencyKey, (scope, key), populate_existing=True)
            if row is None:
                return InProgress()  # deleted in between: rare enough to let the client retry
            if row.state == COMPLETED and row.expires_at > now:
                if row.fingerprint != fingerprint:
                    return Mismatch()
                headers = [(str(name), str(value)) for name, value in row.headers or []]
                return Replay(StoredResponse(row.status_code or 200, headers, row.body or b""))
            # Expired (housekeeping has not got to it), or a claim committed by an older release.
            await session.execute(
                update(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key).values(**claim)
            )
            return Acquired(token)


def _lock_wait(exc: DBAPIError) -> bool:
    """Whether the statement gave up waiting for another request's lock."""
    original = exc.orig
    if getattr(original, "sqlstate", None) == _LOCK_NOT_AVAILABLE or getattr(original, "pgcode", None) == \
            _LOCK_NOT_AVAILABLE:
        return True
    return "database is locked" in str(original)


async def delete_expired(sessions: Sessions) -> int:
    """Housekeeping: answers past their retention."""
    async with sessions.begin() as session:
        result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
