"""Values that are usually loaded already: return them as they are, and an awaitable only when not.

A resolver that awaits a DataLoader is a coroutine even when the loader has the value (a prefetched
relation, a second look at the same row), and a coroutine per list item per field is what made long
lists slow: each costs a frame, an await chain and, under graphql-core, an asyncio task. `Soon[T]`
is `T` when it is there and an awaitable otherwise; GraphQL executors accept either from a resolver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Hashable
from typing import Any, TypeAlias, TypeVar

from strawberry.dataloader import DataLoader

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
Soon: TypeAlias = T | Awaitable[T]


def peek(loader: DataLoader[K, T], key: K) -> Soon[T]:
    """`loader.load(key)`, or its value when the loader already has it."""
    future: Any = loader.load(key)
    return future.result() if future.done() else future  # type: ignore[no-any-return]
