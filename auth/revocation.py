"""The revocation list: access tokens (by `jti`) and whole sessions (by `sid`) that must stop working now.

Access tokens are JWTs checked without a database read, so revoking one means remembering its `jti`
until it would have expired anyway. Revoking a session (a refresh-token family) remembers its `sid`
for one access-token lifetime: no token of a revoked session can be issued afterwards, so by then
every token that carries it has expired.

A revocation is written to the database first (`auth/revocation_records.py`), so it stands whatever
Redis does. Without Redis (one instance) this process holds every revocation in memory, loaded from
the database at start. With Redis, it also goes there, and every instance follows the list in memory
(`auth/revocation_replica.py`): while that copy is in sync a check costs no round trip; otherwise the
check asks Redis, then the database, and only when neither answers is it `fail_open`'s call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from auth.revocation_records import RevocationRecords
from auth.revocation_replica import REVOKED, RevocationReplica
from auth.store import Gate, Store
from auth.tokens import LEEWAY_SECONDS

log = logging.getLogger("tandem.auth")


class RevocationList:
    def __init__(
        self, store: Store | None, *, access_token_ttl_seconds: int, fail_open: bool = True,
        replica: RevocationReplica | None = None, timeout_seconds: float = 0.5,
        records: RevocationRecords | None = None, gate: Gate | None = None,
    ) -> None:
        """`store`: Redis (with `replica`), where other instances look; `records`: the database."""
        self.store = store
        self.records = records
        self.gate = gate  # the app's Redis breaker: while open, go straight to the database
        # A hung Redis must not hold every signed-in request: past this, Redis "does not answer".
        self.timeout_seconds = timeout_seconds
        self.replica = replica
        # Neither Redis nor the database answers: accept signed, unexpired tokens (they live minutes)
        # rather than refuse everyone.
        self.fail_open = fail_open
        # A token minted in the instant the session was revoked still expires within this.
        self.session_ttl = access_token_ttl_seconds + 2 * LEEWAY_SECONDS
        self._local: dict[str, float] = {}  # without Redis: name -> time.monotonic() it ends
        self._loaded = records is None  # without Redis: memory holds every revocation once loaded
        self._loader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.replica is not None:
            await self.replica.start()
        elif not self._loaded and not await self._load_once():
            # Again in the background: a database that is down at start-up must not stop the app starting.
            self._loader = asyncio.create_task(self._load(), name="tandem-revocations-load")

    async def _load_once(self) -> bool:
        assert self.records is not None
        try:
            for name, ttl in await self.records.unexpired():
                self._remember(name, ttl)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not load the revocation list (%s); asking the database per request", exc)
            return False
        self._loaded = True
        return True

    async def _load(self, retry_seconds: float = 1.0) -> None:
        await asyncio.sleep(retry_seconds)
        if not await self._load_once():
            self._loader = asyncio.create_task(self._load(retry_seconds), name="tandem-revocations-load")

    async def close(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        if self.replica is not None:
            await self.replica.close()

    async def revoke_token(self, jti: str, expires_at: int) -> None:
        ttl = expires_at - int(time.time()) + LEEWAY_SECONDS
        if ttl > 0:
            await self._revoke(f"jti:{jti}", ttl)

    async def revoke_sessions(self, session_ids: list[str]) -> None:
        for sid in session_ids:
            await self._revoke(f"sid:{sid}", self.session_ttl)

    async def is_revoked(self, jti: str, sid: str | None) -> bool:
        """Whether the token is revoked; `RevocationUnavailable` when that cannot be known and we fail closed."""
        names = [f"jti:{jti}"] + ([f"sid:{sid}"] if sid else [])
        failure: Exception | None = None
        if self.replica is None:
            now = time.monotonic()
            if any(self._local.get(name, 0.0) > now for name in names):
                return True
            if self._loaded:
                return False
        elif (known := self.replica.lookup(names)) is not None:
            return known
        elif self.gate is None or self.gate.allow():
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    assert self.store is not None
                    found = await self.store.any_exists([REVOKED + name for name in names])
            except (RedisError, OSError, TimeoutError) as exc:
                failure = exc
                if self.gate is not None:
                    self.gate.failure()
            else:
                if self.gate is not None:
                    self.gate.success()
                return found
        else:
            failure = ConnectionError("Redis failed repeatedly; not asking it for a moment")
        if self.records is not None:
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    return await self.records.any_revoked(names)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                failure = failure or exc
        if not self.fail_open:
            raise RevocationUnavailable("The revocation list cannot be read; try again shortly.") from failure
        log.warning("revocation list unavailable (%s); accepting the token unchecked", failure)
        return False

    async def _revoke(self, name: str, ttl_seconds: int) -> None:
        if self.records is not None:
            await self.records.add(name, ttl_seconds)  # stands even if Redis does not answer below
        if self.replica is None:
            self._remember(name, ttl_seconds)
            return
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self.replica.revoke(name, ttl_seconds)  # the key, and the news to every instance
        except (RedisError, OSError, TimeoutError) as exc:
            if self.records is None:
                raise
            # Recorded in the database: other instances find it there while their copies are out of
            # sync, and it goes to Redis when they get in sync again.
            self.replica.remember(name, ttl_seconds)
            log.warning("revocation of %s reached the database but not Redis (%s)", name, exc)

    def _remember(self, name: str, ttl_seconds: float) -> None:
        expires = time.monotonic() + ttl_seconds
        if expires > self._local.get(name, 0.0):
            self._local[name] = expires
        if len(self._local) > 4096:  # bounded work: drop what has ended
            now = time.monotonic()
            self._local = {n: end for n, end in self._local.items() if end > now}


class RevocationUnavailable(Exception):
    """Neither Redis nor the database could say whether a token is revoked, and the server fails closed."""
