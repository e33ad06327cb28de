"""Limits for GraphQL over WebSocket, for the subscription endpoint to call.

One `WebSocketLimiter` per app; one `ConnectionLimits` per socket, from `open()`:

    limits = await ws_limiter.open(connection_id, client_address)      # before accepting
    if isinstance(limits, Refusal): refuse the handshake (HTTP 429, or accept and close 4429)
    on connection_init, once the token is verified:
        refusal = await limits.identify(viewer)                          # per-user connection count
        if refusal: close with refusal.close_code, refusal.reason
    on every message received, first of all:
        verdict = limits.message()
        DROP: ignore the message (answer a `subscribe` with an `error` RATE_LIMITED); CLOSE: close
    on subscribe: limits.subscribe(operation id) is False past the maximum: answer `error`
    on complete, or when a subscription ends: limits.unsubscribe(operation id)
    on each keep-alive ping, or every lease / 2 seconds: await limits.renew()
    when the socket closes, however it closes: await limits.close()

A subscription's query cost is charged when it starts by the `CostLimit` extension, like any
operation, provided the context carries the client address (`Context.client_address`); a start
refused there with RATE_LIMITED should be reported back with `limits.strike()`.

Exceeding a limit is a strike: the offending message is dropped or refused. After `strikes` of
them the connection is closed with 4429 (graphql-transport-ws numbers its close codes after HTTP
statuses; 4429 is "too many requests", which its reference client does not retry) and its address
and user are refused for `cool_down_seconds`. The message rate is a token bucket per connection:
`messages_per_second`, with bursts of up to `message_burst` messages.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import Enum

from limits.connection_slots import ConnectionSlots, SlotsUnavailable
from limits.limiter import client_network
from resolvers.context import Viewer

log = logging.getLogger("tandem.limits")

CLOSE_TOO_MANY_REQUESTS = 4429
_NO_LIMIT = 2**31 - 1  # renewing a slot already held never refuses


@dataclass(frozen=True, slots=True)
class WebSocketPolicy:
    messages_per_second: float = 10.0
    message_burst: int = 20
    max_subscriptions: int = 20  # active at once on one connection
    max_connections_per_user: int = 10
    max_connections_per_ip: int = 50
    strikes: int = 3  # limits exceeded before the connection is closed
    cool_down_seconds: float = 60.0
    lease_seconds: float = 60.0  # a connection slot lapses unless renewed within this


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    retry_after: int  # seconds
    close_code: int = CLOSE_TOO_MANY_REQUESTS


class Verdict(Enum):
    ACCEPT = "accept"
    DROP = "drop"  # over the rate: ignore this message (a strike)
    CLOSE = "close"  # struck out: close with CLOSE_TOO_MANY_REQUESTS


class WebSocketLimiter:
    def __init__(self, policy: WebSocketPolicy, slots: ConnectionSlots) -> None:
        self.policy = policy
        self.slots = slots

    async def open(self, connection_id: str, client_address: str | None) -> ConnectionLimits | Refusal:
        """Before accepting a socket: the address's cool-down and connection count."""
        scope = f"ip:{client_network(client_address)}"
        refusal = await _admit(self, scope, connection_id, self.policy.max_connections_per_ip, "address")
        if refusal is not None:
            return refusal
        return ConnectionLimits(self, connection_id, scope)


class ConnectionLimits:
    def __init__(self, limiter: WebSocketLimiter, connection_id: str, address_scope: str) -> None:
        self.limiter = limiter
        self.policy = limiter.policy
        self.connection_id = connection_id
        self.scopes = [address_scope]
        self.subscriptions: set[str] = set()
        self.strikes = 0
        self._tokens = float(self.policy.message_burst)
        self._refilled_at = time.monotonic()
        self._closed = False

    async def identify(self, viewer: Viewer | None) -> Refusal | None:
        """After connection_init: the user's cool-down and connection count (anonymous: none)."""
        if viewer is None or viewer.user_id is None:
            return None
        scope = f"user:{viewer.user_id}"
        refusal = await _admit(self.limiter, scope, self.connection_id, self.policy.max_connections_per_user, "user")
        if refusal is None:
            self.scopes.append(scope)
        return refusal

    def message(self) -> Verdict:
        """Spend one message from this connection's bucket."""
        now = time.monotonic()
        self._tokens = min(float(self.policy.message_burst),
                           self._tokens + (now - self._refilled_at) * self.policy.messages_per_second)
        self._refilled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return Verdict.ACCEPT
        return self.strike()

    def subscribe(self, operation_id: str) -> bool:
        """Count an active subscription; False (and a strike) past the maximum."""
        if operation_id not in self.subscriptions and len(self.subscriptions) >= self.policy.max_subscriptions:
            self.strike()
            return False
        self.subscriptions.add(operation_id)
        return True

    def unsubscribe(self, operation_id: str) -> None:
        self.subscriptions.discard(operation_id)

    def strike(self) -> Verdict:
        """Record one limit exceeded; CLOSE once there have been `strikes` of them."""
        self.strikes += 1
        return Verdict.CLOSE if self.strikes >= self.policy.strikes else Verdict.DROP

    @property
    def struck_out(self) -> bool:
        return self.strikes >= self.policy.strikes

    async def renew(self) -> None:
        for scope in self.scopes:
            try:
                await self.limiter.slots.take(scope, self.connection_id, _NO_LIMIT, self.policy.lease_seconds)
            except SlotsUnavailable as exc:
                log.warning("websocket slots unavailable (%s)", exc)

    async def close(self) -> None:
        """Free the connection's slots; after a strike-out, cool its address and user down."""
        if self._closed:
            return
        self._closed = True
        for scope in self.scopes:
            try:
                await self.limiter.slots.release(scope, self.connection_id)
                if self.struck_out:
                    await self.limiter.slots.cool_down(scope, self.policy.cool_down_seconds)
            except SlotsUnavailable as exc:
                log.warning("websocket slots unavailable (%s)", exc)


async def _admit(limiter: WebSocketLimiter, scope: str, connection_id: str, limit: int, what: str) -> Refusal | None:
    policy = limiter.policy
    try:
        if (left := await limiter.slots.cooling(scope)) > 0:
            return Refusal(f"Too many requests from this {what}; try again later.", math.ceil(left))
        if not await limiter.slots.take(scope, connection_id, limit, policy.lease_seconds):
            return Refusal(f"Too many connections for this {what} (at most {limit}).", 1)
    except SlotsUnavailable as exc:
        log.warning("websocket slots unavailable (%s); letting the connection in", exc)
    return None
