"""Collaborative content and subscriptions: content mutations, presence, snapshots, and the event streams."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

import resolvers.collaboration as collaboration
import resolvers.task_events
from auth import scopes
from auth.permissions import HasScope
from db.collaboration import DocumentSnapshot as SnapshotRow  # row types: Strawberry resolves Private[...] too
from resolvers.context import Context
from resolvers.errors import BadUserInput
from schema.errors import UserError
from schema.inputs import task_query
from schema.lazy import DocumentType, TaskFilterType, TaskType, UserType
from schema.relay import decode_id, encode_id
from schema.scalars import Base64

READ = [PermissionExtension([HasScope(scopes.DOCUMENTS_READ)])]
WRITE = [PermissionExtension([HasScope(scopes.DOCUMENTS_WRITE)])]


async def _user(info: Info[Context, Any], user_id: int | None) -> UserType | None:
    from schema.users import user_type

    row = await info.context.loaders.users.by_id.load(user_id) if user_id is not None else None
    return user_type(info.context, row) if row else None


def _document(row: Any) -> DocumentType:
    from schema.documents import Document

    return Document.from_row(row)


@strawberry.type(description="A named copy of a document's content, restorable with `restoreDocumentSnapshot`.")
class DocumentSnapshot:
    id: strawberry.ID
    label: str
    version: int = strawberry.field(description="The document version the snapshot was taken at.")
    created_at: datetime
    _row: strawberry.Private[SnapshotRow]

    @classmethod
    def from_row(cls, row: SnapshotRow) -> DocumentSnapshot:
        return cls(id=encode_id("DocumentSnapshot", row.id), label=row.label, version=row.version,
                   created_at=row.created_at, _row=row)

    @strawberry.field(description="The text as it was.")
    def content(self) -> str:
        return collaboration.snapshot_text(self._row)

    @strawberry.field
    async def created_by(self, info: Info[Context, Any]) -> UserType | None:
        return await _user(info, self._row.created_by)


@strawberry.enum
class DocumentEventKind(enum.Enum):
    UPDATE = "UPDATE"
    CURSOR = "CURSOR"
    JOINED = "JOINED"
    LEFT = "LEFT"
    SNAPSHOT = "SNAPSHOT"


@strawberry.type
class Cursor:
    anchor: int
    head: int


@strawberry.type(description="One event of a document's ordered stream.")
class DocumentEvent:
    kind: DocumentEventKind
    document_id: strawberry.ID
    version: int = strawberry.field(
        description="UPDATE: the version this update produced. Others: the version they follow."
    )
    update: Base64 | None = strawberry.field(description="UPDATE: a Yjs v1 update.")
    cursor: Cursor | None = strawberry.field(description="CURSOR: the new cursor/selection (code points).")
    expires_at: datetime | None = strawberry.field(description="CURSOR: when it disappears unless moved again.")
    _event: strawberry.Private[collaboration.DocumentEvent]

    @classmethod
    def of(cls, event: collaboration.DocumentEvent) -> DocumentEvent:
        has_cursor = event.anchor is not None and event.head is not None
        cursor = Cursor(anchor=event.anchor, head=event.head) if has_cursor else None
        return cls(
            kind=DocumentEventKind(event.kind.value), document_id=encode_id("Document", event.document_id),
            version=event.version, update=Base64(event.update) if event.update is not None else None,
            cursor=cursor, expires_at=event.expires_at, _event=event,
        )

    @strawberry.field(description="Who did it (null for updates replayed from the log).")
    async def user(self, info: Info[Context, Any]) -> UserType | None:
        return await _user(info, self._event.user_id)

    @strawberry.field(description="SNAPSHOT: the new snapshot.")
    async def snapshot(self, info: Info[Context, Any]) -> DocumentSnapshot | None:
        if self._event.snapshot_id is None:
            return None
        row = await collaboration.realtime_of(info.context).documents.snapshot(self._event.snapshot_id)
        return DocumentSnapshot.from_row(row) if row else None


@strawberry.enum
class TaskEventKind(enum.Enum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@strawberry.type
class TaskEvent:
    kind: TaskEventKind
    task_id: strawberry.ID
    task: TaskType | None = strawberry.field(description="Null for DELETED.")


@strawberry.type(description="What a client with a given state vector is missing.")
class DocumentUpdates:
    version: int
    update: Base64 = strawberry.field(description="One Yjs v1 update; apply it to catch up.")


@strawberry.input
class ApplyDocumentUpdateInput:
    document_id: strawberry.ID
    update: Base64 = strawberry.field(description="A Yjs v1 update to the shared text `content`.")


@strawberry.input(description="Replace `delete` characters at `index` with `insert` (indices in code points).")
class TextEditInput:
    index: int
    delete: int = 0
    insert: str = ""


@strawberry.input
class EditDocumentTextInput:
    document_id: strawberry.ID
    edits: list[TextEditInput] = strawberry.field(description="Applied in order, each to the result of the last.")
    base_version: int = strawberry.field(description="The version whose text the indices refer to.")


@strawberry.input
class CursorInput:
    anchor: int
    head: int


@strawberry.input
class UpdatePresenceInput:
    document_id: strawberry.ID
    cursor: CursorInput
    base_version: int | None = strawberry.field(
        default=None, description="The version whose text the positions refer to; the server maps them through "
                                  "the edits made since, so the cursor stays on its character (default: the latest).")


@strawberry.input
class CreateDocumentSnapshotInput:
    document_id: strawberry.ID
    label: str


@strawberry.input
class RestoreDocumentSnapshotInput:
    snapshot_id: strawberry.ID


@strawberry.type
class DocumentContentPayload:
    document: DocumentType | None
    version: int | None = strawberry.field(description="The version your change produced.")
    user_errors: list[UserError]


@strawberry.type
class EditDocumentTextPayload:
    document: DocumentType | None
    version: int | None
    update: Base64 | None = strawberry.field(description="Your edits as a Yjs update, as broadcast.")
    user_errors: list[UserError]


@strawberry.type
class UpdatePresencePayload:
    expires_at: datetime | None
    user_errors: list[UserError]


@strawberry.type
class DocumentSnapshotPayload:
    snapshot: DocumentSnapshot | None
    user_errors: list[UserError]


def _content_failed(exc: BadUserInput) -> DocumentContentPayload:
    return DocumentContentPayload(document=None, version=None, user_errors=[UserError.from_exception(exc)])


@strawberry.type
class CollaborationMutations:
    @strawberry.mutation(extensions=WRITE, description="Merge a Yjs update; durable when this returns.")
    async def apply_document_update(
        self, info: Info[Context, Any], input: ApplyDocumentUpdateInput
    ) -> DocumentContentPayload:
        try:
            document_id = decode_id(input.document_id, "Document", "documentId")
            row, version = await collaboration.apply_update(info.context, document_id, bytes(input.update))
        except BadUserInput as exc:
            return _content_failed(exc)
        return DocumentContentPayload(document=_document(row), version=version, user_errors=[])

    @strawberry.mutation(extensions=WRITE, description="Index-based edits for clients without Yjs.")
    async def edit_document_text(
        self, info: Info[Context, Any], input: EditDocumentTextInput
    ) -> EditDocumentTextPayload:
        try:
            document_id = decode_id(input.document_id, "Document", "documentId")
            edits = [collaboration.TextEdit(index=e.index, delete=e.delete, insert=e.insert) for e in input.edits]
            row, version, update = await collaboration.edit_text(info.context, document_id, edits, input.base_version)
        except BadUserInput as exc:
            return EditDocumentTextPayload(document=None, version=None, update=None,
                                           user_errors=[UserError.from_exception(exc)])
        return EditDocumentTextPayload(document=_document(row), version=version, update=Base64(update), user_errors=[])

    @strawberry.mutation(extensions=READ, description="Show your cursor to the document's other viewers.")
    async def update_presence(self, info: Info[Context, Any], input: UpdatePresenceInput) -> UpdatePresencePayload:
        try:
            document_id = decode_id(input.document_id, "Document", "documentId")
            expires_at = await collaboration.update_presence(
                info.context, document_id, input.cursor.anchor, input.cursor.head, input.base_version
            )
        except BadUserInput as exc:
            return UpdatePresencePayload(expires_at=None, user_errors=[UserError.from_exception(exc)])
        return UpdatePresencePayload(expires_at=expires_at, user_errors=[])

    @strawberry.mutation(extensions=WRITE)
    async def create_document_snapshot(
        self, info: Info[Context, Any], input: CreateDocumentSnapshotInput
    ) -> DocumentSnapshotPayload:
        try:
            document_id = decode_id(input.document_id, "Document", "documentId")
            row = await collaboration.create_snapshot(info.context, document_id, input.label)
        except BadUserInput as exc:
            return DocumentSnapshotPayload(snapshot=None, user_errors=[UserError.from_exception(exc)])
        return DocumentSnapshotPayload(snapshot=DocumentSnapshot.from_row(row), user_errors=[])

    @strawberry.mutation(extensions=WRITE, description="Restoring is a new update: it merges for everyone.")
    async def restore_document_snapshot(
        self, info: Info[Context, Any], input: RestoreDocumentSnapshotInput
    ) -> DocumentContentPayload:
        try:
            snapshot_id = decode_id(input.snapshot_id, "DocumentSnapshot", "snapshotId")
            row, version = await collaboration.restore_snapshot(info.context, snapshot_id)
        except BadUserInput as exc:
            return _content_failed(exc)
        return DocumentContentPayload(document=_document(row), version=version, user_errors=[])


@strawberry.type
class CollaborationQueries:
    @strawberry.field(extensions=READ, description="The update a client with `stateVector` lacks (to catch up).")
    async def document_updates_since(
        self, info: Info[Context, Any], document_id: strawberry.ID, state_vector: Base64
    ) -> DocumentUpdates:
        pk = decode_id(document_id, "Document", "documentId")
        version, update = await collaboration.updates_since(info.context, pk, bytes(state_vector))
        return DocumentUpdates(version=version, update=Base64(update))


@strawberry.type
class Subscription:
    @strawberry.subscription(
        extensions=READ,
        description="One ordered stream per document. With `afterVersion`, first every update after it.",
    )
    async def document_events(
        self, info: Info[Context, Any], document_id: strawberry.ID, after_version: int | None = None
    ) -> AsyncGenerator[DocumentEvent, None]:
        pk = decode_id(document_id, "Document", "documentId")
        async for event in collaboration.document_events(info.context, pk, after_version):
            yield DocumentEvent.of(event)

    @strawberry.subscription(
        extensions=[PermissionExtension([HasScope(scopes.TASKS_READ)])],
        description="CREATED/UPDATED/DELETED for tasks you may see (and that match `filter`).",
    )
    async def task_events(
        self, info: Info[Context, Any], filter: TaskFilterType | None = None
    ) -> AsyncGenerator[TaskEvent, None]:
        from schema.tasks import Task

        f, _ = task_query(filter, None)
        async for event in resolvers.task_events.task_events(info.context, f):
            yield TaskEvent(
                kind=TaskEventKind(event.kind.value), task_id=encode_id("Task", event.task_id),
                task=Task.from_row(event.task) if event.task is not None else None,
            )
