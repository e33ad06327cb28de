"""Documents: visibility through collaboration, editing by EDITOR/OWNER, sharing and deletion by OWNER."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, update

from db.models import CollaboratorRole, Document, DocumentCollaborator
from db.records import CollaboratorRecord, DocumentRecord, UserRecord
from loaders import documents as document_queries
from loaders.soon import Soon, peek
from realtime.events import DocumentEventKind
from resolvers import outbox, validation
from resolvers.context import Context
from resolvers.errors import BadUserInput, Forbidden, NotFound
from resolvers.global_ids import encode_id
from resolvers.pagination import Page, PageArgs, paginate
from resolvers.quotas import within_quota

EDITING_ROLES = frozenset({CollaboratorRole.OWNER.value, CollaboratorRole.EDITOR.value})
TITLE_MAX = 500


async def _access_changed(ctx: Context, document_id: int) -> None:
    """Open subscriptions to the document re-read their viewer's rights now (see resolvers.collaboration)."""
    if ctx.realtime is not None:
        await ctx.realtime.publish_document(document_id, DocumentEventKind.ACCESS, 0)


async def visible_document(ctx: Context, document_id: int) -> DocumentRecord:
    ctx.require_user()
    document = await ctx.loaders.documents.by_id.load(document_id)
    if document is None:
        raise NotFound("Document not found.")
    return document


async def document_or_none(ctx: Context, document_id: int | None) -> DocumentRecord | None:
    """For nested fields: a document the viewer cannot see is simply absent."""
    if document_id is None or ctx.viewer is None:
        return None
    return await ctx.loaders.documents.by_id.load(document_id)


def document_soon(ctx: Context, document_id: int | None) -> Soon[DocumentRecord | None]:
    """`document_or_none`, without a coroutine when the document is loaded already."""
    if document_id is None or ctx.viewer is None:
        return None
    return peek(ctx.loaders.documents.by_id, document_id)


async def collaborators(ctx: Context, document_id: int) -> Sequence[CollaboratorRecord]:
    return await ctx.loaders.documents.collaborators.load(document_id)


async def viewer_role(ctx: Context, document_id: int) -> str | None:
    viewer_id = ctx.require_user()
    for collaborator in await ctx.loaders.documents.collaborators.load(document_id):
        if collaborator.user_id == viewer_id:
            return collaborator.role
    return None


async def _document_for(ctx: Context, document_id: int, roles: frozenset[str], action: str) -> DocumentRecord:
    document = await visible_document(ctx, document_id)
    if await viewer_role(ctx, document_id) not in roles:
        raise Forbidden(f"Your role on this document does not allow you to {action} it.")
    return document


async def editable_document(ctx: Context, document_id: int) -> DocumentRecord:
    return await _document_for(ctx, document_id, EDITING_ROLES, "edit")


async def owned_document(ctx: Context, document_id: int, action: str) -> DocumentRecord:
    return await _document_for(ctx, document_id, frozenset({CollaboratorRole.OWNER.value}), action)


async def visible_documents(ctx: Context, args: PageArgs) -> Page[DocumentRecord]:
    viewer_id = ctx.require_user()
    return await paginate(
        args,
        ctx.limits,
        lambda offset, limit: document_queries.page_of_visible_documents(ctx.loaders.reads, viewer_id, offset, limit),
        lambda: document_queries.count_visible_documents(ctx.loaders.reads, viewer_id),
    )


async def user_documents(ctx: Context, user_id: int, args: PageArgs) -> Page[DocumentRecord]:
    ctx.require_user()
    loaders = ctx.loaders.documents

    async def fetch(offset: int, limit: int) -> Sequence[DocumentRecord]:
        return await loaders.page_by_user.load(document_queries.PageKey(user_id, offset, limit))

    return await paginate(args, ctx.limits, fetch, lambda: loaders.count_by_user.load(user_id))


async def create_document(ctx: Context, title: str) -> Document:
    viewer_id = ctx.require_user()
    document = Document(title=validation.required_text(title, "title", TITLE_MAX), owner_id=viewer_id)
    async with ctx.sessions.begin() as session:
        limit = ctx.limits.max_documents_per_user
        await within_quota(session, Document.owner_id, viewer_id, limit,
                           f"You own {limit} documents, the most allowed; delete some first.", field="title")
        session.add(document)
        await session.flush()
        session.add(
            DocumentCollaborator(document_id=document.id, user_id=viewer_id, role=CollaboratorRole.OWNER.value)
        )
    return document


async def update_document(ctx: Context, document_id: int, title: str | None) -> DocumentRecord:
    await editable_document(ctx, document_id)
    clean = validation.required_text(title, "title", TITLE_MAX)
    async with ctx.sessions.begin() as session:
        await session.execute(update(Document).where(Document.id == document_id).values(title=clean))
        await outbox.document_changed(session, outbox.DOCUMENT_UPDATED, document_id)
    ctx.loaders.documents.forget(document_id)
    return await visible_document(ctx, document_id)


async def delete_document(ctx: Context, document_id: int) -> int:
    await owned_document(ctx, document_id, "delete")
    async with ctx.sessions.begin() as session:
        await session.execute(delete(Document).where(Document.id == document_id))
    ctx.loaders.documents.forget(document_id)
    await _access_changed(ctx, document_id)
    return document_id


async def share_document(ctx: Context, document_id: int, user_id: int, role: str) -> DocumentRecord:
    document = await owned_document(ctx, document_id, "share")
    if role == CollaboratorRole.OWNER.value:
        raise BadUserInput("A document has one owner; share it as EDITOR or VIEWER.", field="role")
    if user_id == document.owner_id:
        raise BadUserInput("The owner already has full access.", field="userId")
    if await ctx.loaders.users.by_id.load(user_id) is None:
        raise BadUserInput("No such user.", field="userId")
    async with ctx.sessions.begin() as session:
        existing = await session.get(DocumentCollaborator, (document_id, user_id))
        if existing is None:
            session.add(DocumentCollaborator(document_id=document_id, user_id=user_id, role=role))
        else:
            existing.role = role
        shared_with = {"user": {"id": encode_id("User", user_id)}, "role": role}
        await outbox.document_changed(session, outbox.DOCUMENT_SHARED, document_id, shared_with)
    ctx.loaders.documents.forget(document_id)
    await _access_changed(ctx, document_id)
    return document


async def unshare_document(ctx: Context, document_id: int, user_id: int) -> DocumentRecord:
    viewer_id = ctx.require_user()
    document = await visible_document(ctx, document_id)
    leaving = user_id == viewer_id
    if leaving and document.owner_id == viewer_id:
        raise BadUserInput("The owner cannot leave their own document; delete it instead.", field="userId")
    if not leaving:
        await owned_document(ctx, document_id, "unshare")
        if user_id == document.owner_id:
            raise BadUserInput("The owner cannot be removed.", field="userId")
    async with ctx.sessions.begin() as session:
        removed = await session.execute(
            delete(DocumentCollaborator).where(
                DocumentCollaborator.document_id == document_id, DocumentCollaborator.user_id == user_id
            )
        )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise BadUserInput("That user is not a collaborator.", field="userId")
    ctx.loaders.documents.forget(document_id)
    await _access_changed(ctx, document_id)
    return document


async def collaborator_user(ctx: Context, collaborator: CollaboratorRecord) -> UserRecord:
    user = await ctx.loaders.users.by_id.load(collaborator.user_id)
    assert user is not None  # the foreign key cascades deletions
    return user

