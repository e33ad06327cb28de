"""`Realtime`: the broker, the document store and presence, as one object the app builds once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from sqlalchemy import select

from db import request_transaction
from db.engine import Sessions
from db.models import Document
from realtime.broker import Broker, Subscription
from realtime.documents import DocumentStore
from realtime.events import TASKS_CHANNEL, DocumentEventKind, Event, document_channel, encode
from realtime.presence import Presence
from realtime.shared_presence import PresenceUnavailable, SharedPresence

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
        shared_presence: SharedPresence | None = None,
    ) -> None:
        """`recheck_seconds`: how often a long-lived subscription re-reads its viewer's rights even
        without an ACCESS event (which covers changes made through Tandem itself)."""
        self.sessions = sessions
        self.broker = broker
        self.documents = documents
        self.presence = presence
        self.recheck_seconds = recheck_seconds
        self.shared_presence = shared_presence
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
        if self.presence.watch(document_id, user_id) and await self._arrived(document_id, user_id):
            await self.publish_document(document_id, DocumentEventKind.JOINED, version, userId=user_id)

    async def left(self, document_id: int, user_id: int) -> None:
        if self.presence.unwatch(document_id, user_id) and await self._gone(document_id, user_id):
            await self._announce_left(document_id, user_id)

    async def present(self, document_id: int) -> list[int]:
        """Who has the document's events open now, on any instance (this one's alone without Redis)."""
        if self.shared_presence is not None:
            try:
                return await self.shared_presence.present(document_id)
            except PresenceUnavailable as exc:
                log.warning("shared presence unavailable (%s); answering for this instance", exc)
        return self.presence.watchers(document_id)

    async def _arrived(self, document_id: int, user_id: int) -> bool:
        """Whether this is the user's first subscription to the document on any instance."""
        shared = self.shared_presence
        return await self._across_instances(shared.join if shared else None, document_id, user_id)

    async def _gone(self, document_id: int, user_id: int) -> bool:
        """Whether the user has no subscription to the document left on any instance."""
        shared = self.shared_presence
        return await self._across_instances(shared.leave if shared else None, document_id, user_id)

    @staticmethod
    async def _across_instances(ask: Callable[[int, int], Awaitable[bool]] | None, document_id: int,
                                user_id: int) -> bool:
        """Shared presence's answer; this instance's (yes) without Redis, or when Redis does not answer."""
        if ask is None:
            return True
        try:
            return await ask(document_id, user_id)
        except PresenceUnavailable as exc:
            log.warning("shared presence unavailable (%s); deciding for this instance", exc)
            return True

    async def _announce_left(self, document_id: int, user_id: int) -> None:
        version = await self.latest_version(document_id)
        if version is not None:
            await self.publish_document(document_id, DocumentEventKind.LEFT, version, userId=user_id)

    async def _sweep(self) -> None:
        interval = max(0.05, min(1.0, self.presence.timeout / 4))
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            if self.shared_presence is not None and time.monotonic() - renewed >= self.shared_presence.lease_ms / 3000:
                renewed = time.monotonic()
                try:
                    await self.shared_presence.renew(self.presence.watching())
                except PresenceUnavailable as exc:
                    log.warning("could not renew shared presence (%s)", exc)
            for document_id, user_id in self.presence.expired():
                if user_id in await self._present_elsewhere(document_id):
                    continue  # the cursor went quiet, but the user still has the document open elsewhere
                try:
                    await self._announce_left(document_id, user_id)
                except Exception:  # one failed announcement must not stop the sweeper for everyone
                    log.exception("could not announce that user %s left document %s", user_id, document_id)

    async def _present_elsewhere(self, document_id: int) -> list[int]:
        if self.shared_presence is None:
            return []
        try:
            return await self.shared_presence.present(document_id)
        except PresenceUnavailable:
            return []

    # --- tasks --------------------------------------------------------------------------------

    async def publish_tasks(self, event: Event) -> None:
        await self._publish(TASKS_CHANNEL, event)

    async def subscribe_tasks(self) -> Subscription:
        return await self.broker.subscribe(TASKS_CHANNEL)
