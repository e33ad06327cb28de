"""Helpers shared by the batch functions: statements run through `db.reads`, rows mapped back to keys.

Hot statements are built once, with bind parameters for what varies (`VIEWER`, `IDS`, `OFFSET`,
`LIMIT`): building a `select()` and computing its cache key costs more than running it on SQLite
(measured: a visible-tasks page built per call ~900 µs, the same statement object reused ~400 µs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy import BindParameter, ColumnElement, Select, Table, bindparam, func, select
from strawberry.dataloader import DataLoader

from db.engine import Sessions

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
# A SELECT of any row shape (SQLAlchemy 2.1 types a Select by its column types).
AnySelect = Select[*tuple[Any, ...]]

VIEWER: BindParameter[int] = bindparam("viewer")
IDS: BindParameter[Any] = bindparam("ids", expanding=True)
OFFSET: BindParameter[int] = bindparam("offset")
LIMIT: BindParameter[int] = bindparam("limit")


async def scalars(sessions: Sessions, statement: AnySelect) -> Sequence[Any]:
    """ORM entities through a session of their own, for batches that need entities; the request
    path's loaders read Core rows through `db.reads` instead."""
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


def windowed_rows(
    table: Table,
    statement: AnySelect,
    partition: Any,
    order_by: Sequence[ColumnElement[Any]],
) -> AnySelect:
    """Rows `OFFSET..OFFSET+LIMIT` of `statement` for every partition value, in one statement.

    `statement` must select `table`'s columns and `partition` labelled `partition_key`; the result
    has the same columns. Offset and limit are bind parameters, so the statement can be built once.
    """
    numbered = statement.add_columns(
        func.row_number().over(partition_by=partition, order_by=order_by).label("row_number")
    ).subquery()
    return (
        select(*(numbered.c[column.name] for column in table.columns), numbered.c.partition_key)
        .where(numbered.c.row_number > OFFSET, numbered.c.row_number <= OFFSET + LIMIT)
        .order_by(numbered.c.partition_key, numbered.c.row_number)
    )


def forget(loader: DataLoader[Any, Any], key: Any) -> None:
    """`DataLoader.clear` raises for a key it never loaded; after a write we just want it gone."""
    with suppress(KeyError):
        loader.clear(key)
