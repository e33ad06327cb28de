"""Persisted queries, put together from settings: trusted manifests, the APQ store (memory or
Redis), the document cache, the trusted-documents policy, usage, metrics and manifest reloading.

The HTTP transport calls `resolve` before executing and `after_execution` after; the schema gets
`extension()` so known documents skip parsing and validation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from redis.asyncio import Redis, RedisCluster

import persisted_queries
from app.metrics import Metrics
from app.settings import Settings
from persisted_queries.apq import APQStore, MemoryAPQStore, RedisAPQStore
from persisted_queries.document_cache import CachedDocuments, DocumentCache
from persisted_queries.policy import TrustedDocumentPolicy
from persisted_queries.resolve import OperationResolver, ResolvedOperation
from persisted_queries.trusted import LoadReport, TrustedDocuments
from persisted_queries.usage import MemoryUsageLog, RedisUsageLog, UsageLog, usage_key
from resolvers.context import Viewer

log = logging.getLogger("tandem.persisted_queries")


def manifest_directory(settings: Settings) -> Path:
    """`TANDEM_PERSISTED_QUERIES_DIR`, or the manifests shipped inside the `persisted_queries` package."""
    return settings.persisted_queries_dir or Path(persisted_queries.__file__).resolve().parent


class PersistedQueries:
    def __init__(self, settings: Settings, redis: Redis | RedisCluster | None, metrics: Metrics) -> None:
        self.metrics = metrics
        self.trusted = TrustedDocuments(manifest_directory(settings))
        # Labelled children looked up once: `labels()` on every request cost a few µs each (measured).
        cache_hits, cache_misses = metrics.document_cache.labels("hit"), metrics.document_cache.labels("miss")
        self.documents = DocumentCache(
            settings.document_cache_max_chars,
            count=lambda hit: (cache_hits if hit else cache_misses).inc(),
        )
        self.apq: APQStore = (
            RedisAPQStore(redis, settings.apq_max_entries, prefix=f"{settings.redis_prefix}{{apq}}") if redis
            else MemoryAPQStore(settings.apq_max_entries)
        )
        self.usage: UsageLog = RedisUsageLog(redis, key=usage_key(settings.redis_prefix)) if redis else MemoryUsageLog()
        self.policy = TrustedDocumentPolicy(require_for_anonymous=settings.require_trusted_documents_for_anonymous)
        self.resolver = OperationResolver(
            self.trusted, self.apq, max_query_bytes=settings.apq_max_query_bytes,
            count=lambda store, result: metrics.persisted_lookups.labels(store, result).inc(),
        )
        self.reload_seconds = settings.persisted_queries_reload_seconds

    def extension(self) -> CachedDocuments:
        """A fresh per-request schema extension; list it last, after extensions that add validation rules."""
        return CachedDocuments(self.documents)

    async def resolve(self, params: Mapping[str, Any], viewer: Viewer | None) -> ResolvedOperation:
        """The text to run for this request; `PersistedQueryError` when there is none it may run."""
        client_bound = viewer is not None and viewer.trusted_documents_only
        trusted_only = self.policy.requires_trusted(anonymous=viewer is None, client_flag=client_bound)
        manifests = viewer.trusted_manifests if viewer is not None and client_bound else None
        return await self.resolver.resolve(params, trusted_only=trusted_only, manifests=manifests)

    async def after_execution(self, operation: ResolvedOperation, *, executed: bool) -> None:
        """Register an APQ query that ran (so it validated), and note the use of a trusted one."""
        if not executed:
            return
        if operation.register and await self.apq.put(operation.sha256, operation.query):
            self.metrics.persisted_registrations.inc()
        if operation.trusted is not None:
            await self.usage.record(operation.sha256)

    async def started(self, operation: ResolvedOperation) -> None:
        """Note the use of a trusted document, for transports that stream their results (WebSocket,
        `/graphql/stream`); they register no APQ queries, not knowing beforehand that one validates."""
        if operation.trusted is not None:
            await self.usage.record(operation.sha256)

    def load(self) -> LoadReport:
        report = self.trusted.load()
        self._loaded(report)
        return report

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Load the manifests, and reload them when they change, while the app runs."""
        self.load()
        poller = asyncio.create_task(self._poll()) if self.reload_seconds > 0 else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            report = self.trusted.reload_if_changed()
            if report is not None:
                self._loaded(report)

    def _loaded(self, report: LoadReport) -> None:
        self.documents.pin({operation.sha256: operation.document for operation in self.trusted.operations})
        self.metrics.trusted_documents.set(report.operations)
        self.metrics.manifests_failed.set(len(report.errors))
