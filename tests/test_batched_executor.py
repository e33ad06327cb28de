"""`BatchedExecutor` on a small schema of its own: the awaiting, batching and giving-up rules.

Each query runs on a Strawberry schema with `BatchedExecutor` and on the same schema with
graphql-core's executor; results must be equal, and `context.extras["executor"]` says which path ran.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import strawberry
from strawberry.dataloader import DataLoader
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.types import Info

from schema.execution import EXECUTOR, BatchedExecutor


@dataclass
class Ctx:
    batches: list[list[int]] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)
    allow: bool = True
    resolver_calls: int = 0
    loader: DataLoader[int, int] = field(init=False)

    def __post_init__(self) -> None:
        async def load(keys: list[int]) -> list[int]:
            self.batches.append(sorted(keys))
            return [key * 10 for key in keys]

        self.loader = DataLoader(load_fn=load)  # type: ignore[arg-type]


@strawberry.type
class Item:
    n: int

    @strawberry.field
    async def loaded(self, info: Info[Ctx, Any]) -> int:
        return await info.context.loader.load(self.n)

    @strawberry.field
    async def twice(self, info: Info[Ctx, Any]) -> int:
        first = await info.context.loader.load(self.n)
        return first + await info.context.loader.load(self.n + 100)

    @strawberry.field
    async def yields(self) -> int:
        await asyncio.sleep(0)  # a bare `yield` to the event loop, not a future
        return self.n

    @strawberry.field
    async def fails_later(self) -> int | None:
        await asyncio.sleep(0)
        if self.n == 2:
            raise ValueError("no two")
        return self.n

    @strawberry.field
    def not_null(self) -> int:
        return None if self.n == 3 else self.n  # type: ignore[return-value]


class Allowed(BasePermission):
    message = "Not allowed."
    request_only: ClassVar[bool] = True

    def has_permission(self, source: Any, info: Info[Ctx, Any], **kwargs: Any) -> bool:
        return info.context.allow


@strawberry.type
class Listed:
    n: int
    _resolved: strawberry.Private[dict[str, object] | None] = None

    @strawberry.field
    def double(self, info: Info[Ctx, Any]) -> int:
        info.context.resolver_calls += 1
        return self.n * 2

    @strawberry.field(extensions=[PermissionExtension([Allowed()])])
    def guarded(self, info: Info[Ctx, Any]) -> int:
        info.context.resolver_calls += 1
        return self.n * 3

    @strawberry.field
    def times(self, info: Info[Ctx, Any], k: int) -> int:
        info.context.resolver_calls += 1
        return self.n * k


@strawberry.type
class Custom:
    name: str

    @classmethod
    def is_type_of(cls, obj: Any, info: Any) -> bool:
        return isinstance(obj, Custom)


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(n=n) for n in (1, 2, 3)]

    @strawberry.field
    def grid(self) -> list[list[int | None]]:
        return [[1, None], [], [3]]

    @strawberry.field
    def awaitables(self) -> list[int]:
        async def value(n: int) -> int:
            return n

        return [value(1), value(2)]  # type: ignore[list-item]

    @strawberry.field
    def custom(self) -> Custom:
        return Custom(name="c")

    @strawberry.field
    def listed(self) -> list[Listed]:
        """The second item comes without values resolved ahead, as a list may have some."""
        return [Listed(n=1, _resolved={"double": 2, "guarded": 3, "times": 0}), Listed(n=2),
                Listed(n=3, _resolved={"double": 6})]


BATCHED = strawberry.Schema(query=Query, execution_context_class=BatchedExecutor)
PLAIN = strawberry.Schema(query=Query)


async def _both(query: str, *, allow: bool = True) -> tuple[dict[str, Any], Ctx]:
    context = Ctx(allow=allow)
    batched = await BATCHED.execute(query, context_value=context)
    plain = await PLAIN.execute(query, context_value=Ctx(allow=allow))
    shape = lambda result: {"data": result.data, "errors": [e.formatted for e in result.errors or []]}  # noqa: E731
    assert shape(batched) == shape(plain)
    return shape(batched), context


@pytest.mark.parametrize(
    ("query", "executor"),
    [
        ("{ items { n loaded } }", "batched"),
        ("{ items { twice yields } }", "batched"),
        ("{ grid }", "batched"),
        ("{ items { n failsLater } }", "fallback"),
        ("{ items { notNull } }", "fallback"),
        ("{ awaitables }", "fallback"),
        ("{ custom { name } }", "fallback"),
    ],
)
async def test_same_result_either_way(query: str, executor: str) -> None:
    _, context = await _both(query)
    assert context.extras[EXECUTOR] == executor


async def test_loads_of_one_depth_share_a_batch() -> None:
    """Every item's loader call of a depth is one batch; the second awaits of `twice` are another."""
    body, context = await _both("{ items { loaded twice } }")
    assert body["data"]["items"][0] == {"loaded": 10, "twice": 10 + 1010}
    assert context.batches == [[1, 2, 3], [101, 102, 103]]


async def test_giving_up_leaves_no_coroutine_unawaited() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await _both("{ awaitables }")
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


async def test_values_resolved_ahead_stand_in_for_resolver_calls() -> None:
    body, context = await _both("{ listed { n double guarded } }")
    assert body["data"]["listed"] == [{"n": 1, "double": 2, "guarded": 3}, {"n": 2, "double": 4, "guarded": 6},
                                      {"n": 3, "double": 6, "guarded": 9}]
    assert context.extras[EXECUTOR] == "batched"
    assert context.resolver_calls == 3  # item 2's two fields and item 3's `guarded`; graphql-core made 6


async def test_a_refusing_permission_is_not_skipped_by_values_resolved_ahead() -> None:
    body, context = await _both("{ listed { n guarded } }", allow=False)
    assert body["data"] is None and body["errors"][0]["message"] == "Not allowed."
    assert context.extras[EXECUTOR] == "fallback"


async def test_fields_with_arguments_are_always_resolved() -> None:
    """A value resolved ahead is one per field name; it cannot stand for calls with other arguments."""
    body, context = await _both("{ listed { two: times(k: 2) three: times(k: 3) } }")
    assert body["data"]["listed"][0] == {"two": 2, "three": 3}
    assert context.resolver_calls == 6
