"""`Query.rateLimit`: the caller's cost budget, read from what the limiter already charged (free)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.types import Info

from resolvers.context import Context
from resolvers.rate_limit import rate_limit_status
from schema.directives import FREE


@strawberry.type(description="Your query-cost budget: a bucket of points that refills at `restoreRate` a second.")
class RateLimit:
    tier: str = strawberry.field(description="anonymous, user, service or admin.")
    limit: int = strawberry.field(description="Points the bucket holds when full.")
    remaining: int = strawberry.field(description="Points left after this query was charged.")
    restore_rate: float = strawberry.field(description="Points regained each second.")
    cost: int = strawberry.field(description="What this query was charged (before any refund).")
    reset_at: datetime = strawberry.field(description="When the bucket will be full again.")


def _rate_limit(info: Info[Context, Any]) -> RateLimit | None:
    status = rate_limit_status(info.context)
    if status is None:
        return None
    return RateLimit(
        tier=status.tier, limit=status.limit, remaining=status.remaining, restore_rate=status.restore_rate,
        cost=status.cost, reset_at=status.reset_at,
    )


rate_limit = strawberry.field(
    resolver=_rate_limit,
    description="Your rate-limit state; reading it costs nothing. Null when limits are off.",
    directives=[FREE],
)
