"""`create_app(settings)`: the one place where Tandem's parts are chosen and wired together."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from app import preflight, redis_client
from app.context import ContextFactory
from app.graphiql import graphiql_assets, graphiql_page, node_modules_dir
from app.graphql_http import GraphQLHTTP
from app.graphql_stream import GraphQLStream
from app.graphql_ws import SERVICE_RESTART, FreshPerOperation, GraphQLWebSocket, Sockets
from app.limits import build_limits
from app.logging import configure_logging
from app.metrics import Metrics
from app.middleware import Edge
from app.persisted import PersistedQueries
from app.prepared import PreparedOperations
from app.realtime import build_realtime, ticket_store
from app.redis_client import RedisClient
from app.request_id import current_request_id
from app.rest_layer import build_rest_layer, url_policy
from app.secrets import secret_box
from app.settings import Settings
from app.tracing import tracing_extensions, tracing_middleware
from auth.authenticate import Authenticator
from auth.database_store import DatabaseStore
from auth.external import ExternalIssuers
from auth.keys import RS256, KeyStore
from auth.oauth.browser import BrowserSessions, LoginThrottle
from auth.oauth.routes import OAuthHTTP
from auth.oauth.server import ServerConfig
from auth.oauth.setup import authorization_server
from auth.registration_limits import RegistrationLimits
from auth.revocation import RevocationList
from auth.revocation_records import RevocationRecords
from auth.revocation_replica import RevocationReplica
from auth.store import RedisStore
from auth.tokens import TokenService
from db.engine import make_engine, make_sessions
from db.reads import make_reads
from db.request_transaction import JoiningSessions
from limits.breaker import Breaker
from limits.introspection import IntrospectionPolicy
from persisted_queries.document_cache import DOCUMENT_MEMO
from realtime.broker import Broker
from resolvers.context import Limits
from rest import errors, health, ws_tickets
from schema import build_schema


def token_service(settings: Settings) -> TokenService:
    keys = KeyStore.load_or_create(settings.keys_dir)
    id_token_keys = KeyStore.load_or_create(settings.keys_dir / RS256.lower(), RS256)
    return TokenService(
        keys, issuer=settings.issuer, audience=settings.audience, ttl_seconds=settings.access_token_ttl_seconds,
        id_token_keys=id_token_keys,
    )


def revocation_replica(settings: Settings, redis: RedisClient | None,
                       records: RevocationRecords) -> RevocationReplica | None:
    """With Redis, this process's in-memory copy of the revocation list (no copy needed without)."""
    if redis is None:
        return None
    # The subscriber's connection never retries by itself: a drop must be noticed (see the replica).
    options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_connect_timeout": 2, "socket_timeout": 5}
    replica = RevocationReplica(redis, lambda: listen(), sharded=isinstance(redis, RedisCluster),
                                prefix=settings.redis_prefix, replay=records.unexpired)

    async def listen() -> Redis:
        if isinstance(redis, RedisCluster):
            return await redis_client.node_holding(redis, replica.channel, **options)
        assert settings.redis_url is not None
        return Redis.from_url(settings.redis_url, **options)

    return replica


def pool_options(settings: Settings) -> dict[str, Any]:
    """The request pool's settings, for PostgreSQL (SQLite keeps SQLAlchemy's own pool)."""
    if not settings.database_url.startswith("postgresql"):
        return {}
    return {"pool_size": settings.database_pool_size, "max_overflow": settings.database_max_overflow,
            "pool_pre_ping": settings.database_pool_pre_ping, "pool_recycle": settings.database_pool_recycle_seconds}


def observe(metrics: Metrics, *, engines: dict[str, Any], sockets: Sockets, broker: Broker,
            redis_breaker: Breaker) -> None:
    """What metrics sample from the parts themselves on each flush."""
    metrics.sample(metrics.redis_breaker_open, lambda: float(redis_breaker.state != "closed"))
    for name, pool in engines.items():
        metrics.sample_pool(name, pool)
    metrics.sample(metrics.websocket_connections, lambda: len(sockets.open))
    metrics.sample(metrics.websocket_subscriptions,
                   lambda: sum(len(socket.limits.subscriptions) for socket in sockets.open))
    metrics.sample_total(metrics.realtime_deliveries, lambda: broker.counts()[0])
    metrics.sample_total(metrics.realtime_dropped.labels("slow_subscriber"), lambda: broker.counts()[1])
    metrics.sample_total(metrics.realtime_dropped.labels("redis_unavailable"), lambda: broker.counts()[2])


def create_app(settings: Settings) -> Starlette:
    preflight.check(settings)  # production without Redis, unless single instance
    secrets = secret_box(settings)  # production refuses to start without TANDEM_SECRET_KEY
    engine = make_engine(settings.database_url, **pool_options(settings))  # connects lazily
    # Sessions join a request's own transaction when it has one (Idempotency-Key: exactly once).
    sessions = JoiningSessions(make_sessions(engine), one_writer=engine.dialect.name == "sqlite")
    reads = make_reads(settings.database_url, engine)  # the loaders' path: Core rows, few thread hand-offs
    # A hung Redis answers nothing: every command gives up after the timeout, and the answer is a 503
    # (app/failures.py) or the caller's fallback, never a request held for good.
    redis = redis_client.connect(settings.redis_url, cluster=settings.redis_cluster,
                                 socket_timeout=settings.redis_timeout_seconds,
                                 socket_connect_timeout=settings.redis_timeout_seconds) if settings.redis_url else None
    # One breaker for everything that asks Redis on a request's way (limiter, revocation check, tickets,
    # publishing): a hung Redis opens it after a few timeouts, and each of them stops waiting for it.
    redis_breaker = Breaker(cooldown=2.0)
    tokens = token_service(settings)
    # Sign-in sessions, attempt counters and registration windows: in the database, so sign-in works
    # without Redis. Revocations: in the database first, then Redis for every instance's memory.
    store = DatabaseStore(sessions)
    records = RevocationRecords(sessions)
    revocations = RevocationList(RedisStore(redis, settings.redis_prefix) if redis is not None else None,
                                 access_token_ttl_seconds=settings.access_token_ttl_seconds,
                                 fail_open=settings.revocation_fail_open,
                                 replica=revocation_replica(settings, redis, records),
                                 timeout_seconds=settings.rate_limit_redis_timeout_seconds, records=records,
                                 gate=redis_breaker)
    external = ExternalIssuers(settings.trusted_issuers)
    authenticator = Authenticator(sessions, tokens, revocations, external)
    oauth_server = authorization_server(sessions, tokens, revocations, external, ServerConfig(
        issuer=settings.issuer,
        audience=settings.audience,
        access_token_ttl_seconds=settings.access_token_ttl_seconds,
        refresh_token_ttl_seconds=settings.refresh_token_ttl_seconds,
        authorization_code_ttl_seconds=settings.authorization_code_ttl_seconds,
        exchange_audiences=tuple(settings.exchange_audiences),
    ))
    registrations = RegistrationLimits(store, settings.registrations_per_address, settings.registrations_per_ip,
                                       settings.registration_window_seconds)
    login_throttle = LoginThrottle(store)  # sign-in and changePassword share its per-account counters
    oauth = OAuthHTTP(oauth_server, authenticator, BrowserSessions(
        store, secure_cookies=settings.issuer.startswith("https://")), login_throttle)
    metrics = Metrics()
    limits = Limits(settings.default_page_size, settings.max_page_size, settings.max_string_length,
                    max_documents_per_user=settings.max_documents_per_user,
                    max_tasks_per_user=settings.max_tasks_per_user,
                    max_snapshots_per_document=settings.max_snapshots_per_document)
    persisted = PersistedQueries(settings, redis, metrics)
    query_limits = build_limits(settings, redis, metrics, redis_breaker)
    realtime = build_realtime(settings, sessions, redis, redis_breaker)
    tickets = ticket_store(settings, redis, redis_breaker)
    sockets = Sockets()

    observe(metrics, engines={"app": engine.sync_engine.pool, **{f"reads{n}": read.pool for n, read in
                                                                 enumerate(reads.engines)}},
            sockets=sockets, broker=realtime.broker, redis_breaker=redis_breaker)
    tracing = tracing_extensions(settings)
    introspection = IntrospectionPolicy(settings.introspection_mode)
    schema = build_schema(extensions=[
        *query_limits.extensions,  # first: the token limit applies while parsing
        FreshPerOperation,
        introspection.extension,  # adds its rule before the document cache looks up validity
        *tracing,
        persisted.extension,  # parsed + validated documents by hash; keep it after rule-adding extensions
    ], production=settings.production, batched_execution=settings.batched_execution, document_memo=DOCUMENT_MEMO)
    context_factory = ContextFactory(sessions, authenticator, limits, revoke_sessions=oauth_server.revoke_user_sessions,
                                     url_policy=url_policy(settings), realtime=realtime, reads=reads,
                                     password_attempts=login_throttle, registrations=registrations,
                                     secrets=secrets)
    # Known documents skip the extension pipeline, unless tracing wants to see every phase.
    prepared = None if tracing or not settings.prepared_operations else PreparedOperations(
        schema, persisted.documents, static_limits=query_limits.static, cost=query_limits.cost,
        introspection=introspection)
    graphql = GraphQLHTTP(
        schema,
        context_factory,
        metrics,
        persisted,
        prepared=prepared,
        max_body_bytes=settings.max_body_bytes,
        max_batch_operations=settings.max_batch_operations,
        graphiql=(lambda: graphiql_page(oauth_client_id=settings.graphiql_client_id))
        if settings.graphiql_enabled else None,
        get_max_age=settings.get_cache_max_age_seconds,
    )
    node_modules = settings.node_modules_dir or node_modules_dir()
    rest_layer = build_rest_layer(settings, sessions=sessions, redis=redis, tokens=tokens, limits=limits,
                                  node_modules=node_modules, secrets=secrets, metrics=metrics)
    for name, background in zip(("worker", "idempotency"), rest_layer.engines, strict=True):
        metrics.sample_pool(name, background.sync_engine.pool)
    graphql_ws = GraphQLWebSocket(
        schema, context_factory, tickets, sockets, query_limits.websocket, persisted,
        connection_init_timeout=settings.ws_connection_init_timeout_seconds,
        allowed_origins=settings.cors_origins,
        revocation_check_seconds=settings.ws_revocation_check_seconds,
    )
    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        WebSocketRoute("/graphql", graphql_ws),
        Route("/graphql/stream", GraphQLStream(schema, context_factory, persisted), methods=["POST"]),
        *ws_tickets.routes(authenticator.identify, tickets, settings.ws_ticket_ttl_seconds, current_request_id.get),
        Route("/.well-known/jwks.json", _jwks_endpoint(tokens), methods=["GET"]),
        *oauth.routes(),
        Route("/metrics", metrics.endpoint(
            token=settings.metrics_token.get_secret_value() if settings.metrics_token else None,
            public=not settings.production), methods=["GET"]),
        *health.routes(sessions, redis),
        *rest_layer.routes,
    ]
    if settings.graphiql_enabled:
        routes.append(graphiql_assets(node_modules))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_json)
        # Everything imported so far lives for the whole process: keep the collector off it.
        if settings.freeze_gc_on_start:
            gc.collect()
            gc.freeze()
        await rest_layer.start()
        await realtime.start()
        await revocations.start()  # follows revocations in memory once in sync; until then asks Redis
        try:
            async with persisted.running(), metrics.flushing():  # manifests loaded and watched; metrics
                yield
        finally:
            # Subscribers reconnect (to another instance, or to this one once it is back).
            await sockets.close_all(SERVICE_RESTART, "Server restarting")
            await realtime.close()
            await revocations.close()
            await rest_layer.stop()  # before the engine goes: the worker finishes its writes
            if query_limits.limiter is not None:
                await query_limits.limiter.aclose()  # sends refunds still waiting
            await reads.close()
            await engine.dispose()
            if redis is not None:
                await redis.aclose()

    # The GraphQL endpoint behind the same idempotency middleware as every other route, but reached
    # from the edge directly (it answers its own errors and methods; the router is for the rest).
    graphql_endpoint: Any = graphql
    for layer in reversed(rest_layer.middleware):
        graphql_endpoint = layer.cls(graphql_endpoint, *layer.args, **layer.kwargs)
    middleware = [
        *tracing_middleware(settings, [engine.sync_engine, *reads.engines]),  # the server span, outermost
        Middleware(
            Edge, metrics=metrics, routes=[r.path for r in routes if isinstance(r, Route)],
            direct={"/graphql": graphql_endpoint}, access_log=settings.access_log,
            hsts=settings.issuer.startswith("https://"), cors_origins=settings.cors_origins, cors={
                "allow_methods": ["GET", "POST"],
                "allow_headers": ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
                "expose_headers": ["X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After",
                                   "Idempotent-Replayed"],
                "allow_credentials": True,
                "max_age": 600,
            },
        ),
        *rest_layer.middleware,  # Idempotency-Key: innermost, so replays still get request ids and headers
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={HTTPException: errors.http_exception})
    app.state.settings = settings
    app.state.engine = engine
    app.state.reads = reads
    app.state.sessions = sessions
    app.state.tokens = tokens
    app.state.oauth = oauth_server
    app.state.revocations = revocations
    app.state.schema = schema
    app.state.persisted = persisted
    app.state.prepared = prepared
    app.state.limits = query_limits  # .websocket: the limits for the subscription endpoint
    app.state.rest = rest_layer
    app.state.realtime = realtime
    app.state.sockets = sockets
    app.state.redis = redis
    app.state.tickets = tickets
    return app


def _jwks_endpoint(tokens: TokenService) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def jwks(request: Request) -> Response:
        return JSONResponse(tokens.jwks(), headers={"Cache-Control": "public, max-age=300"})

    return jwks


def app_from_environment() -> Starlette:
    """Factory for `uvicorn --factory` and `tandem serve --workers N`."""
    return create_app(Settings())
