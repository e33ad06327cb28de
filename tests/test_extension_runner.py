"""`LeanExtensionsRunner` runs extension hooks exactly as Strawberry's own runner does.

The same extensions (generator, async generator, plain and coroutine hooks; hooks that let an
error through, replace it, or swallow it) run through both runners; the order of events and what
leaves the block must be the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

from schema.extension_runner import LeanExtensionsRunner

Events = list[str]


class Boom(Exception):
    pass


class Replaced(Exception):
    pass


def _extensions(events: Events, behaviour: str) -> list[SchemaExtension]:
    class Generator(SchemaExtension):
        def on_execute(self) -> Iterator[None]:
            events.append("generator in")
            try:
                yield
            except Boom as error:
                events.append(f"generator saw {error!r}")
                if behaviour == "replace":
                    raise Replaced("from the generator") from error
                if behaviour == "swallow":
                    return
                raise
            events.append("generator out")

    class AsyncGenerator(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            events.append("async generator in")
            try:
                yield
            finally:
                events.append("async generator out")

    class Plain(SchemaExtension):
        def on_execute(self) -> None:  # type: ignore[override]
            events.append("plain")

    class Coroutine(SchemaExtension):
        async def on_execute(self) -> None:  # type: ignore[override]
            events.append("coroutine")

    class Silent(SchemaExtension):
        pass  # no hook: skipped

    return [AsyncGenerator(), Plain(), Generator(), Coroutine(), Silent()]


async def _run(runner_class: type[SchemaExtensionsRunner], behaviour: str) -> tuple[Events, str]:
    events: Events = []
    runner = runner_class(execution_context=None, extensions=_extensions(events, behaviour))  # type: ignore[arg-type]
    try:
        async with runner.executing():
            events.append("body")
            if behaviour != "none":
                raise Boom("in the body")
    except Exception as error:  # what leaves the block is what is compared
        return events, f"raised {error!r} (cause {error.__cause__!r})"
    return events, "completed"


@pytest.mark.parametrize("behaviour", ["none", "raise", "replace", "swallow"])
async def test_same_events_as_strawberrys_runner(behaviour: str) -> None:
    lean = await _run(LeanExtensionsRunner, behaviour)
    assert lean == await _run(SchemaExtensionsRunner, behaviour)
    assert lean[0][:5] == ["async generator in", "plain", "generator in", "coroutine", "body"]


def test_sync_phases_refuse_async_hooks_as_strawberry_does() -> None:
    events: Events = []
    runner = LeanExtensionsRunner(execution_context=None, extensions=_extensions(events, "none"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="failed to complete synchronously"), runner.executing():
        pass


def test_sync_phase_runs_generators_in_order() -> None:
    events: Events = []

    class Outer(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            events.append("outer in")
            yield
            events.append("outer out")

    class Inner(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            events.append("inner in")
            yield
            events.append("inner out")

    extensions: list[Any] = [Outer(), Inner()]
    with LeanExtensionsRunner(execution_context=None, extensions=extensions).validation():  # type: ignore[arg-type]
        events.append("body")
    assert events == ["outer in", "inner in", "body", "inner out", "outer out"]
