"""A subscription is priced and charged once, when it starts, by the same `CostLimit` extension:
here on a small schema of its own (Tandem's subscriptions are being built elsewhere), run through
Strawberry's own `subscribe`, as the WebSocket endpoint will."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from limits.buckets import MemoryBuckets, Policy
from limits.cost_limit import CostLimit, CostLimitConfig
from limits.limiter import Limiter, Tiers
from resolvers.context import Context, Viewer

POLICY = Policy("user", capacity=15, restore_rate=0.001)


@strawberry.type
class Tick:
    n: int


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Tick, None]:
        for n in range(3):
            yield Tick(n=n)


def _schema(buckets: MemoryBuckets) -> strawberry.Schema:
    config = CostLimitConfig(Limiter(buckets, Tiers(POLICY, POLICY, POLICY, POLICY)))
    return strawberry.Schema(query=Query, subscription=Subscription, extensions=[lambda: CostLimit(config)])


def _context() -> Context:
    context = Context(None, None, Viewer(1, frozenset()), "test")  # type: ignore[arg-type]
    context.client_address = "198.51.100.7"
    return context


async def _results(schema: strawberry.Schema) -> list[Any]:
    stream = await schema.subscribe("subscription { ticks { n } }", context_value=_context())
    return [result async for result in stream]  # type: ignore[union-attr]


async def test_a_subscription_is_charged_once_when_it_starts() -> None:
    buckets = MemoryBuckets()
    results = await _results(_schema(buckets))
    assert [r.data for r in results] == [{"ticks": {"n": n}} for n in range(3)]
    # A subscription root field costs 10 for what it returns.
    assert results[0].extensions["cost"]["requestedQueryCost"] == 10
    left = await buckets.charge("user:1:client:-", 0, POLICY)
    assert round(left.available) == 15 - 10  # three events, one charge, no refund


async def test_a_subscription_past_the_budget_does_not_start() -> None:
    buckets = MemoryBuckets()
    schema = _schema(buckets)
    await _results(schema)  # 5 left
    [refused] = await _results(schema)
    assert refused.data is None
    assert refused.errors[0].original_error.code == "RATE_LIMITED"
