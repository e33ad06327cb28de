"""Relay plumbing: the `Node` interface, opaque global IDs, and generic cursor connections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Generic, TypeVar

import strawberry

from resolvers.errors import BadUserInput, NotFound
from resolvers.pagination import Page, encode_cursor

T = TypeVar("T")
R = TypeVar("R")
MAX_KEY = 2**31 - 1  # primary keys are 32-bit INTEGER columns


@lru_cache(maxsize=16384)  # every object in every response; hot rows come back request after request
def encode_id(type_name: str, pk: int) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("="))


def decode_any_id(global_id: str, field: str = "id") -> tuple[str, int]:
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        number = int(pk)
    except (binascii.Error, UnicodeError, ValueError):
        raise BadUserInput(f"`{field}` is not a valid ID.", field=field) from None
    if not type_name or number <= 0:
        raise BadUserInput(f"`{field}` is not a valid ID.", field=field)
    if number > MAX_KEY:
        raise NotFound("Nothing has this ID.")  # well-formed, but no row can have it
    return type_name, number


def decode_id(global_id: str, type_name: str, field: str = "id") -> int:
    found_type, pk = decode_any_id(global_id, field)
    if found_type != type_name:
        raise BadUserInput(f"`{field}` must be the ID of a {type_name}.", field=field)
    return pk


def decode_optional_id(global_id: str | None, type_name: str, field: str) -> int | None:
    return None if global_id is None else decode_id(global_id, type_name, field)


@strawberry.interface(description="An object with a globally unique, opaque ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="All items in the connection, ignoring pagination.")
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
