"""`Realtime`: the broker, the document store and presence, as one object the app builds once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError
from sqlalchemy import select

from db import request_transaction
from db.engine import Sessions
from db.models import Document
from realtime.broker import Broker, Subscription
from realtime.documents import DocumentStore
from realtime.events import TASKS_CHANNEL, DocumentEventKind, Event, document_channel, encode
from realtime.presence import Presence

log = logging.getLogger("tandem.realtime")


class Realtime:
    def __init__(
        self,
        sessions: Sessions,
        broker: Broker,
        documents: DocumentStore,
        presence: Presence,
        *,
        recheck_seconds: float = 30.0,
    ) -> None:
        """`recheck_seconds`: how often a long-lived subscription re-reads its viewer's rights even
        without an ACCESS event (which covers changes made through Tandem itself)."""
        self.sessions = sessions
        self.broker = broker
        self.documents = documents
        self.presence = presence
        self.recheck_seconds = recheck_seconds
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.broker.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="tandem-presence-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.broker.close()

    # --- documents ----------------------------------------------------------------------------

    async def publish_document(self, document_id: int, kind: DocumentEventKind, version: int, **fields: object) -> None:
        event: Event = {"kind": kind.value, "documentId": document_id, "version": version, "at": time.time(), **fields}
        await self._publish(document_channel(document_id), event)

    async def _publish(self, channel: str, event: Event) -> None:
        # Inside a request's transaction the change is not there until it commits; then it is news.
        if not request_transaction.after_commit(lambda: self._publish_now(channel, event)):
            await self._publish_now(channel, event)

    async def _publish_now(self, channel: str, event: Event) -> None:
        try:
            await self.broker.publish(channel, encode(event))
        except (RedisError, OSError) as exc:
            # What was published is already durable (or ephemeral); failing the mutation would only
            # make its client retry it. Document subscribers refill missed updates from the log.
            log.warning("could not publish to %s: %s", channel, exc)

    async def subscribe_document(self, document_id: int) -> Subscription:
        return await self.broker.subscribe(document_channel(document_id))

    async def latest_version(self, document_id: int) -> int | None:
        async with self.sessions() as session:
            return await session.scalar(select(Document.version).where(Document.id == document_id))

    async def joined(self, document_id: int, user_id: int, version: int) -> None:
        if self.presence.watch(document_id, user_id):
            await self.publish_document(document_id, DocumentEventKind.JOINED, version, userId=user_id)

    async def left(self, document_id: int, user_id: int) -> None:
        if self.presence.unwatch(document_id, user_id):
            await self._announce_left(document_id, user_id)

    async def _announce_left(self, document_id: int, user_id: int) -> None:
        version = await self.latest_version(document_id)
        if version is not None:
            await self.publish_document(document_id, DocumentEventKind.LEFT, version, userId=user_id)

    async def _sweep(self) -> None:
        interval = max(0.05, min(1.0, self.presence.timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for document_id, user_id in self.presence.expired():
                try:
                    await self._announce_left(document_id, user_id)
                except Exception:  # one failed announcement must not stop the sweeper for everyone
                    log.exception("could not announce that user %s left document %s", user_id, document_id)

    # --- tasks --------------------------------------------------------------------------------

    async def publish_tasks(self, event: Event) -> None:
        await self._publish(TASKS_CHANNEL, event)

    async def subscribe_tasks(self) -> Subscription:
        return await self.broker.subscribe(TASKS_CHANNEL)
