"""Single-use tickets for a WebSocket handshake (`/graphql?ticket=…`), for clients that cannot put
the access token into `connection_init` (or would rather not keep it in page memory).

A ticket stands for the access token that asked for it, for `TTL_SECONDS`, once: redeeming deletes
it (Redis `GETDEL`, atomic across instances). The token is verified again when the ticket is used,
so a ticket never outlives its token.
"""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from auth.store import Gate

TTL_SECONDS = 30


class TicketStore(Protocol):
    async def issue(self, token: str) -> str:
        """A new ticket that redeems (once) to `token`."""

    async def redeem(self, ticket: str) -> str | None:
        """The token, or None for an unknown, used or expired ticket."""


def _new_ticket() -> str:
    return secrets.token_urlsafe(32)


class MemoryTickets:
    """One process (no Redis configured)."""

    def __init__(self, ttl_seconds: float = TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._tickets: dict[str, tuple[str, float]] = {}

    async def issue(self, token: str) -> str:
        now = time.monotonic()
        for stale in [key for key, (_, expires) in self._tickets.items() if expires <= now]:
            del self._tickets[stale]
        ticket = _new_ticket()
        self._tickets[ticket] = (token, now + self.ttl_seconds)
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        found = self._tickets.pop(ticket, None)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]


class RedisTickets:
    """`gate`: the app's Redis breaker; while it is open a ticket fails at once (503) instead of each
    waiting out a hung Redis."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str, ttl_seconds: int = TTL_SECONDS,
                 gate: Gate | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.gate = gate

    async def _call(self, command: Awaitable[Any]) -> Any:
        if self.gate is not None and not self.gate.allow():
            if inspect.iscoroutine(command):
                command.close()
            raise RedisConnectionError("Redis failed repeatedly; not asking it again for a moment")
        try:
            result = await command
        except (RedisError, OSError, TimeoutError):
            if self.gate is not None:
                self.gate.failure()
            raise
        if self.gate is not None:
            self.gate.success()
        return result

    def _key(self, ticket: str) -> str:
        return f"{self.prefix}ws-ticket:{ticket}"

    async def issue(self, token: str) -> str:
        ticket = _new_ticket()
        await self._call(self.redis.set(self._key(ticket), token, ex=self.ttl_seconds))
        return ticket

    async def redeem(self, ticket: str) -> str | None:
        if not ticket or len(ticket) > 100:
            return None
        found = await self._call(self.redis.getdel(self._key(ticket)))
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)
