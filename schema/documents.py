"""The `Document` type, collaborators, and the document mutations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

import resolvers.collaboration
import resolvers.documents
import resolvers.tasks
import resolvers.users
from auth import scopes
from auth.permissions import HasScope
from db.records import CollaboratorRecord as CollaboratorRow  # row types: Strawberry resolves Private[...] too
from db.records import DocumentRecord as DocumentRow
from resolvers.context import Context
from resolvers.errors import BadUserInput
from schema.directives import CONNECTION, ListSize
from schema.errors import UserError
from schema.inputs import page_args, task_query
from schema.lazy import DocumentSnapshotType, TaskFilterType, TaskOrderType, TaskType, UserType
from schema.lookahead import task_relations
from schema.relay import Connection, Node, connection, decode_id, encode_id
from schema.scalars import Base64


@strawberry.enum
class CollaboratorRole(enum.Enum):
    OWNER = "OWNER"
    EDITOR = "EDITOR"
    VIEWER = "VIEWER"


@strawberry.type
class Collaborator:
    role: CollaboratorRole
    _row: strawberry.Private[CollaboratorRow]

    @strawberry.field
    async def user(self, info: Info[Context, Any]) -> UserType:
        from schema.users import user_type

        return user_type(info.context, await resolvers.documents.collaborator_user(info.context, self._row))


@strawberry.type
class Document(Node):
    id: strawberry.ID
    title: str
    created_at: datetime
    updated_at: datetime
    _row: strawberry.Private[DocumentRow]

    @classmethod
    def from_row(cls, row: DocumentRow) -> Document:
        return cls(
            id=encode_id("Document", row.id), title=row.title,
            created_at=row.created_at, updated_at=row.updated_at, _row=row,
        )

    @strawberry.field
    async def owner(self, info: Info[Context, Any]) -> UserType:
        from schema.users import user_type

        row = await resolvers.users.user_or_none(info.context, self._row.owner_id)
        assert row is not None  # owner_id is a non-null foreign key
        return user_type(info.context, row)

    @strawberry.field(directives=[ListSize(assumed_size=5)])  # most documents have a few
    async def collaborators(self, info: Info[Context, Any]) -> list[Collaborator]:
        rows = await resolvers.documents.collaborators(info.context, self._row.id)
        return [Collaborator(role=CollaboratorRole(row.role), _row=row) for row in rows]

    @strawberry.field(description="Your role on this document.")
    async def viewer_role(self, info: Info[Context, Any]) -> CollaboratorRole | None:
        role = await resolvers.documents.viewer_role(info.context, self._row.id)
        return CollaboratorRole(role) if role else None

    @strawberry.field(description="How many updates the content has had; `content` and the Yjs fields are as of it.")
    async def version(self, info: Info[Context, Any]) -> int:
        return (await resolvers.collaboration.current(info.context, self._row.id)).version

    @strawberry.field(description="The text, as plain text.")
    async def content(self, info: Info[Context, Any]) -> str:
        return (await resolvers.collaboration.current(info.context, self._row.id)).text

    @strawberry.field(description="The Yjs state vector of the content.")
    async def state_vector(self, info: Info[Context, Any]) -> Base64:
        return Base64((await resolvers.collaboration.current(info.context, self._row.id)).state_vector)

    @strawberry.field(description="The whole content as one Yjs v1 update, at `version` (late joiners start here).")
    async def yjs_state(self, info: Info[Context, Any]) -> Base64:
        return Base64((await resolvers.collaboration.current(info.context, self._row.id)).state)

    @strawberry.field(directives=[ListSize(assumed_size=5)],
                      description="Who has this document's events open now (a `documentEvents` subscription), on "
                                  "any instance: what a late joiner shows before the JOINED and LEFT events arrive.")
    async def present(self, info: Info[Context, Any]) -> list[UserType]:
        from schema.users import user_type

        rows = await resolvers.collaboration.present(info.context, self._row.id)
        return [user_type(info.context, row) for row in rows]

    @strawberry.field(description="Named copies of the content, newest first.")
    async def snapshots(self, info: Info[Context, Any]) -> list[DocumentSnapshotType]:
        from schema.realtime import DocumentSnapshot

        rows = await resolvers.collaboration.snapshots(info.context, self._row.id)
        return [DocumentSnapshot.from_row(row) for row in rows]

    @strawberry.field(extensions=[PermissionExtension([HasScope(scopes.TASKS_READ)])], directives=[CONNECTION])
    async def tasks(
        self, info: Info[Context, Any],
        first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None,
        filter: TaskFilterType | None = None, order_by: TaskOrderType | None = None,
    ) -> Connection[TaskType]:
        from schema.tasks import Task

        f, order = task_query(filter, order_by)
        relations = task_relations(info)
        page = await resolvers.tasks.document_tasks(
            info.context, self._row.id, f, order, page_args(first, after, last, before), relations
        )
        return connection(page, Task.listed(info.context, relations))


@strawberry.input
class CreateDocumentInput:
    title: str


@strawberry.input
class UpdateDocumentInput:
    id: strawberry.ID
    title: str | None = strawberry.UNSET


@strawberry.input
class DeleteDocumentInput:
    id: strawberry.ID


@strawberry.input
class ShareDocumentInput:
    document_id: strawberry.ID
    user_id: strawberry.ID
    role: CollaboratorRole = CollaboratorRole.EDITOR


@strawberry.input
class UnshareDocumentInput:
    document_id: strawberry.ID
    user_id: strawberry.ID = strawberry.field(description="Yourself, to leave a document shared with you.")


@strawberry.type
class DocumentPayload:
    document: Document | None
    user_errors: list[UserError]


@strawberry.type
class DeleteDocumentPayload:
    deleted_document_id: strawberry.ID | None
    user_errors: list[UserError]


def _failed(exc: BadUserInput) -> DocumentPayload:
    return DocumentPayload(document=None, user_errors=[UserError.from_exception(exc)])


WRITE = [PermissionExtension([HasScope(scopes.DOCUMENTS_WRITE)])]


@strawberry.type
class DocumentMutations:
    @strawberry.mutation(extensions=WRITE)
    async def create_document(self, info: Info[Context, Any], input: CreateDocumentInput) -> DocumentPayload:
        try:
            row = await resolvers.documents.create_document(info.context, input.title)
        except BadUserInput as exc:
            return _failed(exc)
        return DocumentPayload(document=Document.from_row(row), user_errors=[])

    @strawberry.mutation(extensions=WRITE)
    async def update_document(self, info: Info[Context, Any], input: UpdateDocumentInput) -> DocumentPayload:
        try:
            document_id = decode_id(input.id, "Document")
            if input.title is strawberry.UNSET:
                row = await resolvers.documents.editable_document(info.context, document_id)
            else:
                row = await resolvers.documents.update_document(info.context, document_id, input.title)
        except BadUserInput as exc:
            return _failed(exc)
        return DocumentPayload(document=Document.from_row(row), user_errors=[])

    @strawberry.mutation(extensions=WRITE)
    async def delete_document(self, info: Info[Context, Any], input: DeleteDocumentInput) -> DeleteDocumentPayload:
        try:
            deleted = await resolvers.documents.delete_document(info.context, decode_id(input.id, "Document"))
        except BadUserInput as exc:
            return DeleteDocumentPayload(deleted_document_id=None, user_errors=[UserError.from_exception(exc)])
        return DeleteDocumentPayload(deleted_document_id=encode_id("Document", deleted), user_errors=[])

    @strawberry.mutation(extensions=WRITE)
    async def share_document(self, info: Info[Context, Any], input: ShareDocumentInput) -> DocumentPayload:
        try:
            row = await resolvers.documents.share_document(
                info.context, decode_id(input.document_id, "Document", "documentId"),
                decode_id(input.user_id, "User", "userId"), input.role.value,
            )
        except BadUserInput as exc:
            return _failed(exc)
        return DocumentPayload(document=Document.from_row(row), user_errors=[])

    @strawberry.mutation(extensions=WRITE)
    async def unshare_document(self, info: Info[Context, Any], input: UnshareDocumentInput) -> DocumentPayload:
        try:
            row = await resolvers.documents.unshare_document(
                info.context, decode_id(input.document_id, "Document", "documentId"),
                decode_id(input.user_id, "User", "userId"),
            )
        except BadUserInput as exc:
            return _failed(exc)
        return DocumentPayload(document=Document.from_row(row), user_errors=[])
