"""Small async factories: each test creates exactly the rows it needs."""

from __future__ import annotations

import itertools
from datetime import datetime

from db.engine import Sessions
from db.models import CollaboratorRole, Document, DocumentCollaborator, Task, TaskLabel, User

_numbers = itertools.count(1)


async def make_user(sessions: Sessions, name: str | None = None, *, role: str = "member") -> User:
    n = next(_numbers)
    user = User(email=f"user{n}@example.test", name=name or f"User {n}", password_hash=None, role=role)
    async with sessions.begin() as session:
        session.add(user)
    return user


async def make_document(
    sessions: Sessions, owner: User, title: str = "Doc", *, editors: list[User] = (), viewers: list[User] = ()  # type: ignore[assignment]
) -> Document:
    document = Document(title=title, owner_id=owner.id)
    async with sessions.begin() as session:
        session.add(document)
        await session.flush()
        session.add(DocumentCollaborator(document_id=document.id, user_id=owner.id, role=CollaboratorRole.OWNER.value))
        for user in editors:
            session.add(DocumentCollaborator(document_id=document.id, user_id=user.id, role="EDITOR"))
        for user in viewers:
            session.add(DocumentCollaborator(document_id=document.id, user_id=user.id, role="VIEWER"))
    return document


async def make_task(
    sessions: Sessions,
    owner: User,
    title: str = "Task",
    *,
    assignee: User | None = None,
    document: Document | None = None,
    status: str = "TODO",
    priority: int = 2,
    due_at: datetime | None = None,
    description: str = "",
    labels: list[str] = (),  # type: ignore[assignment]
) -> Task:
    task = Task(
        title=title, description=description, status=status, priority=priority, due_at=due_at,
        owner_id=owner.id, assignee_id=assignee.id if assignee else None,
        document_id=document.id if document else None,
    )
    async with sessions.begin() as session:
        session.add(task)
        await session.flush()
        session.add_all(TaskLabel(task_id=task.id, label=label) for label in labels)
    return task
