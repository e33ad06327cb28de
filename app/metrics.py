"""Prometheus metrics, kept in a registry per app (no global state between apps or tests).

With several workers (`tandem serve --workers N`) a scrape reaches one of them, so each would show
only its own numbers. There prometheus_client's multiprocess mode is on (`PROMETHEUS_MULTIPROC_DIR`,
which `serve` sets): every worker writes its values to files in that directory and the scrape adds
them up (`MultiProcessCollector`). Gauges say how they combine (`multiprocess_mode`: a sum over live
workers, the highest, or one series per worker). Values read from elsewhere (pool sizes, open sockets,
breaker states, this process's CPU and memory) are sampled into their metrics on `flush()`, which also
moves the lock-free request counters in (app/loop_metrics.py): before each scrape, and every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from app.loop_metrics import LoopCounter, LoopHistogram
from auth.viewer import bearer_token
from resolvers.errors import Unauthenticated
from rest.errors import error_response
from rest.request_ids import request_id_of

_CHALLENGE = 'Bearer realm="metrics"'
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_SECONDS = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
log = logging.getLogger("tandem.metrics")


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._samples: list[Callable[[], None]] = []
        if not multiprocess():  # one process: prometheus_client's own process_* metrics
            ProcessCollector(registry=self.registry)
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
            "tandem_trusted_documents", "Trusted documents loaded from manifests.", registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.manifests_failed = Gauge(
            "tandem_persisted_query_manifests_failed", "Manifests that failed to load.", registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.rate_limiter_unavailable = Counter(
            "tandem_rate_limiter_unavailable", "Charges the rate limiter's Redis did not answer in time.",
            registry=self.registry,
        )
        # Redis.
        self.redis_breaker_open = Gauge(
            "tandem_redis_breaker_open", "1 while the Redis circuit breaker refuses calls (Redis failed repeatedly).",
            registry=self.registry, multiprocess_mode="livemax",
        )
        self.redis_latency = LoopHistogram(  # a charge per request: lock-free
            "tandem_redis_command_duration_seconds", "Time Redis took to answer, by operation.", "operation",
            self.registry, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        # WebSockets and realtime.
        self.websocket_connections = Gauge(
            "tandem_websocket_connections", "Open WebSocket connections.", registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.websocket_subscriptions = Gauge(
            "tandem_websocket_subscriptions", "Running subscriptions over WebSockets.", registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.realtime_deliveries = Counter(
            "tandem_realtime_deliveries", "Events handed to this instance's subscribers.", registry=self.registry,
        )
        self.realtime_dropped = Counter(
            "tandem_realtime_dropped", "Events that did not reach someone: a subscriber too slow (it resyncs), "
            "or other instances while Redis failed (they catch up from the update log).", ["reason"],
            registry=self.registry,
        )
        # Webhooks (rest/delivery.py).
        self.webhook_attempts = Counter(
            "tandem_webhook_attempts", "Outbound webhook delivery attempts, by outcome.", ["outcome"],
            registry=self.registry,
        )
        self.webhook_lag = Histogram(
            "tandem_webhook_delivery_lag_seconds", "From when a delivery was due to its attempt.",
            registry=self.registry, buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        # The database's connection pools, by engine (app, reads, worker, idempotency).
        self.db_pool = Gauge(
            "tandem_db_pool_connections", "Connections of a database pool, by engine and state "
            "(checked_out, idle, overflow).", ["engine", "state"], registry=self.registry,
            multiprocess_mode="livesum",
        )
        # This process (with several workers, one series per worker: the `pid` label).
        self.process_cpu = Gauge(
            "tandem_process_cpu_seconds", "CPU time this process has used (user + system).",
            registry=self.registry, multiprocess_mode="liveall",
        )
        self.process_memory = Gauge(
            "tandem_process_resident_memory_bytes", "This process's resident memory.", registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.sample(self.process_cpu, _cpu_seconds)
        self.sample(self.process_memory, _resident_bytes)

    def sample(self, gauge: Any, read: Callable[[], float]) -> None:
        """Set `gauge` (or a labelled child of one) to `read()` on every flush."""
        self._samples.append(lambda: gauge.set(read()))

    def sample_total(self, counter: Any, read: Callable[[], float]) -> None:
        """Make `counter` follow a running total kept elsewhere, by what it grew since the last flush."""
        last = [0.0]

        def update() -> None:
            total = read()
            if total > last[0]:
                counter.inc(total - last[0])
            last[0] = total

        self._samples.append(update)

    def sample_pool(self, name: str, pool: Any) -> None:
        """A SQLAlchemy `QueuePool`'s connections (other pools report nothing)."""
        if not all(hasattr(pool, attribute) for attribute in ("checkedout", "checkedin", "overflow")):
            return
        self.sample(self.db_pool.labels(name, "checked_out"), pool.checkedout)
        self.sample(self.db_pool.labels(name, "idle"), pool.checkedin)
        self.sample(self.db_pool.labels(name, "overflow"), lambda: max(0, pool.overflow()))

    def flush(self) -> None:
        for metric in (self.requests, self.latency, self.graphql_executions, self.document_cache, self.redis_latency):
            metric.flush()
        for update in self._samples:
            try:
                update()
            except Exception:  # a sample that fails must not stop the others (or the scrape)
                log.exception("a metrics sample failed")

    @contextlib.asynccontextmanager
    async def flushing(self) -> AsyncIterator[None]:
        """Flush every second while the app runs; with several workers, mark this one gone at the end."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                self.flush()

        task = asyncio.create_task(loop(), name="tandem-metrics-flush")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.flush()
            if multiprocess():
                prometheus_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # live gauges

    def exposition(self) -> bytes:
        self.flush()
        if not multiprocess():
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return generate_latest(combined)

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
            return Response(self.exposition(), media_type=CONTENT_TYPE_LATEST)

        return metrics


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _resident_bytes() -> float:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * _PAGE)
    except OSError:  # not Linux: the peak is what there is
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
