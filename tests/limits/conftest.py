"""Fixtures for the limits tests: an app with chosen limits, a probe that records every resolver
call (to show that a refused query ran none), and the Redis database these tests own (number 4,
keys under `tandem:`), which an unreachable Redis fails loudly rather than skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from graphql import GraphQLResolveInfo
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from strawberry.extensions import SchemaExtension

from app.main import create_app
from app.settings import RateTier, RateTiers, Settings
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE

LIMITS_REDIS_URL = os.environ.get("TANDEM_TEST_LIMITS_REDIS_URL", "redis://127.0.0.1:6379/4")
# Slow enough that no test sees a bucket refill while it runs.
STILL = 0.001


def seconds_to_restore(points: float) -> range:
    """What `Retry-After` may say when `points` are missing: the bucket refills a little meanwhile."""
    whole = math.ceil(points / STILL)
    return range(whole - 100, whole + 1)  # up to 0.1 point restored: 100 s of test time


def tiers(capacity: int = 100, restore_rate: float = STILL) -> RateTiers:
    """The same small bucket for every tier."""
    tier = RateTier(capacity=capacity, restore_rate=restore_rate)
    return RateTiers(anonymous=tier, user=tier, service=tier, admin=tier)


class ResolverProbe(SchemaExtension):
    """Records the path of every field resolution: a refused request must leave it empty."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def resolve(self, _next: Callable[..., Any], root: Any, info: GraphQLResolveInfo[Any], *args: Any, **kwargs: Any) -> Any:
        self.calls.append(".".join(str(key) for key in info.path.as_list()))
        return _next(root, info, *args, **kwargs)


@dataclass
class Limited:
    """A running app with chosen settings, a client for it, and the resolver calls it made."""

    app: Starlette
    http: httpx.AsyncClient
    token_for: Callable[..., str]
    resolved: list[str] = field(default_factory=list)

    async def post(
        self, body: Any, *, as_user: User | None = None, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Accept": GRAPHQL_RESPONSE}
        if as_user is not None:
            token = self.token_for(as_user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.post("/graphql", json=body, headers=headers, **kwargs)

    async def query(self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return await self.post({"query": query, "variables": variables or {}}, **kwargs)


LimitedApp = Callable[..., contextlib.AbstractAsyncContextManager[Limited]]


@pytest.fixture
def limited_app(settings: Settings) -> LimitedApp:
    """`async with limited_app(max_query_cost=50, client_address="10.0.0.1") as limited: ...`"""

    @contextlib.asynccontextmanager
    async def start(client_address: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[Limited]:
        application = create_app(settings.model_copy(update=overrides))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application, client=(client_address, 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://tandem.test") as http:
                def mint(user: User, scope: set[str] | None = None, **claims: Any) -> str:
                    from auth import scopes

                    token: str = application.state.tokens.issue_access_token(
                        str(user.id), scopes.ALL if scope is None else scope, **claims
                    )
                    return token

                limited = Limited(application, http, mint)
                schema = application.state.schema
                schema.extensions = (*schema.extensions, lambda: ResolverProbe(limited.resolved))
                yield limited

    return start


async def _flush_limits_keys(url: str) -> None:
    redis = Redis.from_url(url)
    try:
        keys = [key async for key in redis.scan_iter(match="tandem:*")]
        if keys:
            await redis.delete(*keys)
    except (RedisError, OSError) as exc:
        pytest.fail(f"Redis is not reachable at {url} ({exc}); start it: redis-server --daemonize yes",
                    pytrace=False)
    finally:
        await redis.aclose()


@pytest.fixture
def limits_redis_url() -> Iterator[str]:
    """Redis database 4, emptied of `tandem:` keys before and after the test."""
    asyncio.run(_flush_limits_keys(LIMITS_REDIS_URL))
    yield LIMITS_REDIS_URL
    asyncio.run(_flush_limits_keys(LIMITS_REDIS_URL))
