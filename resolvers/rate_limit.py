"""The caller's rate-limit state for this request, as `Query.rateLimit` reports it.

The cost limiter (limits/cost_limit.py) charges the request before any resolver runs and leaves its
verdict in the context; reading it here costs nothing more. Without a limiter there is none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from resolvers.context import Context

_KEY = "rate_limit"
# Set in `context.extras` when the answer holds something about this caller alone (read by the transport).
PER_CALLER = "per_caller"


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    tier: str
    limit: int  # the bucket's capacity, in cost points
    remaining: int  # points left once this request was charged
    restore_rate: float  # points regained per second
    cost: int  # what this request was charged (its requested cost)
    reset_at: datetime  # when the bucket will be full again


def set_rate_limit_status(ctx: Context, status: Callable[[], RateLimitStatus]) -> None:
    """Made only if `Query.rateLimit` asks (few requests do; the date costs a few µs)."""
    ctx.extras[_KEY] = status


def rate_limit_status(ctx: Context) -> RateLimitStatus | None:
    ctx.extras[PER_CALLER] = True  # the answer now holds this caller's budget: no shared cache may keep it
    status = ctx.extras.get(_KEY)
    if callable(status):
        status = ctx.extras[_KEY] = status()
    return status if isinstance(status, RateLimitStatus) else None
