"""The revocation list: access tokens (by `jti`) and whole sessions (by `sid`) that must stop working now.

Access tokens are JWTs checked without a database read, so revoking one means remembering its `jti`
until it would have expired anyway. Revoking a session (a refresh-token family) remembers its `sid`
for one access-token lifetime: no token of a revoked session can be issued afterwards, so by then
every token that carries it has expired.

With Redis, the list lives there (shared by every instance) and each process also follows it in
memory (`auth/revocation_replica.py`): while that copy is in sync a check costs no round trip;
otherwise the check asks Redis, and what happens when Redis does not answer is `fail_open`'s call.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from auth.revocation_replica import REVOKED, RevocationReplica
from auth.store import Store
from auth.tokens import LEEWAY_SECONDS

log = logging.getLogger("tandem.auth")


class RevocationList:
    def __init__(
        self, store: Store, *, access_token_ttl_seconds: int, fail_open: bool = True,
        replica: RevocationReplica | None = None, timeout_seconds: float = 0.5,
    ) -> None:
        self.store = store
        # A hung Redis must not hold every signed-in request: past this, Redis "does not answer".
        self.timeout_seconds = timeout_seconds
        self.replica = replica
        # Redis down: accept signed, unexpired tokens (they live minutes) rather than refuse everyone.
        self.fail_open = fail_open
        # A token minted in the instant the session was revoked still expires within this.
        self.session_ttl = access_token_ttl_seconds + 2 * LEEWAY_SECONDS

    async def start(self) -> None:
        if self.replica is not None:
            await self.replica.start()

    async def close(self) -> None:
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
        if self.replica is not None and (known := self.replica.lookup(names)) is not None:
            return known
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self.store.any_exists([REVOKED + name for name in names])
        except (RedisError, OSError, TimeoutError) as exc:
            if not self.fail_open:
                raise RevocationUnavailable("The revocation list cannot be read; try again shortly.") from exc
            log.warning("revocation list unavailable (%s); accepting the token unchecked", exc)
            return False

    async def _revoke(self, name: str, ttl_seconds: int) -> None:
        if self.replica is not None:
            await self.replica.revoke(name, ttl_seconds)  # the key, and the news to every instance
        else:
            await self.store.put(REVOKED + name, "1", ttl_seconds)


class RevocationUnavailable(Exception):
    """The shared revocation list (Redis) does not answer and the server is set to fail closed."""
