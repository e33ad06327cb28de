"""Prometheus metrics, kept in a registry per app (no global state between apps or tests)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from app.loop_metrics import LoopCounter, LoopHistogram
from auth.viewer import bearer_token
from resolvers.errors import Unauthenticated
from rest.errors import error_response
from rest.request_ids import request_id_of

_CHALLENGE = 'Bearer realm="metrics"'


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # What every request updates: lock-free (app/loop_metrics.py).
        self.requests = LoopCounter(
            "tandem_http_requests", "HTTP requests served.", ["method", "route", "status"], self.registry
        )
        self.latency = LoopHistogram(
            "tandem_http_request_duration_seconds", "Time to answer an HTTP request.", "route", self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.graphql_errors = Counter(
            "tandem_graphql_errors", "GraphQL errors returned, by extensions.code.", ["code"], registry=self.registry
        )
        self.graphql_operations = Counter(
            "tandem_graphql_operations", "GraphQL operations executed, by type.", ["type"], registry=self.registry
        )
        self.graphql_executions = LoopCounter(
            "tandem_graphql_executions",
            "Operations executed, by executor: batched (schema/execution.py), fallback (the batched executor "
            "gave up and graphql-core ran it) or graphql-core (mutations and other operations it does not take).",
            ["executor"], self.registry,
        )
        # Persisted queries (app/persisted.py).
        self.persisted_lookups = Counter(
            "tandem_persisted_query_lookups", "Persisted query lookups, by store (trusted, apq) and result.",
            ["store", "result"], registry=self.registry,
        )
        self.persisted_registrations = Counter(
            "tandem_persisted_query_registrations", "APQ queries registered.", registry=self.registry
        )
        self.document_cache = LoopCounter(
            "tandem_document_cache_lookups", "Parsed+validated document cache lookups, by result.", ["result"],
            self.registry,
        )
        self.trusted_documents = Gauge(
            "tandem_trusted_documents", "Trusted documents loaded from manifests.", registry=self.registry
        )
        self.manifests_failed = Gauge(
            "tandem_persisted_query_manifests_failed", "Manifests that failed to load.", registry=self.registry
        )
        self.rate_limiter_breaker_open = Gauge(
            "tandem_rate_limiter_breaker_open", "1 while the rate limiter's Redis breaker refuses calls.",
            registry=self.registry,
        )
        self.rate_limiter_unavailable = Counter(
            "tandem_rate_limiter_unavailable", "Charges the rate limiter's Redis did not answer in time.",
            registry=self.registry,
        )

    def endpoint(self, *, token: str | None, public: bool) -> Callable[[Request], Awaitable[Response]]:
        """`GET /metrics`: behind `Authorization: Bearer <token>` when a token is set; otherwise open
        only where `public` (development), and not found (404) anywhere else: metrics map the service."""
        expected = token.encode() if token else None

        async def metrics(request: Request) -> Response:
            if expected is not None:
                try:
                    presented = (bearer_token(request.headers.get("authorization")) or "").encode()
                except Unauthenticated:
                    presented = b""
                if not hmac.compare_digest(presented, expected):
                    return error_response(401, "UNAUTHENTICATED", "Send the metrics token as a bearer token.",
                                          request_id_of(request), headers={"WWW-Authenticate": _CHALLENGE})
            elif not public:
                return error_response(404, "NOT_FOUND", "Not Found", request_id_of(request))
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        return metrics
