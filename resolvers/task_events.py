"""Task events: CREATED/UPDATED/DELETED, each delivered only to viewers who may see the task.

The writer names the task's audience (owner, assignee, collaborators of its document) once, when it
publishes; each subscriber in that audience then reads the task through its own visibility rule and
filter before it is delivered, so what a subscriber sees is decided at delivery, not at publishing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from sqlalchemy import select

from db.models import DocumentCollaborator, Task
from db.records import TaskRecord
from loaders.tasks import TaskFilter, filter_conditions
from loaders.visibility import tasks_visible_to
from realtime.broker import SubscriberOverflow
from realtime.events import TaskEventKind, decode
from resolvers.collaboration import realtime_of, refresh, too_slow
from resolvers.context import Context


@dataclass(frozen=True, slots=True)
class TaskEvent:
    kind: TaskEventKind
    task_id: int
    task: Task | None  # None for DELETED


async def audience(ctx: Context, task: TaskRecord) -> list[int]:
    """Everyone who may see `task` now."""
    users = {task.owner_id}
    if task.assignee_id is not None:
        users.add(task.assignee_id)
    if task.document_id is not None:
        async with ctx.sessions() as session:
            users.update(await session.scalars(
                select(DocumentCollaborator.user_id).where(DocumentCollaborator.document_id == task.document_id)
            ))
    return sorted(users)


async def publish(ctx: Context, kind: TaskEventKind, task_id: int, users: list[int]) -> None:
    if ctx.realtime is not None:
        await ctx.realtime.publish_tasks({"kind": kind.value, "taskId": task_id, "audience": users})


async def _visible(ctx: Context, viewer_id: int, task_id: int, f: TaskFilter) -> Task | None:
    async with ctx.sessions() as session:
        found: Task | None = await session.scalar(
            select(Task).where(Task.id == task_id, tasks_visible_to(viewer_id), *filter_conditions(f))
        )
        return found


async def task_events(ctx: Context, f: TaskFilter) -> AsyncGenerator[TaskEvent, None]:
    viewer_id = ctx.require_user()
    subscription = await realtime_of(ctx).subscribe_tasks()
    try:
        while True:
            try:
                message = await anext(subscription)
            except SubscriberOverflow:
                await too_slow(ctx)
                return
            event = decode(message)
            if viewer_id not in event["audience"]:
                continue
            kind = TaskEventKind(event["kind"])
            task_id = int(event["taskId"])
            if kind is TaskEventKind.DELETED:
                yield TaskEvent(kind, task_id, None)
                continue
            refresh(ctx)  # nested fields (labels, assignee…) read current rows
            # Labels first, then the row: if the task is deleted in between, the row is gone too and
            # the event is skipped (its DELETED follows), never delivered half of one moment and
            # half of the next (the title renamed, the labels already cascaded away).
            await ctx.loaders.tasks.labels_by_task.load(task_id)  # cached for the event's `labels`
            task = await _visible(ctx, viewer_id, task_id, f)
            if task is not None:
                yield TaskEvent(kind, task_id, task)
    finally:
        await subscription.close()
