"""Relay cursor pagination over offsets: arguments checked once, the slice computed from them.

Cursors are opaque to clients (`base64("o:<offset>")`); offsets keep `last`/`before` simple and exact
for a stable ordering, which every list here has (a unique id breaks ties).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

from resolvers.context import Limits
from resolvers.errors import BadUserInput

T = TypeVar("T")
MAX_OFFSET = 2**31 - 1  # beyond any real list; keeps OFFSET within the database's integer range


@lru_cache(maxsize=4096)  # one per edge of every page; the same few hundred offsets over and over
def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str, argument: str) -> int:
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeError, ValueError):
        raise BadUserInput(f"`{argument}` is not a valid cursor.", field=argument) from None
    if kind != "o" or not 0 <= offset <= MAX_OFFSET:
        raise BadUserInput(f"`{argument}` is not a valid cursor.", field=argument)
    return offset


@dataclass(frozen=True, slots=True)
class PageArgs:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """Rows [start, end) are wanted; `end` is None when it depends on the total count."""

    start: int
    end: int | None
    first: int | None
    last: int | None


def window(args: PageArgs, limits: Limits) -> Window:
    for name, value in (("first", args.first), ("last", args.last)):
        if value is not None and value < 0:
            raise BadUserInput(f"`{name}` must not be negative.", field=name)
        if value is not None and value > limits.max_page_size:
            raise BadUserInput(
                f"`{name}` is {value}; at most {limits.max_page_size} items can be requested at once.",
                field=name,
            )
    if args.first is not None and args.last is not None:
        raise BadUserInput("Pass either `first` or `last`, not both.", field="last")
    start = decode_cursor(args.after, "after") + 1 if args.after is not None else 0
    end = decode_cursor(args.before, "before") if args.before is not None else None
    first = args.first
    if first is None and args.last is None:
        first = limits.default_page_size
    return Window(start=start, end=end, first=first, last=args.last)


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    items: Sequence[T]
    offset: int
    has_next_page: bool
    has_previous_page: bool


async def fetch_slice(
    win: Window,
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    count: Callable[[], Awaitable[int]],
) -> Slice[T]:
    """Fetch one page with `fetch(offset, limit)`; `count()` is only called for `last` without `before`."""
    if win.first is not None:
        limit = win.first if win.end is None else max(0, min(win.first, win.end - win.start))
        rows = await fetch(win.start, limit + 1) if limit else []
        # With `before`, the item at the cursor itself lies after this page.
        has_next = len(rows) > limit or win.end is not None
        return Slice(rows[:limit], win.start, has_next, win.start > 0)
    assert win.last is not None
    end = win.end if win.end is not None else await count()
    start = max(win.start, end - win.last)
    rows = await fetch(start, end - start) if end > start else []
    return Slice(rows, start, win.end is not None, start > 0)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """What a connection field resolves to: one slice, and the total count on demand."""

    slice: Slice[T]
    count: Callable[[], Awaitable[int]]


async def paginate(
    args: PageArgs,
    limits: Limits,
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    count: Callable[[], Awaitable[int]],
) -> Page[T]:
    return Page(await fetch_slice(window(args, limits), fetch, count), count)
