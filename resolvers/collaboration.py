"""Collaborative content: who may read and change it, and how each change reaches everyone.

The document rules of `resolvers.documents` hold for every operation here: collaborators read
(content, snapshots, events, presence); editors and the owner change content and take or restore
snapshots. Anything else reads as NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from db.collaboration import DocumentSnapshot
from db.records import DocumentRecord
from loaders import Loaders
from realtime.broker import SubscriberOverflow
from realtime.documents import (
    Current,
    DocumentGone,
    DocumentTooLarge,
    InvalidUpdate,
    VersionTooOld,
    doc_from,
    text_of,
)
from realtime.events import DocumentEventKind, decode
from realtime.hub import Realtime
from realtime.text import EditOutOfRange, apply_edits, edits_between, map_positions
from realtime.text import TextEdit as TextEdit  # re-exported for the schema
from resolvers import validation
from resolvers.context import Context
from resolvers.documents import editable_document, visible_document
from resolvers.errors import BadUserInput, DomainError, LimitExceeded, NotFound

MAX_UPDATE_BYTES = 512 * 1024
MAX_EDITS = 1000
MAX_INSERTED_CHARACTERS = 100_000
LABEL_MAX = 200
# graphql-ws clients retry on this close code (RFC 6455: "try again later").
TOO_SLOW_CLOSE_CODE = 1013

Disconnect = Callable[[int, str], Coroutine[Any, Any, None]]


class RateLimited(DomainError):
    code = "RATE_LIMITED"


class SubscriberTooSlow(DomainError):
    code = "SUBSCRIBER_TOO_SLOW"


@dataclass(frozen=True, slots=True)
class DocumentEvent:
    kind: DocumentEventKind
    document_id: int
    version: int
    user_id: int | None = None
    update: bytes | None = None
    anchor: int | None = None
    head: int | None = None
    expires_at: datetime | None = None
    snapshot_id: int | None = None


def realtime_of(ctx: Context) -> Realtime:
    if ctx.realtime is None:
        raise RuntimeError("this context has no realtime hub; create_app wires one")
    return ctx.realtime


# One read of a document's content per request, shared by `version`, `content`, `stateVector` and
# `yjsState`, so the fields of one response always describe the same version.
_CURRENT = "collaboration.current"


def refresh(ctx: Context) -> None:
    """Long-lived contexts (a WebSocket) get fresh loaders, so rights and rows are read anew."""
    ctx.loaders = Loaders(ctx.sessions, ctx.viewer.user_id if ctx.viewer else None, reads=ctx.loaders.reads)
    ctx.extras.pop(_CURRENT, None)


# --- reading --------------------------------------------------------------------------------


async def current(ctx: Context, document_id: int) -> Current:
    """The document's content, version and Yjs state, as of one moment of this request."""
    memo = cast("dict[int, asyncio.Task[Current]]", ctx.extras.setdefault(_CURRENT, {}))
    if document_id not in memo:
        memo[document_id] = asyncio.ensure_future(_read_current(ctx, document_id))
    return await memo[document_id]


async def _read_current(ctx: Context, document_id: int) -> Current:
    await visible_document(ctx, document_id)
    try:
        return await realtime_of(ctx).documents.current(document_id)
    except DocumentGone:
        raise NotFound("Document not found.") from None


async def updates_since(ctx: Context, document_id: int, state_vector: bytes) -> tuple[int, bytes]:
    await visible_document(ctx, document_id)
    try:
        return await realtime_of(ctx).documents.missing_for(document_id, state_vector)
    except InvalidUpdate:
        raise BadUserInput("`stateVector` is not a Yjs state vector.", field="stateVector") from None
    except DocumentGone:
        raise NotFound("Document not found.") from None


async def snapshots(ctx: Context, document_id: int) -> Sequence[DocumentSnapshot]:
    await visible_document(ctx, document_id)
    return await realtime_of(ctx).documents.snapshots(document_id)


def snapshot_text(snapshot: DocumentSnapshot) -> str:
    return text_of(doc_from([snapshot.state]))


# --- writing --------------------------------------------------------------------------------


async def _apply(ctx: Context, document_id: int, update: bytes) -> int:
    hub = realtime_of(ctx)
    try:
        version = await hub.documents.apply(document_id, update, ctx.require_user())
    except InvalidUpdate:
        raise BadUserInput("`update` is not a Yjs (v1) update.", field="update") from None
    except DocumentTooLarge as exc:
        raise LimitExceeded(f"The document would take {exc.size} bytes; it may keep at most {exc.limit}. "
                            "Delete content, or start another document.", field="update") from None
    except DocumentGone:
        raise NotFound("Document not found.") from None
    ctx.loaders.documents.forget(document_id)
    cast("dict[int, object]", ctx.extras.get(_CURRENT, {})).pop(document_id, None)
    await hub.publish_document(
        document_id, DocumentEventKind.UPDATE, version,
        userId=ctx.require_user(), update=base64.b64encode(update).decode(),
    )
    return version


async def apply_update(ctx: Context, document_id: int, update: bytes) -> tuple[DocumentRecord, int]:
    """Merge a Yjs update; durable before this returns. Returns the document and the new version."""
    await editable_document(ctx, document_id)
    if not update:
        raise BadUserInput("`update` is empty.", field="update")
    if len(update) > MAX_UPDATE_BYTES:
        raise BadUserInput(f"`update` is {len(update)} bytes; the maximum is {MAX_UPDATE_BYTES}.", field="update")
    version = await _apply(ctx, document_id, update)
    return await visible_document(ctx, document_id), version


async def edit_text(
    ctx: Context, document_id: int, edits: Sequence[TextEdit], base_version: int
) -> tuple[DocumentRecord, int, bytes]:
    """Index-based edits against the text at `base_version`, merged with whatever came after it."""
    await editable_document(ctx, document_id)
    if not edits:
        raise BadUserInput("`edits` is empty.", field="edits")
    if len(edits) > MAX_EDITS:
        raise BadUserInput(f"At most {MAX_EDITS} edits at once; {len(edits)} given.", field="edits")
    inserted = sum(len(edit.insert) for edit in edits)
    if inserted > MAX_INSERTED_CHARACTERS:
        raise BadUserInput(f"At most {MAX_INSERTED_CHARACTERS} characters may be inserted at once.", field="edits")
    for edit in edits:
        validation.optional_text(edit.insert, "edits.insert", MAX_INSERTED_CHARACTERS)
    if base_version < 0:
        raise BadUserInput("`baseVersion` must not be negative.", field="baseVersion")
    try:
        fork = await realtime_of(ctx).documents.fork(document_id, base_version)
    except VersionTooOld as exc:
        raise BadUserInput(
            f"`baseVersion` {base_version} is not available ({exc}); read the document again.", field="baseVersion"
        ) from None
    except DocumentGone:
        raise NotFound("Document not found.") from None
    try:
        update = apply_edits(fork, list(edits))
    except EditOutOfRange as exc:
        raise BadUserInput(f"Edit {exc.position}: {exc.message}", field=f"edits.{exc.position}") from None
    version = await _apply(ctx, document_id, update)
    return await visible_document(ctx, document_id), version, update


async def create_snapshot(ctx: Context, document_id: int, label: str) -> DocumentSnapshot:
    await editable_document(ctx, document_id)
    clean = validation.required_text(label, "label", LABEL_MAX)
    hub = realtime_of(ctx)
    limit = ctx.limits.max_snapshots_per_document
    if await hub.documents.snapshot_count(document_id) >= limit:
        raise LimitExceeded(f"The document has {limit} snapshots, the most allowed.", field="documentId")
    try:
        snapshot = await hub.documents.create_snapshot(document_id, clean, ctx.require_user())
    except DocumentGone:
        raise NotFound("Document not found.") from None
    await hub.publish_document(
        document_id, DocumentEventKind.SNAPSHOT, snapshot.version, userId=ctx.require_user(), snapshotId=snapshot.id
    )
    return snapshot


async def restore_snapshot(ctx: Context, snapshot_id: int) -> tuple[DocumentRecord, int]:
    """Make the content equal the snapshot's again, as a new update (so it merges like any edit)."""
    hub = realtime_of(ctx)
    snapshot = await hub.documents.snapshot(snapshot_id)
    if snapshot is None or await ctx.loaders.documents.by_id.load(snapshot.document_id) is None:
        raise NotFound("Snapshot not found.")
    document_id = snapshot.document_id
    await editable_document(ctx, document_id)
    try:
        now = await hub.documents.current(document_id)
        fork = await hub.documents.fork(document_id, now.version)
    except DocumentGone:
        raise NotFound("Document not found.") from None
    edits = edits_between(now.text, snapshot_text(snapshot))
    if not edits:
        return await visible_document(ctx, document_id), now.version
    version = await _apply(ctx, document_id, apply_edits(fork, edits))
    return await visible_document(ctx, document_id), version


async def present(ctx: Context, document_id: int) -> list[Any]:
    """The users who have the document's events open now, on any instance (the document is visible:
    its field resolved). Users deleted meanwhile are left out."""
    users = await ctx.loaders.users.by_id.load_many(await realtime_of(ctx).present(document_id))
    return [user for user in users if user is not None]


async def update_presence(
    ctx: Context, document_id: int, anchor: int, head: int, base_version: int | None = None
) -> datetime:
    """Show the viewer's cursor to everyone in the document; returns when it expires. Positions given
    for an older `base_version` are mapped through the edits made since."""
    document = await visible_document(ctx, document_id)
    user_id = ctx.require_user()
    if anchor < 0 or head < 0:
        raise BadUserInput("Cursor positions must not be negative.", field="cursor")
    hub = realtime_of(ctx)
    if not hub.presence.allow(document_id, user_id):
        raise RateLimited(f"At most {hub.presence.rate:g} cursor updates per second; slow down.")
    version = document.version
    if base_version is not None and base_version != version:
        anchor, head, version = await _mapped(hub, document_id, base_version, version, anchor, head)
    hub.presence.moved(document_id, user_id)
    expires_at = datetime.fromtimestamp(time.time() + hub.presence.timeout, UTC)
    await hub.publish_document(
        document_id, DocumentEventKind.CURSOR, version,
        userId=user_id, anchor=anchor, head=head, expiresAt=expires_at.timestamp(),
    )
    return expires_at


async def _mapped(hub: Realtime, document_id: int, base_version: int, latest: int, anchor: int,
                  head: int) -> tuple[int, int, int]:
    """The cursor given at `base_version`, at the latest version: (anchor, head, that version)."""
    if not 0 <= base_version <= latest:
        raise BadUserInput(f"`baseVersion` must be between 0 and {latest}.", field="baseVersion")
    try:
        fork = await hub.documents.fork(document_id, base_version)
        later = await hub.documents.history(document_id, base_version)
    except VersionTooOld as exc:
        raise BadUserInput(f"`baseVersion` {base_version} is not available ({exc}); read the document again.",
                           field="baseVersion") from None
    except DocumentGone:
        raise NotFound("Document not found.") from None
    anchor, head = map_positions(fork, [update for _, update in later], [anchor, head])
    return anchor, head, later[-1][0] if later else base_version


# --- the event stream -------------------------------------------------------------------------


def _event(raw: dict[str, Any]) -> DocumentEvent:
    expires = raw.get("expiresAt")
    return DocumentEvent(
        kind=DocumentEventKind(raw["kind"]), document_id=int(raw["documentId"]), version=int(raw["version"]),
        user_id=raw.get("userId"), update=base64.b64decode(raw["update"]) if raw.get("update") else None,
        anchor=raw.get("anchor"), head=raw.get("head"), snapshot_id=raw.get("snapshotId"),
        expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
    )


async def _still_visible(ctx: Context, document_id: int) -> None:
    refresh(ctx)
    await visible_document(ctx, document_id)  # NotFound ends the stream


async def too_slow(ctx: Context) -> None:
    message = "You fell too far behind this document's events; reconnect and resume with afterVersion."
    disconnect = cast("Disconnect | None", ctx.extras.get("disconnect"))
    if disconnect is not None:
        await disconnect(TOO_SLOW_CLOSE_CODE, "Subscriber too slow: resume with afterVersion")
    raise SubscriberTooSlow(message)


async def document_events(
    ctx: Context, document_id: int, after_version: int | None
) -> AsyncGenerator[DocumentEvent, None]:
    """One ordered stream per document: content updates strictly by version (gaps refilled from the
    database), and cursor, presence and snapshot events as they happen, each with the version they
    follow. With `after_version`, first everything after it, so a reconnecting client misses nothing."""
    user_id = ctx.require_user()
    refresh(ctx)
    await visible_document(ctx, document_id)
    hub = realtime_of(ctx)
    subscription = await hub.subscribe_document(document_id)  # before reading: nothing falls in between
    watching = False
    try:
        latest = await hub.latest_version(document_id)
        if latest is None:
            raise NotFound("Document not found.")
        delivered = latest
        if after_version is not None:
            if not 0 <= after_version <= latest:
                raise BadUserInput(f"`afterVersion` must be between 0 and {latest}.", field="afterVersion")
            delivered = after_version
            for version, update in await hub.documents.history(document_id, after_version):
                yield DocumentEvent(DocumentEventKind.UPDATE, document_id, version, update=update)
                delivered = version
        await hub.joined(document_id, user_id, delivered)
        watching = True
        while True:
            try:
                # Not `wait_for` (a task per event, and on 3.11 it can lose the cancellation of a
                # closing socket); a timed-out `get` leaves the queued message where it was.
                async with asyncio.timeout(hub.recheck_seconds):
                    message = await anext(subscription)
            except TimeoutError:
                await _still_visible(ctx, document_id)
                for version, update in await hub.documents.history(document_id, delivered):
                    yield DocumentEvent(DocumentEventKind.UPDATE, document_id, version, update=update)
                    delivered = version
                continue
            except SubscriberOverflow:
                await too_slow(ctx)
                return
            event = _event(decode(message))
            if event.kind is DocumentEventKind.ACCESS:
                await _still_visible(ctx, document_id)
                continue
            if event.kind is not DocumentEventKind.UPDATE:
                yield event
                continue
            if event.version <= delivered:
                continue  # already delivered (replayed, or refilled after a gap)
            if event.version > delivered + 1:  # a message was lost or overtaken: the log has it
                for version, update in await hub.documents.history(document_id, delivered):
                    yield DocumentEvent(DocumentEventKind.UPDATE, document_id, version, update=update)
                    delivered = version
                continue
            yield event
            delivered = event.version
    except DocumentGone:
        raise NotFound("Document not found.") from None
    finally:
        await subscription.close()
        if watching:
            await hub.left(document_id, user_id)
