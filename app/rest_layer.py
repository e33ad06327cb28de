"""Composes the REST layer (rest/): inbound webhooks, the delivery worker, idempotency keys,
`/openapi.json` and `/docs`. `create_app` asks for one `RestLayer` and mounts what it holds.

To describe another REST endpoint in `/openapi.json`, add its module's `OPERATIONS` to
`DESCRIBED` (see rest/openapi.py for how to declare them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from redis.asyncio import Redis, RedisCluster
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from app.metrics import Metrics
from app.settings import Settings
from auth.tokens import TokenService
from db.engine import Sessions, make_engine, make_sessions, make_transaction_engine
from db.secret_box import SecretBox
from resolvers.context import Limits
from resolvers.webhook_urls import UrlPolicy
from rest import docs, health, jwks, oauth, openapi, webhooks_in, ws_tickets
from rest.delivery import Deliverer, DeliveryConfig
from rest.housekeeping import Housekeeping
from rest.idempotency import Idempotency, IdempotentPath, identify_with
from rest.idempotency_store import IdempotencyKeys
from rest.inbound_processing import InboundConfig, InboundProcessor
from rest.webhook_sources import by_name
from rest.worker import Worker

DESCRIBED: Sequence[Sequence[openapi.Operation]] = (
    openapi.OPERATIONS, health.OPERATIONS, jwks.OPERATIONS, webhooks_in.OPERATIONS, oauth.OPERATIONS,
    ws_tickets.OPERATIONS,
)
# Time a stopping instance gives the delivery in flight before cancelling it.
STOP_GRACE_SECONDS = 15.0


def url_policy(settings: Settings) -> UrlPolicy:
    """Private and loopback webhook targets only in development (SSRF)."""
    return UrlPolicy(allow_private=not settings.production)


@dataclass
class RestLayer:
    routes: list[BaseRoute]
    middleware: list[Middleware]
    worker: Worker
    run_worker: bool
    http: httpx.AsyncClient
    engines: tuple[AsyncEngine, ...]  # the worker's and the idempotency keys' pools
    inbound: InboundProcessor
    document: openapi.JsonSchema

    async def start(self) -> None:
        if self.run_worker:
            self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop(STOP_GRACE_SECONDS)
        await self.http.aclose()
        for engine in self.engines:
            await engine.dispose()
        await self.inbound.close()


def _counted(metrics: Metrics) -> Callable[[str, float], None]:
    def on_attempt(outcome: str, lag_seconds: float) -> None:
        metrics.webhook_attempts.labels(outcome).inc()
        metrics.webhook_lag.observe(max(0.0, lag_seconds))

    return on_attempt


def build_rest_layer(
    settings: Settings,
    *,
    sessions: Sessions,
    redis: Redis | RedisCluster | None,
    tokens: TokenService,
    limits: Limits,
    node_modules: Path,
    secrets: SecretBox,
    metrics: Metrics,
) -> RestLayer:
    sources = by_name(settings.webhook_sources)
    # The worker has a connection pool of its own: a burst of deliveries cannot take the
    # connections that requests need, nor the other way round. Connects lazily, like the app's.
    worker_engine = make_engine(settings.database_url)
    worker_sessions = make_sessions(worker_engine)
    # trust_env=False: a proxy from the environment must not see (or redirect) our deliveries.
    http = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=settings.webhook_timeout_seconds)
    deliverer = Deliverer(worker_sessions, DeliveryConfig(
        url_policy=url_policy(settings),
        secrets=secrets,
        timeout_seconds=settings.webhook_timeout_seconds,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_max_seconds=settings.webhook_retry_max_seconds,
        lease_seconds=settings.webhook_lease_seconds,
        on_attempt=_counted(metrics),
    ), http)
    inbound = InboundProcessor(
        worker_sessions, settings.database_url, sources, limits,
        InboundConfig(lease_seconds=settings.webhook_lease_seconds),
    )
    worker = Worker(
        [("deliveries", deliverer.run_once), ("inbound", inbound.run_once),
         ("housekeeping", Housekeeping(worker_sessions).run_once)],
        poll_seconds=settings.webhook_poll_seconds,
        on_stop=[deliverer.stop_soon],
    )
    # Its own pool: a request with a key holds one connection from its first statement to its commit.
    idempotency_engine = make_transaction_engine(settings.database_url)
    keys = IdempotencyKeys(idempotency_engine, ttl_seconds=settings.idempotency_ttl_seconds,
                           wait_seconds=settings.idempotency_wait_seconds)
    document = openapi.build_document(
        [operation for operations in DESCRIBED for operation in operations],
        description="The REST side of Tandem: webhooks, operations and OAuth. The product itself is GraphQL "
                    "(POST /graphql).",
    )
    routes: list[BaseRoute] = [
        *webhooks_in.routes(sources, sessions, max_body_bytes=settings.webhook_max_body_bytes, wake=worker.wake),
        *openapi.routes(document),
        *docs.routes(node_modules),
    ]
    middleware = [Middleware(
        Idempotency,
        keys=keys,
        identify=identify_with(tokens),
        paths=[IdempotentPath("/graphql", "graphql"), IdempotentPath("/webhooks/", "rest")],
        max_body_bytes=max(settings.max_body_bytes, settings.webhook_max_body_bytes),
    )]
    engines = (worker_engine, idempotency_engine)
    return RestLayer(routes, middleware, worker, settings.webhook_worker, http, engines, inbound, document)
