"""Helpers shared by the batch functions: one session per batch, rows mapped back to keys in order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import aliased
from strawberry.dataloader import DataLoader

from db.engine import Sessions

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
# A SELECT of any row shape (SQLAlchemy 2.1 types a Select by its column types).
AnySelect = Select[*tuple[Any, ...]]


async def scalars(sessions: Sessions, statement: AnySelect) -> Sequence[Any]:
    # Each batch opens its own session: Strawberry resolves siblings concurrently and an
    # AsyncSession must never be shared between concurrent tasks.
    async with sessions() as session:
        found: Sequence[Any] = (await session.scalars(statement)).all()
        return found


async def rows(sessions: Sessions, statement: AnySelect) -> Sequence[Any]:
    async with sessions() as session:
        return (await session.execute(statement)).all()


def one_per_key(keys: Sequence[K], found: Iterable[R], key: Callable[[R], K]) -> list[R | None]:
    by_key = {key(row): row for row in found}
    return [by_key.get(k) for k in keys]


def many_per_key(keys: Sequence[K], found: Iterable[R], key: Callable[[R], K]) -> list[list[R]]:
    grouped: dict[K, list[R]] = defaultdict(list)
    for row in found:
        grouped[key(row)].append(row)
    return [grouped.get(k, []) for k in keys]


def group_indexes(keys: Sequence[Any], group_of: Callable[[Any], Hashable]) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for index, k in enumerate(keys):
        groups[group_of(k)].append(index)
    return groups


def windowed_page(
    entity: Any,
    statement: AnySelect,
    partition: Any,
    order_by: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
) -> AnySelect:
    """Rows `offset..offset+limit` of `statement` for every partition value, in one statement.

    `statement` must select `entity` and `partition`; the result selects the entity and the partition.
    """
    numbered = statement.add_columns(
        func.row_number().over(partition_by=partition, order_by=order_by).label("row_number")
    ).subquery()
    row = aliased(entity, numbered)
    return (
        select(row, numbered.c.partition_key)
        .where(numbered.c.row_number > offset, numbered.c.row_number <= offset + limit)
        .order_by(numbered.c.partition_key, numbered.c.row_number)
    )


def forget(loader: DataLoader[Any, Any], key: Any) -> None:
    """`DataLoader.clear` raises for a key it never loaded; after a write we just want it gone."""
    with suppress(KeyError):
        loader.clear(key)
