"""Task reads: by id, labels, and pages/counts of a user's or a document's tasks, all batched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select
from strawberry.dataloader import DataLoader

from db.engine import Sessions
from db.models import Task, TaskLabel, User
from loaders.batching import AnySelect, forget, group_indexes, many_per_key, one_per_key, rows, scalars, windowed_page
from loaders.visibility import tasks_visible_to

OrderField = Literal["CREATED_AT", "UPDATED_AT", "DUE_AT", "PRIORITY", "TITLE"]


@dataclass(frozen=True, slots=True)
class TaskFilter:
    statuses: tuple[str, ...] | None = None
    assignee_id: int | None = None
    label: str | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class TaskOrder:
    field: OrderField = "CREATED_AT"
    descending: bool = True


@dataclass(frozen=True, slots=True)
class PageKey:
    """One page of one parent's tasks; keys that differ only in `parent` share a statement."""

    parent: int
    filter: TaskFilter = field(default_factory=TaskFilter)
    order: TaskOrder = field(default_factory=TaskOrder)
    offset: int = 0
    limit: int = 20


@dataclass(frozen=True, slots=True)
class CountKey:
    parent: int
    filter: TaskFilter = field(default_factory=TaskFilter)


_COLUMNS: dict[str, Any] = {
    "CREATED_AT": Task.created_at,
    "UPDATED_AT": Task.updated_at,
    "DUE_AT": Task.due_at,
    "PRIORITY": Task.priority,
    "TITLE": Task.title,
}


def order_columns(order: TaskOrder) -> list[ColumnElement[Any]]:
    column = _COLUMNS[order.field]
    if order.descending:
        return [column.desc().nulls_last(), Task.id.desc()]
    return [column.asc().nulls_last(), Task.id.asc()]


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def filter_conditions(f: TaskFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.statuses:
        conditions.append(Task.status.in_(f.statuses))
    if f.assignee_id is not None:
        conditions.append(Task.assignee_id == f.assignee_id)
    if f.label is not None:
        conditions.append(Task.id.in_(select(TaskLabel.task_id).where(TaskLabel.label == f.label)))
    if f.due_before is not None:
        conditions.append(Task.due_at < f.due_before)
    if f.due_after is not None:
        conditions.append(Task.due_at > f.due_after)
    if f.search:
        pattern = _like_pattern(f.search)
        conditions.append(
            or_(
                func.lower(Task.title).like(pattern, escape="\\"),
                func.lower(Task.description).like(pattern, escape="\\"),
            )
        )
    return conditions


def visible_tasks(viewer_id: int, f: TaskFilter) -> AnySelect:
    return select(Task).where(tasks_visible_to(viewer_id), *filter_conditions(f))


async def page_of_visible_tasks(
    sessions: Sessions, viewer_id: int, f: TaskFilter, order: TaskOrder, offset: int, limit: int
) -> Sequence[Task]:
    statement = visible_tasks(viewer_id, f).order_by(*order_columns(order)).offset(offset).limit(limit)
    return await scalars(sessions, statement)


async def count_visible_tasks(sessions: Sessions, viewer_id: int, f: TaskFilter) -> int:
    statement = select(func.count()).select_from(visible_tasks(viewer_id, f).subquery())
    return int((await rows(sessions, statement))[0][0])


# --- batch functions --------------------------------------------------------------------------


async def _tasks_by_ids(sessions: Sessions, viewer_id: int, ids: Sequence[int]) -> list[Task | None]:
    found = await scalars(sessions, select(Task).where(Task.id.in_(ids), tasks_visible_to(viewer_id)))
    return one_per_key(ids, found, lambda task: task.id)


async def _labels_by_task(sessions: Sessions, ids: Sequence[int]) -> list[list[str]]:
    statement = select(TaskLabel).where(TaskLabel.task_id.in_(ids)).order_by(TaskLabel.label)
    grouped = many_per_key(ids, await scalars(sessions, statement), lambda row: row.task_id)
    return [[row.label for row in labels] for labels in grouped]


def _user_parent() -> tuple[Any, ColumnElement[bool]]:
    # A user's tasks: the ones they own or are assigned to.
    return User.id, or_(Task.owner_id == User.id, Task.assignee_id == User.id)


async def _pages(
    sessions: Sessions, viewer_id: int, by: Literal["user", "document"], keys: Sequence[PageKey]
) -> list[list[Task]]:
    results: list[list[Task]] = [[] for _ in keys]
    groups = group_indexes(keys, lambda k: (k.filter, k.order, k.offset, k.limit))
    for indexes in groups.values():
        sample = keys[indexes[0]]
        parents = [keys[i].parent for i in indexes]
        partition: Any
        if by == "user":
            partition, join_on = _user_parent()
            base = (
                select(Task, partition.label("partition_key"))
                .join(User, join_on)
                .where(User.id.in_(parents))
            )
        else:
            partition = Task.document_id
            base = select(Task, partition.label("partition_key")).where(Task.document_id.in_(parents))
        base = base.where(tasks_visible_to(viewer_id), *filter_conditions(sample.filter))
        statement = windowed_page(
            Task, base, partition, order_columns(sample.order), sample.offset, sample.limit
        )
        found = await rows(sessions, statement)
        by_parent = dict(zip(parents, indexes, strict=True))
        for task, parent in found:
            results[by_parent[parent]].append(task)
    return results


async def _counts(
    sessions: Sessions, viewer_id: int, by: Literal["user", "document"], keys: Sequence[CountKey]
) -> list[int]:
    results = [0] * len(keys)
    for indexes in group_indexes(keys, lambda k: k.filter).values():
        parents = [keys[i].parent for i in indexes]
        conditions = [tasks_visible_to(viewer_id), *filter_conditions(keys[indexes[0]].filter)]
        if by == "user":
            partition, join_on = _user_parent()
            statement = (
                select(partition, func.count(Task.id))
                .join(User, join_on)
                .where(User.id.in_(parents), *conditions)
                .group_by(partition)
            )
        else:
            statement = (
                select(Task.document_id, func.count(Task.id))
                .where(Task.document_id.in_(parents), *conditions)
                .group_by(Task.document_id)
            )
        counts = {parent: count for parent, count in await rows(sessions, statement)}
        for i in indexes:
            results[i] = int(counts.get(keys[i].parent, 0))
    return results


class TaskLoaders:
    """Per-request task loaders, bound to the viewer so invisible tasks load as `None`."""

    def __init__(self, sessions: Sessions, viewer_id: int) -> None:
        self.by_id = DataLoader[int, Task | None](partial(_tasks_by_ids, sessions, viewer_id))
        self.labels_by_task = DataLoader[int, list[str]](partial(_labels_by_task, sessions))
        self.page_by_user = DataLoader[PageKey, list[Task]](partial(_pages, sessions, viewer_id, "user"))
        self.page_by_document = DataLoader[PageKey, list[Task]](
            partial(_pages, sessions, viewer_id, "document")
        )
        self.count_by_user = DataLoader[CountKey, int](partial(_counts, sessions, viewer_id, "user"))
        self.count_by_document = DataLoader[CountKey, int](partial(_counts, sessions, viewer_id, "document"))

    def forget(self, task_id: int) -> None:
        """After a write: drop everything that may hold the old row."""
        forget(self.by_id, task_id)
        forget(self.labels_by_task, task_id)
        for loader in (self.page_by_user, self.page_by_document, self.count_by_user, self.count_by_document):
            loader.clear_all()
