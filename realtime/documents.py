"""Collaborative document content: Yjs documents (pycrdt) kept durable in the database.

The database is the truth: `documents.version` counts accepted updates, `document_updates` holds
each one (appended in the transaction that bumps the version, so an acknowledged update survives a
crash), and `document_states` holds the compacted prefix of the log. This module keeps a replica
(a pycrdt `Doc` and the version it reflects) per recently used document, and brings it up to date
from the log before it answers, so several instances sharing one database agree.

Updates are Yjs v1 updates with one shared text named `content`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db.collaboration import DocumentSnapshot, DocumentState, DocumentUpdate
from db.engine import Sessions
from db.models import Document

log = logging.getLogger("tandem.realtime.documents")

TEXT = "content"
_HISTORY_ATTEMPTS = 5


class DocumentGone(Exception):
    """The document was deleted."""


class InvalidUpdate(Exception):
    """The bytes are not a Yjs v1 update (or state vector)."""


class DocumentTooLarge(Exception):
    """The stored state and log would pass the document's size limit; nothing was written."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the document would take {size} bytes; the limit is {limit}")
        self.size = size
        self.limit = limit


class VersionTooOld(Exception):
    """The log no longer reaches back to that version: it was compacted into the stored state."""


def text_of(doc: Doc[Any]) -> str:
    return str(doc.get(TEXT, type=Text))


def doc_from(updates: Sequence[bytes]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for data in updates:
        doc.apply_update(data)
    return doc


@dataclass
class Replica:
    doc: Doc[Any]
    version: int
    compacted: int  # the stored state's version as last seen here: when to try compacting again

    @property
    def text(self) -> str:
        return text_of(self.doc)


@dataclass(frozen=True, slots=True)
class Current:
    """A document's content at one version, detached from the replica (safe to hold on to)."""

    version: int
    state: bytes
    state_vector: bytes
    text: str


class DocumentStore:
    def __init__(
        self, sessions: Sessions, *, compact_every: int = 200, keep: int = 100, cache_size: int = 512,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        """`compact_every` log entries beyond the `keep` newest are folded into the stored state;
        `max_bytes` bounds what one document stores (its state and its log)."""
        self.sessions = sessions
        self.max_bytes = max_bytes
        self.compact_every = compact_every
        self.keep = keep
        self.cache_size = cache_size
        self._replicas: OrderedDict[int, Replica] = OrderedDict()
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, document_id: int) -> asyncio.Lock:
        lock = self._locks.get(document_id)
        if lock is None:
            lock = self._locks[document_id] = asyncio.Lock()
        return lock

    # --- reading ------------------------------------------------------------------------------

    async def history(self, document_id: int, after: int) -> list[tuple[int, bytes]]:
        """Every update after version `after`, in order and without gaps.

        When the log was compacted past `after`, the first item is the stored state (all updates up
        to its version, merged): applying it to a replica that already has some of them is harmless,
        since Yjs updates are idempotent.
        """
        return (await self._history_with_base(document_id, after))[1]

    async def _history_with_base(self, document_id: int, after: int) -> tuple[int | None, list[tuple[int, bytes]]]:
        """Like `history`, plus the version of the stored state when it is the first item (else None)."""
        for _ in range(_HISTORY_ATTEMPTS):
            async with self.sessions() as session:
                found = await self._history(session, document_id, after)
            if found is not None:
                return found
        raise RuntimeError(f"document {document_id}: the update log kept changing while being read")

    async def _history(
        self, session: AsyncSession, document_id: int, after: int, before: int | None = None
    ) -> tuple[int | None, list[tuple[int, bytes]]] | None:
        """None when a compaction moved the log meanwhile (the caller reads again). With `before`,
        only versions below it (a writer reading what it missed, its own version not yet logged)."""
        version = await session.scalar(select(Document.version).where(Document.id == document_id))
        if version is None:
            raise DocumentGone()
        if before is not None:
            version = before - 1
        state = (await session.execute(
            select(DocumentState.version, DocumentState.state).where(DocumentState.document_id == document_id)
        )).first()
        items: list[tuple[int, bytes]] = []
        base: int | None = None
        start = after
        if state is not None and state.version > after:
            items.append((state.version, state.state))
            base = start = state.version
        rows = (await session.execute(
            select(DocumentUpdate.version, DocumentUpdate.data)
            .where(DocumentUpdate.document_id == document_id, DocumentUpdate.version > start,
                   DocumentUpdate.version <= (version if before is not None else 2**31 - 1))
            .order_by(DocumentUpdate.version)
        )).all()
        expected = start + 1
        for row in rows:
            if row.version != expected:
                return None
            items.append((row.version, row.data))
            expected += 1
        if expected - 1 < version:
            return None
        return base, items

    async def _synced(self, document_id: int) -> Replica:
        """This process's replica, brought up to the newest committed version."""
        replica = self._replicas.get(document_id)
        if replica is None:
            replica = Replica(Doc(), 0, 0)
        items = await self.history(document_id, replica.version)
        for version, data in items:
            replica.doc.apply_update(data)
            replica.version = version
        self._remember(document_id, replica)
        return replica

    def _remember(self, document_id: int, replica: Replica) -> None:
        self._replicas[document_id] = replica
        self._replicas.move_to_end(document_id)
        while len(self._replicas) > self.cache_size:
            self._replicas.popitem(last=False)

    async def current(self, document_id: int) -> Current:
        async with self._lock(document_id):
            try:
                replica = await self._synced(document_id)
            except BaseException:
                self._replicas.pop(document_id, None)
                raise
            return Current(replica.version, replica.doc.get_update(), replica.doc.get_state(), replica.text)

    async def missing_for(self, document_id: int, state_vector: bytes) -> tuple[int, bytes]:
        """What a client whose Yjs state vector is `state_vector` lacks, as one update, and the version."""
        async with self._lock(document_id):
            replica = await self._synced(document_id)
            try:
                return replica.version, replica.doc.get_update(state_vector)
            except ValueError:
                raise InvalidUpdate("not a Yjs state vector") from None

    async def fork(self, document_id: int, version: int) -> Doc[Any]:
        """A private copy of the document as it was at `version` (for index-based edits)."""
        async with self._lock(document_id):
            replica = await self._synced(document_id)
            if version == replica.version:
                return doc_from([replica.doc.get_update()])
        if version > replica.version:
            raise VersionTooOld(f"version {version} does not exist yet")
        base, items = await self._history_with_base(document_id, 0)
        if base is not None and base > version:
            raise VersionTooOld(f"version {version} was compacted")
        return doc_from([data for v, data in items if v <= version])

    # --- writing ------------------------------------------------------------------------------

    async def apply(self, document_id: int, data: bytes, user_id: int | None) -> int:
        """Merge a Yjs update, durably, and return the document's new version."""
        async with self._lock(document_id):
            try:
                replica = await self._synced(document_id)
                async with self.sessions.begin() as session:
                    # The row lock serialises writers of this document across instances.
                    version: int | None = await session.scalar(
                        update(Document).where(Document.id == document_id)
                        .values(version=Document.version + 1).returning(Document.version)
                    )
                    if version is None:
                        raise DocumentGone()
                    # Under the row lock: writers on every instance see the same total.
                    stored = await self._stored_bytes(session, document_id)
                    if stored + len(data) > self.max_bytes:
                        raise DocumentTooLarge(stored + len(data), self.max_bytes)
                    if version != replica.version + 1:  # another instance wrote meanwhile
                        for _, missed in await self._missed(session, document_id, replica.version, version):
                            replica.doc.apply_update(missed)
                    try:
                        replica.doc.apply_update(data)
                    except ValueError:
                        raise InvalidUpdate("not a Yjs v1 update") from None
                    session.add(DocumentUpdate(document_id=document_id, version=version, data=data, user_id=user_id))
                replica.version = version
            except BaseException:
                self._replicas.pop(document_id, None)  # it may hold what was rolled back
                raise
            if version - replica.compacted >= self.compact_every + self.keep:
                replica.compacted = await self.compact(document_id, version - self.keep)
        return version

    @staticmethod
    async def _stored_bytes(session: AsyncSession, document_id: int) -> int:
        """What the document keeps now: its compacted state and its log."""
        log_bytes = select(func.coalesce(func.sum(func.length(DocumentUpdate.data)), 0)).where(
            DocumentUpdate.document_id == document_id).scalar_subquery()
        state_bytes = select(func.coalesce(func.sum(func.length(DocumentState.state)), 0)).where(
            DocumentState.document_id == document_id).scalar_subquery()
        return int(await session.scalar(select(log_bytes + state_bytes)) or 0)

    async def _missed(
        self, session: AsyncSession, document_id: int, after: int, before: int
    ) -> list[tuple[int, bytes]]:
        """Inside a writer's transaction (which holds the document's row lock): versions after..before."""
        found = await self._history(session, document_id, after, before)
        if found is None:
            raise RuntimeError(f"document {document_id}: the update log has a gap")
        return found[1]

    async def compact(self, document_id: int, upto: int) -> int:
        """Fold the log up to version `upto` into the stored state; returns the state's version."""
        try:
            async with self.sessions.begin() as session:
                # FOR UPDATE (PostgreSQL) keeps writers and other compactions of this document out.
                await session.execute(select(Document.id).where(Document.id == document_id).with_for_update())
                state = await session.get(DocumentState, document_id)
                base = state.version if state else 0
                if upto - base < self.compact_every:
                    return base
                rows = (await session.execute(
                    select(DocumentUpdate.version, DocumentUpdate.data)
                    .where(DocumentUpdate.document_id == document_id, DocumentUpdate.version > base,
                           DocumentUpdate.version <= upto)
                    .order_by(DocumentUpdate.version)
                )).all()
                if [row.version for row in rows] != list(range(base + 1, upto + 1)):
                    log.warning("document %s: not compacting, the log has a gap after %s", document_id, base)
                    return base
                doc = doc_from(([state.state] if state else []) + [row.data for row in rows])
                if state is None:
                    session.add(DocumentState(document_id=document_id, version=upto, state=doc.get_update()))
                else:
                    state.version, state.state = upto, doc.get_update()
                await session.execute(delete(DocumentUpdate).where(
                    DocumentUpdate.document_id == document_id, DocumentUpdate.version <= upto
                ))
            return int(upto)
        except SQLAlchemyError as exc:
            # Compaction only saves space and replay time; the log stays complete if it fails.
            log.warning("document %s: compaction failed (%s); will retry later", document_id, exc)
            return 0

    # --- snapshots ----------------------------------------------------------------------------

    async def create_snapshot(self, document_id: int, label: str, user_id: int | None) -> DocumentSnapshot:
        current = await self.current(document_id)
        snapshot = DocumentSnapshot(
            document_id=document_id, label=label, version=current.version, state=current.state, created_by=user_id
        )
        async with self.sessions.begin() as session:
            session.add(snapshot)
        return snapshot

    async def snapshots(self, document_id: int) -> Sequence[DocumentSnapshot]:
        async with self.sessions() as session:
            return (await session.scalars(
                select(DocumentSnapshot).where(DocumentSnapshot.document_id == document_id)
                .order_by(DocumentSnapshot.version.desc(), DocumentSnapshot.id.desc())
            )).all()

    async def snapshot_count(self, document_id: int) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(
                select(func.count()).select_from(DocumentSnapshot).where(DocumentSnapshot.document_id == document_id)
            ) or 0)

    async def snapshot(self, snapshot_id: int) -> DocumentSnapshot | None:
        async with self.sessions() as session:
            return await session.get(DocumentSnapshot, snapshot_id)
