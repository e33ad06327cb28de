"""The `Task` type, its enums and inputs, and the task mutations."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types import Info

import resolvers.documents
import resolvers.tasks
import resolvers.users
from auth import scopes
from auth.permissions import HasScope
from db.records import DocumentRecord, UserRecord
from db.records import TaskRecord as TaskRow  # row types: Strawberry resolves Private[...] too
from resolvers.context import Context
from resolvers.errors import BadUserInput
from resolvers.prefetch import Soon, TaskRelations, then
from schema.errors import UserError
from schema.lazy import DocumentType, UserType
from schema.memo import once
from schema.relay import Node, decode_id, decode_optional_id, encode_id


@strawberry.enum
class TaskStatus(enum.Enum):
    TODO = "TODO"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


@strawberry.enum
class TaskPriority(enum.Enum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4


@strawberry.enum
class TaskOrderField(enum.Enum):
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"
    DUE_AT = "DUE_AT"
    PRIORITY = "PRIORITY"
    TITLE = "TITLE"


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.input(description="All given conditions must hold.")
class TaskFilter:
    status: list[TaskStatus] | None = None
    assignee: strawberry.ID | None = strawberry.field(default=None, description="A User ID.")
    label: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    search: str | None = strawberry.field(default=None, description="Case-insensitive, in title and description.")


@strawberry.input
class TaskOrder:
    field: TaskOrderField = TaskOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.type
class Task(Node):
    id: strawberry.ID
    title: str
    description: str
    status: TaskStatus
    priority: TaskPriority
    due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    _row: strawberry.Private[TaskRow]
    # Relations a task list resolved ahead for its items, by field name (schema/execution.py RESOLVED).
    _resolved: strawberry.Private[dict[str, object] | None] = None

    @classmethod
    def from_row(cls, row: TaskRow) -> Task:
        return cls(
            id=encode_id("Task", row.id), title=row.title, description=row.description,
            status=TaskStatus(row.status), priority=TaskPriority(row.priority), due_at=row.due_at,
            created_at=row.created_at, updated_at=row.updated_at, _row=row,
        )

    @classmethod
    def listed(cls, ctx: Context, relations: TaskRelations) -> Callable[[TaskRow], Task]:
        """Tasks for a list whose `relations` were prefetched: each carries their values, computed by
        the fields' own code below, so the executor reads them instead of calling the resolvers."""
        ahead = [(name, value) for name, value in
                 (("labels", cls._labels), ("owner", cls._owner), ("assignee", cls._assignee),
                  ("document", cls._document))
                 if getattr(relations, name)]
        if not ahead:
            return cls.from_row

        def listed(row: TaskRow) -> Task:
            task = cls.from_row(row)
            resolved: dict[str, object] = {}
            for name, value in ahead:
                try:
                    soon = value(task, ctx)
                except Exception:  # the prefetch failed: the item's field raises it on its own path
                    continue
                if isinstance(soon, Awaitable):  # not loaded after all: the resolver will wait for it
                    if isinstance(soon, Coroutine):
                        soon.close()
                else:
                    resolved[name] = soon
            task._resolved = resolved
            return task

        return listed

    # The relations below are sync resolvers returning `Soon` values (loaders/soon.py): a task list
    # prefetches them (resolvers/prefetch.py), so on list items they are plain cache reads rather
    # than a coroutine each (and `listed` resolves them ahead); graphql-core awaits the awaitable
    # they return when nothing was prefetched.

    def _labels(self, ctx: Context) -> Soon[list[str]]:
        return resolvers.tasks.labels_soon(ctx, self._row.id)

    def _owner(self, ctx: Context) -> Soon[UserType]:
        from schema.users import user_type

        def convert(row: UserRecord | None) -> UserType:
            assert row is not None  # owner_id is a non-null foreign key
            return user_type(ctx, row)

        return then(resolvers.users.user_soon(ctx, self._row.owner_id), convert)

    def _assignee(self, ctx: Context) -> Soon[UserType | None]:
        from schema.users import user_type

        row = resolvers.users.user_soon(ctx, self._row.assignee_id)
        return then(row, lambda row: user_type(ctx, row) if row else None)

    @strawberry.field
    def labels(self, info: Info[Context, Any]) -> list[str]:
        return self._labels(info.context)  # type: ignore[return-value]

    @strawberry.field
    def owner(self, info: Info[Context, Any]) -> UserType:
        return self._owner(info.context)  # type: ignore[return-value]

    @strawberry.field
    def assignee(self, info: Info[Context, Any]) -> UserType | None:
        return self._assignee(info.context)  # type: ignore[return-value]

    def _document(self, ctx: Context) -> Soon[DocumentType | None]:
        from schema.documents import Document

        def convert(row: DocumentRecord | None) -> Document | None:
            return once(ctx, "Document", row, lambda: Document.from_row(row)) if row else None

        return then(resolvers.documents.document_soon(ctx, self._row.document_id), convert)

    @strawberry.field(
        description="Null when the task has none, or when you cannot see it.",
        extensions=[PermissionExtension([HasScope(scopes.DOCUMENTS_READ)])],
    )
    def document(self, info: Info[Context, Any]) -> DocumentType | None:
        return self._document(info.context)  # type: ignore[return-value]

    @strawberry.field(description="Whether you may change this task.")
    async def viewer_can_update(self, info: Info[Context, Any]) -> bool:
        return await resolvers.tasks.can_edit(info.context, self._row)


@strawberry.input
class CreateTaskInput:
    title: str
    description: str = ""
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.MEDIUM
    due_at: datetime | None = None
    labels: list[str] = strawberry.field(default_factory=list)
    assignee_id: strawberry.ID | None = None
    document_id: strawberry.ID | None = None


@strawberry.input(description="Omitted fields stay as they are; an explicit null clears a field.")
class UpdateTaskInput:
    id: strawberry.ID
    title: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    status: TaskStatus | None = strawberry.UNSET
    priority: TaskPriority | None = strawberry.UNSET
    due_at: datetime | None = strawberry.UNSET
    labels: list[str] | None = strawberry.UNSET
    assignee_id: strawberry.ID | None = strawberry.UNSET
    document_id: strawberry.ID | None = strawberry.UNSET


@strawberry.input
class DeleteTaskInput:
    id: strawberry.ID


@strawberry.type
class TaskPayload:
    task: Task | None
    user_errors: list[UserError]


@strawberry.type
class DeleteTaskPayload:
    deleted_task_id: strawberry.ID | None
    user_errors: list[UserError]


def _changes(input: UpdateTaskInput) -> dict[str, Any]:
    """Only what the client sent, converted to row values."""
    changes: dict[str, Any] = {}
    for name in ("title", "description", "due_at", "labels"):
        if (value := getattr(input, name)) is not strawberry.UNSET:
            changes[name] = value
    for name in ("status", "priority"):
        if (value := getattr(input, name)) is not strawberry.UNSET:
            changes[name] = value.value if value is not None else None
    if input.assignee_id is not strawberry.UNSET:
        changes["assignee_id"] = decode_optional_id(input.assignee_id, "User", "assigneeId")
    if input.document_id is not strawberry.UNSET:
        changes["document_id"] = decode_optional_id(input.document_id, "Document", "documentId")
    return changes


@strawberry.type
class TaskMutations:
    @strawberry.mutation(extensions=[PermissionExtension([HasScope(scopes.TASKS_WRITE)])])
    async def create_task(self, info: Info[Context, Any], input: CreateTaskInput) -> TaskPayload:
        try:
            draft = resolvers.tasks.TaskDraft(
                title=input.title, description=input.description, status=input.status.value,
                priority=input.priority.value, due_at=input.due_at, labels=input.labels,
                assignee_id=decode_optional_id(input.assignee_id, "User", "assigneeId"),
                document_id=decode_optional_id(input.document_id, "Document", "documentId"),
            )
            row = await resolvers.tasks.create_task(info.context, draft)
        except BadUserInput as exc:
            return TaskPayload(task=None, user_errors=[UserError.from_exception(exc)])
        return TaskPayload(task=Task.from_row(row), user_errors=[])

    @strawberry.mutation(extensions=[PermissionExtension([HasScope(scopes.TASKS_WRITE)])])
    async def update_task(self, info: Info[Context, Any], input: UpdateTaskInput) -> TaskPayload:
        try:
            task_id = decode_id(input.id, "Task")
            row = await resolvers.tasks.update_task(info.context, task_id, _changes(input))
        except BadUserInput as exc:
            return TaskPayload(task=None, user_errors=[UserError.from_exception(exc)])
        return TaskPayload(task=Task.from_row(row), user_errors=[])

    @strawberry.mutation(extensions=[PermissionExtension([HasScope(scopes.TASKS_WRITE)])])
    async def delete_task(self, info: Info[Context, Any], input: DeleteTaskInput) -> DeleteTaskPayload:
        try:
            deleted = await resolvers.tasks.delete_task(info.context, decode_id(input.id, "Task"))
        except BadUserInput as exc:
            return DeleteTaskPayload(deleted_task_id=None, user_errors=[UserError.from_exception(exc)])
        return DeleteTaskPayload(deleted_task_id=encode_id("Task", deleted), user_errors=[])
