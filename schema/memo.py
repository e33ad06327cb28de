"""One GraphQL object per row per request.

List items often point at the same few rows (a page of 50 tasks has ~10 assignees and ~7 documents
in the bench), and making the Strawberry object, its global ID and its visibility decisions again for
each was ~5% of a dashboard request (measured). Rows are told apart by identity: the loaders hand out
the same row object for the same key, and a row reloaded after a write is a new object, so a changed
row never meets an object made from its old version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from resolvers.context import Context

T = TypeVar("T")
_OBJECTS = "schema_objects"  # in `context.extras`


def once(ctx: Context, kind: str, row: object, make: Callable[[], T]) -> T:
    """`make()` the first time `row` is turned into a `kind` object in this request, the same object after."""
    memo = cast("dict[tuple[str, int], tuple[object, object]]", ctx.extras.setdefault(_OBJECTS, {}))
    key = (kind, id(row))
    found = memo.get(key)
    if found is not None and found[0] is row:
        return cast(T, found[1])
    made = make()
    memo[key] = (row, made)  # keeps `row` alive, so its id cannot be reused within the request
    return made
