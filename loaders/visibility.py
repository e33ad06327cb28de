"""Who may see what, as SQL, so single lookups, lists and counts apply one rule.

- A document is visible to its collaborators (its owner is one, with role OWNER).
- A task is visible to its owner, its assignee, and every collaborator of its document.
Anything else reads as missing: callers turn "not visible" into NOT_FOUND, never FORBIDDEN.
"""

from __future__ import annotations

from sqlalchemy import BindParameter, ColumnElement, or_, select

from db.models import DocumentCollaborator, Task

# A user id, or a bind parameter for statements built once and run for many viewers.
UserId = int | BindParameter[int]


def documents_of(user_id: UserId) -> ColumnElement[bool]:
    from db.models import Document

    return Document.id.in_(select(DocumentCollaborator.document_id).where(DocumentCollaborator.user_id == user_id))


def tasks_visible_to(user_id: UserId) -> ColumnElement[bool]:
    return or_(
        Task.owner_id == user_id,
        Task.assignee_id == user_id,
        Task.document_id.in_(
            select(DocumentCollaborator.document_id).where(DocumentCollaborator.user_id == user_id)
        ),
    )
