"""`create_app(settings)`: the one place where Tandem's parts are chosen and wired together."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route, WebSocketRoute
from strawberry.extensions import ParserCache, ValidationCache

from app.context import ContextFactory
from app.graphiql import graphiql_assets, graphiql_page, node_modules_dir
from app.graphql_http import GraphQLHTTP
from app.graphql_stream import GraphQLStream
from app.graphql_ws import SERVICE_RESTART, FreshPerOperation, GraphQLWebSocket, Sockets
from app.logging import configure_logging
from app.metrics import Metrics
from app.middleware import RequestIdAndMetrics, SecurityHeaders
from app.realtime import build_realtime, ticket_store
from app.request_id import current_request_id
from app.settings import Settings
from app.tracing import tracing_extensions
from auth.keys import KeyStore
from auth.tokens import TokenService
from db.engine import make_engine, make_sessions
from resolvers.context import Limits
from rest import health, ws_tickets
from schema import build_schema


def token_service(settings: Settings) -> TokenService:
    keys = KeyStore.load_or_create(settings.keys_dir)
    return TokenService(
        keys, issuer=settings.issuer, audience=settings.audience, ttl_seconds=settings.access_token_ttl_seconds
    )


def create_app(settings: Settings) -> Starlette:
    engine = make_engine(settings.database_url)  # connects lazily
    sessions = make_sessions(engine)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    tokens = token_service(settings)
    metrics = Metrics()
    limits = Limits(settings.default_page_size, settings.max_page_size, settings.max_string_length)
    realtime = build_realtime(settings, sessions, redis)
    tickets = ticket_store(settings, redis)
    sockets = Sockets()

    schema = build_schema(extensions=[
        lambda: ParserCache(maxsize=1024),  # the LRU lives at module level, shared by requests
        lambda: ValidationCache(maxsize=1024),
        FreshPerOperation,
        *tracing_extensions(settings),
    ], production=settings.production)
    context_factory = ContextFactory(sessions, tokens, limits, realtime)
    graphql = GraphQLHTTP(
        schema,
        context_factory,
        metrics,
        max_body_bytes=settings.max_body_bytes,
        graphiql=graphiql_page if settings.graphiql_enabled else None,
    )
    graphql_ws = GraphQLWebSocket(
        schema, context_factory, tokens, tickets, sockets,
        connection_init_timeout=settings.ws_connection_init_timeout_seconds,
        allowed_origins=settings.cors_origins,
    )
    routes: list[BaseRoute] = [
        Route("/graphql", graphql.handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        WebSocketRoute("/graphql", graphql_ws),
        Route("/graphql/stream", GraphQLStream(schema, context_factory), methods=["POST"]),
        *ws_tickets.routes(tokens, tickets, settings.ws_ticket_ttl_seconds, current_request_id.get),
        Route("/.well-known/jwks.json", _jwks_endpoint(tokens), methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        *health.routes(sessions, redis),
    ]
    if settings.graphiql_enabled:
        routes.append(graphiql_assets(settings.node_modules_dir or node_modules_dir()))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_json)
        # Everything imported so far lives for the whole process: keep the collector off it.
        if settings.freeze_gc_on_start:
            gc.collect()
            gc.freeze()
        await realtime.start()
        try:
            yield
        finally:
            # Subscribers reconnect (to another instance, or to this one once it is back).
            await sockets.close_all(SERVICE_RESTART, "Server restarting")
            await realtime.close()
            await engine.dispose()
            if redis is not None:
                await redis.aclose()

    middleware = [
        Middleware(RequestIdAndMetrics, metrics=metrics, routes=[r.path for r in routes if isinstance(r, Route)]),
        Middleware(SecurityHeaders, hsts=settings.issuer.startswith("https://")),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After"],
            allow_credentials=True,
            max_age=600,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.tokens = tokens
    app.state.schema = schema
    app.state.realtime = realtime
    app.state.sockets = sockets
    return app


def _jwks_endpoint(tokens: TokenService) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def jwks(request: Request) -> Response:
        return JSONResponse(tokens.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})

    return jwks


def app_from_environment() -> Starlette:
    """Factory for `uvicorn --factory` and `tandem serve --workers N`."""
    return create_app(Settings())
