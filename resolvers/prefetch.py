"""Look-ahead prefetch: a list of tasks loads what its items' nested fields will ask for, up front.

The schema looks at the selection set of a task list (`edges { node { … } }`, `nodes { … }`) and
says which relations the items will need; the list resolver then loads them for the whole page,
one batch per relation, through the same DataLoaders the nested fields use. The nested fields find
every row in the loaders' caches and return it without waiting (`loaders.soon`), so a page of 50
tasks with assignee and document runs no coroutine, task or future per item.

It never adds a statement per item: each relation is one `load_many`, and lists resolved together
(several users' task lists at one depth) resume together, so their loads share one batch, exactly
like the nested fields' own loads would. The same keys are loaded either way, only earlier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from db.records import TaskRecord
from loaders.soon import Soon
from resolvers.context import Context

T = TypeVar("T")
R = TypeVar("R")
__all__ = ["NOTHING", "Soon", "TaskRelations", "prefetch_task_relations", "then"]


@dataclass(frozen=True, slots=True)
class TaskRelations:
    """Which relations of each listed task will be read."""

    owner: bool = False
    assignee: bool = False
    document: bool = False
    labels: bool = False


NOTHING = TaskRelations()


async def prefetch_task_relations(ctx: Context, tasks: Sequence[TaskRecord], wanted: TaskRelations) -> None:
    if not tasks or wanted == NOTHING:
        return
    loads: list[Awaitable[Any]] = []
    user_ids: set[int] = set()
    if wanted.owner:
        user_ids.update(task.owner_id for task in tasks)
    if wanted.assignee:
        user_ids.update(task.assignee_id for task in tasks if task.assignee_id is not None)
    if user_ids:
        loads.append(ctx.loaders.users.by_id.load_many(sorted(user_ids)))
    if wanted.document and ctx.viewer is not None:  # anonymous callers see no documents (document_or_none)
        document_ids = sorted({task.document_id for task in tasks if task.document_id is not None})
        if document_ids:
            loads.append(ctx.loaders.documents.by_id.load_many(document_ids))
    if wanted.labels:
        loads.append(ctx.loaders.tasks.labels_by_task.load_many([task.id for task in tasks]))
    # A failed batch fails its futures, which the loaders keep: each item's field then raises the error
    # on its own path, as it would have without prefetching, and the list itself stands.
    await asyncio.gather(*loads, return_exceptions=True)


def then(value: Soon[T], convert: Callable[[T], R]) -> Soon[R]:
    """`convert(value)`, now if `value` is there (prefetched), else once it is."""
    if isinstance(value, Awaitable):
        awaitable = value

        async def later() -> R:
            return convert(await awaitable)

        return later()
    return convert(value)
