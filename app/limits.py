"""The query limits and the cost-based rate limiter, chosen from the settings.

Redis configured: buckets in Redis, shared by every instance; otherwise in this process. Documents
are validated once and cached by the persisted-queries document cache (its extension comes after
these), so `QueryLimits` validates nothing itself, and with limits off there is no extension here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster

from app.metrics import Metrics
from app.settings import RateTier, Settings
from limits.breaker import Breaker
from limits.buckets import Buckets, MemoryBuckets, Policy
from limits.connection_slots import ConnectionSlots, MemorySlots, RedisSlots
from limits.cost_limit import CostLimit, CostLimitConfig
from limits.fallback_buckets import FallbackBuckets
from limits.limiter import Limiter, Tiers
from limits.query_limits import QueryLimits, QueryLimitsConfig, StaticLimits
from limits.redis_buckets import RedisBuckets
from limits.websocket import WebSocketLimiter, WebSocketPolicy
from persisted_queries.document_cache import DOCUMENT_MEMO


@dataclass(frozen=True, slots=True)
class AppLimits:
    """Schema extension factories (put them before `ParserCache`), the limiter to close at shutdown,
    and the WebSocket limits for the subscription endpoint (see limits/websocket.py)."""

    extensions: list[Any]
    limiter: Limiter | None
    websocket: WebSocketLimiter
    static: StaticLimits | None = None  # what the extensions apply, for app/prepared.py
    cost: CostLimitConfig | None = None


def _policy(name: str, tier: RateTier) -> Policy:
    return Policy(name, tier.capacity, tier.restore_rate)


def tiers(settings: Settings) -> Tiers:
    configured = settings.rate_tiers
    return Tiers(
        anonymous=_policy("anonymous", configured.anonymous), user=_policy("user", configured.user),
        service=_policy("service", configured.service), admin=_policy("admin", configured.admin),
    )


def websocket_limiter(settings: Settings, redis: Redis | RedisCluster | None) -> WebSocketLimiter:
    policy = WebSocketPolicy(
        messages_per_second=settings.ws_messages_per_second, message_burst=settings.ws_message_burst,
        max_subscriptions=settings.ws_max_subscriptions, max_connections_per_user=settings.ws_max_connections_per_user,
        max_connections_per_ip=settings.ws_max_connections_per_ip, strikes=settings.ws_strikes,
        cool_down_seconds=settings.ws_cool_down_seconds,
    )
    slots: ConnectionSlots = (
        RedisSlots(redis, timeout=settings.rate_limit_redis_timeout_seconds, prefix=settings.redis_prefix)
        if redis is not None else MemorySlots()
    )
    return WebSocketLimiter(policy, slots)


def build_limits(settings: Settings, redis: Redis | RedisCluster | None, metrics: Metrics,
                 breaker: Breaker | None = None) -> AppLimits:
    websocket = websocket_limiter(settings, redis)
    if not settings.limits_enabled:
        return AppLimits([], None, websocket)
    buckets: Buckets
    if redis is not None:
        latency = metrics.redis_latency.labels("rate_limit_charge")
        redis_buckets = RedisBuckets(redis, timeout=settings.rate_limit_redis_timeout_seconds,
                                     prefix=settings.redis_prefix, on_latency=latency.observe, breaker=breaker)
        # Failing open, an outage falls back to this instance's share rather than to no limit at all.
        buckets = FallbackBuckets(redis_buckets, instances=settings.instances,
                                  on_fallback=metrics.rate_limiter_unavailable.inc) \
            if settings.rate_limit_fail_open else redis_buckets
    else:
        buckets = MemoryBuckets()
    limiter = Limiter(
        buckets, tiers(settings), fail_open=settings.rate_limit_fail_open,
        on_unavailable=metrics.rate_limiter_unavailable.inc,
    )
    static = QueryLimitsConfig(StaticLimits(
        max_depth=settings.max_query_depth, max_aliases=settings.max_query_aliases,
        max_tokens=settings.max_query_tokens, max_directives=settings.max_query_directives,
        max_root_fields=settings.max_root_fields,
    ), document_memo=DOCUMENT_MEMO)
    cost = CostLimitConfig(limiter, max_cost=settings.max_query_cost, document_memo=DOCUMENT_MEMO)
    return AppLimits([lambda: QueryLimits(static), lambda: CostLimit(cost)], limiter, websocket, static.limits, cost)
