"""Argument plumbing shared by connection fields: page arguments and task query conversion."""

from __future__ import annotations

from typing import TYPE_CHECKING

from resolvers.pagination import PageArgs
from resolvers.tasks import TaskFilter as TaskFilterQuery
from resolvers.tasks import TaskOrder as TaskOrderQuery
from resolvers.validation import aware, optional_text

if TYPE_CHECKING:
    from schema.tasks import TaskFilter, TaskOrder


def page_args(first: int | None, after: str | None, last: int | None, before: str | None) -> PageArgs:
    return PageArgs(first=first, after=after, last=last, before=before)


def task_query(f: TaskFilter | None, order: TaskOrder | None) -> tuple[TaskFilterQuery, TaskOrderQuery]:
    from schema.relay import decode_optional_id

    query = TaskFilterQuery()
    if f is not None:
        query = TaskFilterQuery(
            statuses=tuple(s.value for s in f.status) if f.status else None,
            assignee_id=decode_optional_id(f.assignee, "User", "filter.assignee"),
            label=optional_text(f.label, "filter.label", 64) if f.label is not None else None,
            due_before=aware(f.due_before, "filter.dueBefore"),
            due_after=aware(f.due_after, "filter.dueAfter"),
            search=optional_text(f.search, "filter.search", 200) if f.search else None,
        )
    if order is None:
        return query, TaskOrderQuery()
    return query, TaskOrderQuery(field=order.field.value, descending=order.direction.value == "DESC")
