"""Document reads: by id, collaborators, and pages/counts of a user's documents, all batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, func, select
from strawberry.dataloader import DataLoader

from db.models import Document, DocumentCollaborator
from db.reads import Reads
from db.records import CollaboratorRecord, DocumentRecord
from loaders.batching import (
    IDS,
    LIMIT,
    OFFSET,
    VIEWER,
    forget,
    group_indexes,
    many_per_key,
    one_per_key,
    windowed_rows,
)
from loaders.visibility import documents_of


@dataclass(frozen=True, slots=True)
class PageKey:
    parent: int
    offset: int = 0
    limit: int = 20


ORDER: list[ColumnElement[Any]] = [Document.updated_at.desc(), Document.id.desc()]

_VISIBLE = select(Document.__table__).where(documents_of(VIEWER))
_VISIBLE_PAGE = _VISIBLE.order_by(*ORDER).offset(OFFSET).limit(LIMIT)
_VISIBLE_COUNT = select(func.count()).select_from(_VISIBLE.subquery())
_BY_IDS = select(Document.__table__).where(Document.id.in_(IDS), documents_of(VIEWER))
_COLLABORATORS = (
    select(DocumentCollaborator.__table__)
    .where(DocumentCollaborator.document_id.in_(IDS))
    .order_by(DocumentCollaborator.document_id, DocumentCollaborator.created_at, DocumentCollaborator.user_id)
)
_PAGES = windowed_rows(
    Document.__table__,  # type: ignore[arg-type]
    select(Document.__table__, DocumentCollaborator.user_id.label("partition_key"))
    .join(DocumentCollaborator, DocumentCollaborator.document_id == Document.id)
    .where(DocumentCollaborator.user_id.in_(IDS), documents_of(VIEWER)),
    DocumentCollaborator.user_id,
    ORDER,
)
_COUNTS = (
    select(DocumentCollaborator.user_id, func.count(Document.id))
    .join(Document, DocumentCollaborator.document_id == Document.id)
    .where(DocumentCollaborator.user_id.in_(IDS), documents_of(VIEWER))
    .group_by(DocumentCollaborator.user_id)
)


async def page_of_visible_documents(reads: Reads, viewer_id: int, offset: int, limit: int) -> Sequence[DocumentRecord]:
    return await reads.all(_VISIBLE_PAGE, {"viewer": viewer_id, "offset": offset, "limit": limit})


async def count_visible_documents(reads: Reads, viewer_id: int) -> int:
    return int((await reads.all(_VISIBLE_COUNT, {"viewer": viewer_id}))[0][0])


async def _documents_by_ids(reads: Reads, viewer_id: int, ids: Sequence[int]) -> list[DocumentRecord | None]:
    found = await reads.lookup(_BY_IDS, {"ids": list(ids), "viewer": viewer_id})
    return one_per_key(ids, found, lambda document: document.id)


async def _collaborators(reads: Reads, ids: Sequence[int]) -> list[list[CollaboratorRecord]]:
    found = await reads.lookup(_COLLABORATORS, {"ids": list(ids)})
    return many_per_key(ids, found, lambda row: row.document_id)


async def _pages(reads: Reads, viewer_id: int, keys: Sequence[PageKey]) -> list[list[DocumentRecord]]:
    results: list[list[DocumentRecord]] = [[] for _ in keys]
    for indexes in group_indexes(keys, lambda k: (k.offset, k.limit)).values():
        parents = [keys[i].parent for i in indexes]
        sample = keys[indexes[0]]
        found = await reads.all(
            _PAGES, {"ids": parents, "viewer": viewer_id, "offset": sample.offset, "limit": sample.limit}
        )
        by_parent = dict(zip(parents, indexes, strict=True))
        for row in found:
            results[by_parent[row.partition_key]].append(row)
    return results


async def _counts(reads: Reads, viewer_id: int, user_ids: Sequence[int]) -> list[int]:
    found = await reads.all(_COUNTS, {"ids": list(user_ids), "viewer": viewer_id})
    counts = {row[0]: row[1] for row in found}
    return [int(counts.get(user_id, 0)) for user_id in user_ids]


class DocumentLoaders:
    """Per-request document loaders, bound to the viewer so invisible documents load as `None`."""

    def __init__(self, reads: Reads, viewer_id: int) -> None:
        self.by_id = DataLoader[int, DocumentRecord | None](partial(_documents_by_ids, reads, viewer_id))
        self.collaborators = DataLoader[int, list[CollaboratorRecord]](partial(_collaborators, reads))
        self.page_by_user = DataLoader[PageKey, list[DocumentRecord]](partial(_pages, reads, viewer_id))
        self.count_by_user = DataLoader[int, int](partial(_counts, reads, viewer_id))

    def forget(self, document_id: int) -> None:
        forget(self.by_id, document_id)
        forget(self.collaborators, document_id)
        self.page_by_user.clear_all()
        self.count_by_user.clear_all()
