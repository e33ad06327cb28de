"""Relay plumbing: the `Node` interface, opaque global IDs, and generic cursor connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Generic, TypeVar

import strawberry

from resolvers import global_ids
from resolvers.global_ids import decode_any_id, decode_id
from resolvers.pagination import Page, encode_cursor
from schema.directives import FREE, Cost

T = TypeVar("T")
R = TypeVar("R")
__all__ = ["decode_any_id", "decode_id", "decode_optional_id", "encode_id"]


@lru_cache(maxsize=16384)  # every object in every response; hot rows come back request after request
def encode_id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(global_ids.encode_id(type_name, pk))


def decode_optional_id(global_id: str | None, type_name: str, field: str) -> int | None:
    return None if global_id is None else decode_id(global_id, type_name, field)


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    id: strawberry.ID


@strawberry.type(directives=[FREE])
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(directives=[FREE])  # a wrapper around its node, which is priced on its own
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="All items in the connection, ignoring pagination.", directives=[Cost(weight="1")])
    async def total_count(self) -> int:
        return await self._count()

    @strawberry.field(description="The nodes of `edges`, for clients that need no cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def connection(page: Page[R], convert: Callable[[R], T]) -> Connection[T]:
    items: Sequence[R] = page.slice.items
    offset = page.slice.offset
    edges = [Edge(node=convert(item), cursor=encode_cursor(offset + i)) for i, item in enumerate(items)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.slice.has_next_page,
            has_previous_page=page.slice.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=page.count,
    )
