"""Document reads: by id, collaborators, and pages/counts of a user's documents, all batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, func, select
from strawberry.dataloader import DataLoader

from db.engine import Sessions
from db.models import Document, DocumentCollaborator
from loaders.batching import AnySelect, forget, group_indexes, many_per_key, one_per_key, rows, scalars, windowed_page
from loaders.visibility import documents_of


@dataclass(frozen=True, slots=True)
class PageKey:
    parent: int
    offset: int = 0
    limit: int = 20


ORDER: list[ColumnElement[Any]] = [Document.updated_at.desc(), Document.id.desc()]


def visible_documents(viewer_id: int) -> AnySelect:
    return select(Document).where(documents_of(viewer_id))


async def page_of_visible_documents(
    sessions: Sessions, viewer_id: int, offset: int, limit: int
) -> Sequence[Document]:
    return await scalars(sessions, visible_documents(viewer_id).order_by(*ORDER).offset(offset).limit(limit))


async def count_visible_documents(sessions: Sessions, viewer_id: int) -> int:
    statement = select(func.count()).select_from(visible_documents(viewer_id).subquery())
    return int((await rows(sessions, statement))[0][0])


async def _documents_by_ids(sessions: Sessions, viewer_id: int, ids: Sequence[int]) -> list[Document | None]:
    found = await scalars(sessions, select(Document).where(Document.id.in_(ids), documents_of(viewer_id)))
    return one_per_key(ids, found, lambda document: document.id)


async def _collaborators(sessions: Sessions, ids: Sequence[int]) -> list[list[DocumentCollaborator]]:
    statement = (
        select(DocumentCollaborator)
        .where(DocumentCollaborator.document_id.in_(ids))
        .order_by(DocumentCollaborator.document_id, DocumentCollaborator.created_at, DocumentCollaborator.user_id)
    )
    return many_per_key(ids, await scalars(sessions, statement), lambda row: row.document_id)


async def _pages(sessions: Sessions, viewer_id: int, keys: Sequence[PageKey]) -> list[list[Document]]:
    results: list[list[Document]] = [[] for _ in keys]
    for indexes in group_indexes(keys, lambda k: (k.offset, k.limit)).values():
        parents = [keys[i].parent for i in indexes]
        partition = DocumentCollaborator.user_id
        base = (
            select(Document, partition.label("partition_key"))
            .join(DocumentCollaborator, DocumentCollaborator.document_id == Document.id)
            .where(partition.in_(parents), documents_of(viewer_id))
        )
        sample = keys[indexes[0]]
        statement = windowed_page(Document, base, partition, ORDER, sample.offset, sample.limit)
        by_parent = dict(zip(parents, indexes, strict=True))
        for document, parent in await rows(sessions, statement):
            results[by_parent[parent]].append(document)
    return results


async def _counts(sessions: Sessions, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
    statement = (
        select(DocumentCollaborator.user_id, func.count(Document.id))
        .join(Document, DocumentCollaborator.document_id == Document.id)
        .where(DocumentCollaborator.user_id.in_(user_ids), documents_of(viewer_id))
        .group_by(DocumentCollaborator.user_id)
    )
    counts = {user_id: count for user_id, count in await rows(sessions, statement)}
    return [int(counts.get(user_id, 0)) for user_id in user_ids]


class DocumentLoaders:
    """Per-request document loaders, bound to the viewer so invisible documents load as `None`."""

    def __init__(self, sessions: Sessions, viewer_id: int) -> None:
        self.by_id = DataLoader[int, Document | None](partial(_documents_by_ids, sessions, viewer_id))
        self.collaborators = DataLoader[int, list[DocumentCollaborator]](partial(_collaborators, sessions))
        self.page_by_user = DataLoader[PageKey, list[Document]](partial(_pages, sessions, viewer_id))
        self.count_by_user = DataLoader[int, int](partial(_counts, sessions, viewer_id))

    def forget(self, document_id: int) -> None:
        forget(self.by_id, document_id)
        forget(self.collaborators, document_id)
        self.page_by_user.clear_all()
        self.count_by_user.clear_all()
