"""Where first responses to `Idempotency-Key` requests are kept: Redis when configured, else the
database. Never a process dict: every instance behind the load balancer must see the same keys.

A key moves through two states. `begin()` claims it (`in_progress`, with a short lock) or reports
what is there: the stored response to replay, a request still running, or a different request
that used the key first. `complete()` stores the response for the retention time; `release()`
forgets the claim (the request failed in a way that a retry should redo, e.g. a 5xx).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from sqlalchemy import delete, update

from db.engine import Sessions
from db.idempotency import IdempotencyKey
from db.models import utcnow
from db.upsert import insert_or_ignore

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


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


class IdempotencyStore(Protocol):
    async def begin(self, scope: str, key: str, fingerprint: str) -> Outcome: ...
    async def complete(
        self, scope: str, key: str, token: str, fingerprint: str, response: StoredResponse
    ) -> None: ...
    async def release(self, scope: str, key: str, token: str) -> None: ...


def _judge(state: str, stored_fingerprint: str, fingerprint: str, response: StoredResponse | None) -> Outcome:
    if stored_fingerprint != fingerprint:
        return Mismatch()
    if state == COMPLETED and response is not None:
        return Replay(response)
    return InProgress()


# --- Redis ---------------------------------------------------------------------------------------

# Compare-and-set on the claim token, so a request whose lock expired cannot overwrite or drop a
# newer claim. One key per script: fine on Redis Cluster.
_COMPLETE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if cjson.decode(current)['token'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['token'] == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class RedisIdempotencyStore:
    def __init__(self, redis: Redis, *, ttl_seconds: float, lock_seconds: float, prefix: str = "tandem:") -> None:
        self.redis = redis
        self.key_prefix = f"{prefix}idempotency:"
        self.ttl_ms = int(ttl_seconds * 1000)
        self.lock_ms = int(lock_seconds * 1000)

    def _key(self, scope: str, key: str) -> str:
        digest = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
        return f"{self.key_prefix}{digest}"

    async def begin(self, scope: str, key: str, fingerprint: str) -> Outcome:
        name = self._key(scope, key)
        token = uuid.uuid4().hex
        claim = orjson.dumps({"state": IN_PROGRESS, "fingerprint": fingerprint, "token": token})
        for _ in range(3):  # the key can expire between SET NX and GET; then simply try again
            if await self.redis.set(name, claim, nx=True, px=self.lock_ms):
                return Acquired(token)
            raw = await self.redis.get(name)
            if raw is None:
                continue
            record: dict[str, Any] = orjson.loads(raw)
            response = None
            if record["state"] == COMPLETED:
                headers = [(str(name), str(value)) for name, value in record["headers"]]
                response = StoredResponse(record["status"], headers, base64.b64decode(record["body"]))
            return _judge(record["state"], record["fingerprint"], fingerprint, response)
        return InProgress()

    async def complete(
        self, scope: str, key: str, token: str, fingerprint: str, response: StoredResponse
    ) -> None:
        record = orjson.dumps({
            "state": COMPLETED, "fingerprint": fingerprint, "token": token,
            "status": response.status, "headers": response.headers,
            "body": base64.b64encode(response.body).decode(),
        })
        await self.redis.eval(_COMPLETE, 1, self._key(scope, key), token, record, self.ttl_ms)

    async def release(self, scope: str, key: str, token: str) -> None:
        await self.redis.eval(_RELEASE, 1, self._key(scope, key), token)


# --- database ------------------------------------------------------------------------------------


class DatabaseIdempotencyStore:
    def __init__(self, sessions: Sessions, *, ttl_seconds: float, lock_seconds: float) -> None:
        self.sessions = sessions
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lock = timedelta(seconds=lock_seconds)

    async def begin(self, scope: str, key: str, fingerprint: str) -> Outcome:
        token = uuid.uuid4().hex
        for _ in range(3):
            now = utcnow()
            claim = {"fingerprint": fingerprint, "token": token, "state": IN_PROGRESS, "status_code": None,
                     "headers": None, "body": None, "locked_until": now + self.lock, "expires_at": now + self.ttl}
            async with self.sessions.begin() as session:
                if await insert_or_ignore(session, IdempotencyKey, {"scope": scope, "key": key, **claim}):
                    return Acquired(token)
                row = await session.get(IdempotencyKey, (scope, key), populate_existing=True)
                if row is None:
                    continue  # removed meanwhile (expired and cleaned up): claim it afresh
                dead = row.expires_at <= now or (row.state == IN_PROGRESS and row.locked_until <= now)
                if not dead:
                    response = None
                    if row.state == COMPLETED and row.status_code is not None:
                        headers = [(str(name), str(value)) for name, value in row.headers or []]
                        response = StoredResponse(row.status_code, headers, row.body or b"")
                    return _judge(row.state, row.fingerprint, fingerprint, response)
                # Expired, or its first request died holding the lock: take it over, unless
                # another retry does so first (then the token no longer matches).
                taken = await session.execute(
                    update(IdempotencyKey)
                    .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key,
                           IdempotencyKey.token == row.token)
                    .values(**claim)
                )
                if taken.rowcount:  # type: ignore[attr-defined]
                    return Acquired(token)
        return InProgress()

    async def complete(
        self, scope: str, key: str, token: str, fingerprint: str, response: StoredResponse
    ) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key, IdempotencyKey.token == token)
                .values(state=COMPLETED, status_code=response.status, headers=[list(h) for h in response.headers],
                        body=response.body, expires_at=utcnow() + self.ttl)
            )

    async def release(self, scope: str, key: str, token: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                delete(IdempotencyKey)
                .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key, IdempotencyKey.token == token)
            )


async def delete_expired(sessions: Sessions) -> int:
    """Housekeeping for the database store (Redis expires keys by itself)."""
    async with sessions.begin() as session:
        result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
