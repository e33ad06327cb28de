"""Tasks: who sees them (owner, assignee, document collaborators), who edits and deletes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete

from db.models import Task, TaskLabel, TaskPriority, TaskStatus, utcnow
from db.records import TaskRecord
from loaders import tasks as task_queries
from loaders.soon import Soon, peek
from loaders.tasks import TaskFilter, TaskOrder
from realtime.events import TaskEventKind

__all__ = ["TaskDraft", "TaskFilter", "TaskOrder"]
from resolvers import documents, outbox, task_events, validation
from resolvers.context import Context
from resolvers.errors import BadUserInput, Forbidden, NotFound
from resolvers.pagination import Page, PageArgs, paginate
from resolvers.prefetch import NOTHING, TaskRelations, prefetch_task_relations
from resolvers.quotas import within_quota

TITLE_MAX = 500
LABEL_MAX = 64
LABELS_MAX = 20


@dataclass(frozen=True, slots=True)
class TaskDraft:
    title: str
    description: str = ""
    status: str = TaskStatus.TODO.value
    priority: int = TaskPriority.MEDIUM.value
    due_at: datetime | None = None
    labels: list[str] = field(default_factory=list)
    assignee_id: int | None = None
    document_id: int | None = None


async def visible_task(ctx: Context, task_id: int) -> TaskRecord:
    ctx.require_user()
    task = await ctx.loaders.tasks.by_id.load(task_id)
    if task is None:
        raise NotFound("Task not found.")  # someone else's task looks exactly like a missing one
    return task


async def labels(ctx: Context, task_id: int) -> list[str]:
    return await ctx.loaders.tasks.labels_by_task.load(task_id)


def labels_soon(ctx: Context, task_id: int) -> Soon[list[str]]:
    return peek(ctx.loaders.tasks.labels_by_task, task_id)


async def visible_tasks(
    ctx: Context, f: TaskFilter, order: TaskOrder, args: PageArgs, prefetch: TaskRelations = NOTHING
) -> Page[TaskRecord]:
    viewer_id = ctx.require_user()
    page = await paginate(
        args,
        ctx.limits,
        lambda offset, limit: task_queries.page_of_visible_tasks(ctx.loaders.reads, viewer_id, f, order, offset, limit),
        lambda: task_queries.count_visible_tasks(ctx.loaders.reads, viewer_id, f),
    )
    await prefetch_task_relations(ctx, page.slice.items, prefetch)
    return page


async def user_tasks(
    ctx: Context, user_id: int, f: TaskFilter, order: TaskOrder, args: PageArgs, prefetch: TaskRelations = NOTHING
) -> Page[TaskRecord]:
    """Tasks the user owns or is assigned to, as far as the viewer may see them."""
    ctx.require_user()
    loaders = ctx.loaders.tasks

    async def fetch(offset: int, limit: int) -> Sequence[TaskRecord]:
        return await loaders.page_by_user.load(task_queries.PageKey(user_id, f, order, offset, limit))

    count = lambda: loaders.count_by_user.load(task_queries.CountKey(user_id, f))  # noqa: E731
    page = await paginate(args, ctx.limits, fetch, count)
    await prefetch_task_relations(ctx, page.slice.items, prefetch)
    return page


async def document_tasks(
    ctx: Context, document_id: int, f: TaskFilter, order: TaskOrder, args: PageArgs,
    prefetch: TaskRelations = NOTHING,
) -> Page[TaskRecord]:
    ctx.require_user()
    loaders = ctx.loaders.tasks

    async def fetch(offset: int, limit: int) -> Sequence[TaskRecord]:
        return await loaders.page_by_document.load(task_queries.PageKey(document_id, f, order, offset, limit))

    page = await paginate(
        args, ctx.limits, fetch, lambda: loaders.count_by_document.load(task_queries.CountKey(document_id, f))
    )
    await prefetch_task_relations(ctx, page.slice.items, prefetch)
    return page


def _clean_labels(values: list[str] | None) -> list[str]:
    if values is None:
        return []
    if len(values) > LABELS_MAX:
        raise BadUserInput(f"A task has at most {LABELS_MAX} labels; {len(values)} given.", field="labels")
    cleaned: list[str] = []
    for value in values:
        label = validation.required_text(value, "labels", LABEL_MAX)
        if label not in cleaned:
            cleaned.append(label)
    return cleaned


async def _check_assignee(ctx: Context, assignee_id: int | None) -> None:
    if assignee_id is not None and await ctx.loaders.users.by_id.load(assignee_id) is None:
        raise BadUserInput("No such user.", field="assigneeId")


async def _check_document(ctx: Context, document_id: int | None) -> None:
    """Putting a task into a document needs edit rights there; an invisible document is unknown."""
    if document_id is None:
        return
    if await documents.document_or_none(ctx, document_id) is None:
        raise BadUserInput("No such document.", field="documentId")
    if await documents.viewer_role(ctx, document_id) not in documents.EDITING_ROLES:
        raise BadUserInput("You cannot add tasks to a document you may only view.", field="documentId")


async def create_task(ctx: Context, draft: TaskDraft) -> Task:
    viewer_id = ctx.require_user()
    title = validation.required_text(draft.title, "title", TITLE_MAX)
    description = validation.optional_text(draft.description, "description", ctx.limits.max_string_length)
    due_at = validation.aware(draft.due_at, "dueAt")
    label_values = _clean_labels(draft.labels)
    await _check_assignee(ctx, draft.assignee_id)
    await _check_document(ctx, draft.document_id)
    task = Task(
        title=title,
        description=description,
        status=draft.status,
        priority=draft.priority,
        due_at=due_at,
        owner_id=viewer_id,
        assignee_id=draft.assignee_id,
        document_id=draft.document_id,
    )
    async with ctx.sessions.begin() as session:
        limit = ctx.limits.max_tasks_per_user
        await within_quota(session, Task.owner_id, viewer_id, limit,
                           f"You own {limit} tasks, the most allowed; delete some first.", field="title")
        session.add(task)
        await session.flush()
        session.add_all(TaskLabel(task_id=task.id, label=label) for label in label_values)
        await outbox.task_changed(session, outbox.TASK_CREATED, task, label_values)  # same transaction
    ctx.loaders.tasks.forget(task.id)
    await task_events.publish(ctx, TaskEventKind.CREATED, task.id, await task_events.audience(ctx, task))
    return task


async def can_edit(ctx: Context, task: TaskRecord) -> bool:
    viewer_id = ctx.require_user()
    if viewer_id in (task.owner_id, task.assignee_id):
        return True
    if task.document_id is None:
        return False
    return await documents.viewer_role(ctx, task.document_id) in documents.EDITING_ROLES


async def update_task(ctx: Context, task_id: int, changes: dict[str, Any]) -> Task:
    """Apply only the fields present in `changes`; an explicit `None` clears a nullable field."""
    task = await visible_task(ctx, task_id)
    if not await can_edit(ctx, task):
        raise Forbidden("You may view this task but not change it.")
    values: dict[str, Any] = {}
    for name in ("status", "priority"):
        if name in changes:
            validation.not_null(changes[name], name)
            values[name] = changes[name]
    if "title" in changes:
        values["title"] = validation.required_text(changes["title"], "title", TITLE_MAX)
    if "description" in changes:
        values["description"] = validation.optional_text(
            changes["description"] or "", "description", ctx.limits.max_string_length
        )
    if "due_at" in changes:
        values["due_at"] = validation.aware(changes["due_at"], "dueAt")
    if "assignee_id" in changes:
        await _check_assignee(ctx, changes["assignee_id"])
        values["assignee_id"] = changes["assignee_id"]
    if "document_id" in changes and changes["document_id"] != task.document_id:
        await _check_document(ctx, changes["document_id"])
        values["document_id"] = changes["document_id"]
    new_labels = _clean_labels(changes["labels"]) if "labels" in changes else None

    async with ctx.sessions.begin() as session:
        row = await session.get(Task, task_id, with_for_update=True)
        if row is None:  # deleted by someone else meanwhile
            raise NotFound("Task not found.")
        for name, value in values.items():
            setattr(row, name, value)
        if new_labels is not None:
            await session.execute(delete(TaskLabel).where(TaskLabel.task_id == task_id))
            session.add_all(TaskLabel(task_id=task_id, label=label) for label in new_labels)
        if new_labels is not None and not values:
            row.updated_at = utcnow()  # labels alone still count as a change
        await session.flush()
        await session.refresh(row)
        await outbox.task_changed(session, outbox.TASK_UPDATED, row, new_labels)
    ctx.loaders.tasks.forget(task_id)
    await task_events.publish(ctx, TaskEventKind.UPDATED, task_id, await task_events.audience(ctx, row))
    return row


async def delete_task(ctx: Context, task_id: int) -> int:
    task = await visible_task(ctx, task_id)
    if task.owner_id != ctx.require_user():
        raise Forbidden("Only the task's owner may delete it.")
    users = await task_events.audience(ctx, task)
    async with ctx.sessions.begin() as session:
        await outbox.task_deleted(session, task)
        await session.execute(delete(Task).where(Task.id == task_id))
    ctx.loaders.tasks.forget(task_id)
    await task_events.publish(ctx, TaskEventKind.DELETED, task_id, users)
    return task_id
