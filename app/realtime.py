"""Choose the realtime parts once: in-process broker and tickets, or Redis-backed when configured."""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster

from app import redis_client
from app.settings import Settings
from auth.ws_tickets import MemoryTickets, RedisTickets, TicketStore
from db.engine import Sessions
from limits.breaker import Breaker
from realtime.broker import Broker, MemoryBroker, RedisBroker
from realtime.documents import DocumentStore
from realtime.hub import Realtime
from realtime.presence import Presence
from realtime.shared_presence import SharedPresence


def build_realtime(settings: Settings, sessions: Sessions, redis: Redis | RedisCluster | None,
                   breaker: Breaker | None = None) -> Realtime:
    broker: Broker = (
        RedisBroker(redis, settings.redis_prefix, settings.realtime_queue_size,
                    publish_timeout=settings.rate_limit_redis_timeout_seconds, gate=breaker,
                    # No read timeout: an idle subscription reads nothing for as long as nothing happens.
                    listener=redis_client.connect(settings.redis_url, cluster=settings.redis_cluster)
                    if settings.redis_url else None)
        if redis is not None
        else MemoryBroker(settings.realtime_queue_size)
    )
    documents = DocumentStore(
        sessions, compact_every=settings.realtime_compact_every, keep=settings.realtime_keep_updates,
        max_bytes=settings.max_document_bytes,
    )
    presence = Presence(
        timeout=settings.presence_timeout_seconds,
        rate=settings.presence_rate_per_second,
        burst=max(1, int(settings.presence_rate_per_second * 2)),
    )
    shared = SharedPresence(redis, settings.redis_prefix, lease_seconds=max(30.0, settings.presence_timeout_seconds),
                            timeout=settings.rate_limit_redis_timeout_seconds) if redis is not None else None
    return Realtime(sessions, broker, documents, presence, recheck_seconds=settings.realtime_recheck_seconds,
                    shared_presence=shared)


def ticket_store(settings: Settings, redis: Redis | RedisCluster | None, breaker: Breaker | None = None) -> TicketStore:
    if redis is not None:
        return RedisTickets(redis, settings.redis_prefix, settings.ws_ticket_ttl_seconds, gate=breaker)
    return MemoryTickets(settings.ws_ticket_ttl_seconds)
