"""A faster way to execute queries: one depth of the response at a time, for all its objects at once.

graphql-core completes a response field by field, one object at a time: about 6 µs of CPU per field
(graphql-core 3.3, measured on the 2-core bench machine), so a 50-task dashboard of ~500 fields
spends ~3 ms in the executor alone, more than the hand-written endpoint needs for the whole request
(bench/README.md). `BatchedExecutor` walks the same response breadth-first instead: for each depth
it calls every field's resolver for all the objects at that depth, awaits all their awaitables in
one `gather` (so DataLoaders still get every key of a depth in one batch), then completes the
values and groups the child objects for the next depth. Plain attribute fields (Strawberry fields
without a resolver) are read with `getattr`, leaf values go through the type's own output coercion,
and arguments are coerced once per field and depth rather than once per object.

It only ever produces what graphql-core would, because it does less: anything it does not handle
the same way -- a resolver that raises, a null in a non-null position, an abstract type, a list of
awaitables, `@defer`/`@stream`, introspection, field middleware (extensions with a `resolve`
hook), an abort signal -- makes it give up, and graphql-core executes the operation from the start
(after every awaitable started so far has settled). Queries only: mutations run their root fields
serially and have side effects, so they always take graphql-core's path. Every schema extension
hook (`on_operation`, `on_validate`, `on_execute`, results) runs exactly as before: this replaces
only the executor, through Strawberry's `execution_context_class`.

Coroutines that would finish without waiting (a DataLoader hit, a prefetched relation) are driven
to the end on the spot instead of becoming asyncio tasks: an asyncio task costs about 10 µs, and a
list of 50 tasks with an async field each used to create 100 of them per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    OperationType,
    SelectionSetNode,
    Undefined,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, RefMap
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

FieldDetailsList = list[FieldDetails]
# An object may carry, under this attribute, a mapping of field (Python) names to values that its list
# resolver already computed with those fields' own resolver code (look-ahead prefetch, schema/tasks.py);
# such a value must not depend on the field's selection (and fields with arguments never use one).
# The value is used as the field's value instead of calling the resolver (Strawberry's resolver wrapper
# alone costs ~6 µs a call, measured) when the field has no Strawberry extensions but permissions whose
# answer depends on the request only (`request_only` permission classes, auth/permissions.py): those are
# asked once for the list; if one says no, the resolvers run as usual and fail as usual.
RESOLVED = "_resolved"
# Where the executor notes how it ran an operation, in `context.extras` (the transport counts it):
# "batched", "fallback" (the fast path gave up; graphql-core ran it) or "graphql-core" (not eligible).
EXECUTOR = "executor"
# Objects waiting for the next depth, by runtime type and the fields they were selected by.
Following = dict[tuple[str, int], "_Objects"]
# Completes one resolved value at one response path: leaves coerced, objects queued in `Following`.
Completer = Callable[[Any, "Path | None", Following], Any]
# Strawberry stores its own field definition on each graphql-core field under this key.
_STRAWBERRY_FIELD = "strawberry-definition"


class Unsupported(Exception):
    """This operation (or this response) needs graphql-core's executor."""


@dataclass(slots=True)
class _Objects:
    """Objects of one runtime type that share one selection set, waiting for the next depth."""

    type: GraphQLObjectType
    field_details: FieldDetailsList | None  # None: the operation's root selection set
    sources: list[Any] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path | None] = field(default_factory=list)


@dataclass(slots=True)
class _Field:
    """What is known about one field of one selection set before resolving it."""

    response_key: str
    definition: GraphQLField
    field_details: FieldDetailsList
    attribute: str | None  # set for plain attribute fields: read with getattr, no resolver call
    typename: str | None  # set for `__typename`
    ahead: str | None  # set for resolvers whose value a list may have resolved ahead (see RESOLVED)
    checks: tuple[BasePermission, ...]  # permissions to pass (once per depth) before using such values
    needs_path: bool  # whether the values need a response path (objects, lists, resolver calls)
    complete: Completer  # the resolved value → its place in the response


@dataclass(slots=True)
class _Waiting:
    """A value still to come: `coroutine` (resumed by hand) waits on `future`, or `future` is the value."""

    values: list[Any]
    index: int
    coroutine: Coroutine[Any, Any, Any] | None
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Resolved:
    objects: _Objects
    field: _Field
    values: list[Any]
    paths: list[Path | None]


class BatchedExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with a breadth-first fast path for queries (module docstring).

    `document_memo` names the `context.extras` entry holding a dict that lives as long as the
    request's (cached, valid) document; when set, the plan of which fields to resolve how is kept
    there and reused by later requests for the same operation (planning was ~3% of a dashboard).
    """

    document_memo: ClassVar[str | None] = None

    def build_per_event_executor(self, payload: Any) -> Any:
        """Each subscription event with memos of its own. graphql-core 3.3 shares the subscription's
        memo of collected sub-fields with every event's executor, keyed by lists made anew for each
        event and kept alive with their entry: a long subscription kept ~3 KB per event delivered
        (tests/realtime/test_soak.py)."""
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        executor._stream_usages = RefMap()
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        if not self._fast_path_applies(serially):
            self._note("graphql-core")
            return super().execute_operation(serially)
        return self._execute_batched()

    def _note(self, how: str) -> None:
        extras = getattr(self.context_value, "extras", None)
        if isinstance(extras, dict):
            extras[EXECUTOR] = how

    def _fast_path_applies(self, serially: bool | None) -> bool:
        middleware = self.middleware_manager
        return (
            self.operation.operation == OperationType.QUERY
            and not serially
            and self.abort_signal is None
            and self.hooks is None
            and (middleware is None or not middleware.middlewares)
            and self.schema.query_type is not None
        )

    async def _execute_batched(self) -> Any:
        try:
            data = await _Run(self).execute()
        except Unsupported:
            self._note("fallback")
            result = super().execute_operation()
            return await result if self.is_awaitable(result) else result
        self._note("batched")
        return self.finish(self.build_response(data))


class _Run:
    """One breadth-first execution of one operation."""

    def __init__(self, executor: BatchedExecutor) -> None:
        self.executor = executor
        self.fields = _plans(executor)
        # A resolver raised, or an awaitable failed: finish what was started, then give up.
        self.failed = False

    async def execute(self) -> dict[str, Any]:
        executor = self.executor
        root_type = executor.schema.query_type
        assert root_type is not None
        data: dict[str, Any] = {}
        depth = [_Objects(root_type, None, [executor.root_value], [data], [None])]
        while depth:
            resolved: list[_Resolved] = []
            pending: list[_Waiting] = []
            try:
                for objects in depth:
                    for planned in self._plan(objects):
                        resolved.append(self._resolve(objects, planned, pending))
                        if self.failed:
                            raise Unsupported
            finally:
                if pending:
                    await self._settle(pending)
            if self.failed:
                raise Unsupported
            following: Following = {}
            for item in resolved:
                self._complete(item, following)
            depth = list(following.values())
        return data

    # --- planning: which fields, resolved how ---------------------------------------------------

    def _plan(self, objects: _Objects) -> list[_Field]:
        key = (objects.type.name, id(objects.field_details))
        planned = self.fields.get(key)
        if planned is None:
            planned = self.fields[key] = self._plan_fields(objects)
        return planned

    def _plan_fields(self, objects: _Objects) -> list[_Field]:
        executor = self.executor
        if objects.field_details is None:
            collected = collect_fields(
                executor.schema, executor.fragments, executor.variable_values, objects.type,
                executor.operation, executor.hide_suggestions,
            )
        else:
            collected = executor.collect_subfields(objects.type, objects.field_details)
        if collected.new_defer_usages:
            raise Unsupported
        planned: list[_Field] = []
        for response_key, field_details in collected.grouped_field_set.items():
            if any(details.fragment_variable_values is not None for details in field_details):
                raise Unsupported
            name = field_details[0].node.name.value
            if name == "__typename":
                definition = executor.schema.get_field(objects.type, name)
                assert definition is not None
                planned.append(_Field(response_key, definition, field_details, None, objects.type.name, None, (),
                                      False, _completer(definition.type, field_details, executor.is_awaitable)))
                continue
            if name.startswith("__"):
                raise Unsupported  # introspection
            definition = objects.type.fields.get(name)
            if definition is None:
                raise Unsupported
            attribute = _plain_attribute(definition)
            named = _unwrap(definition.type)
            needs_path = attribute is None or not is_leaf_type(named) or is_list_type(_strip_non_null(definition.type))
            ahead, checks = (None, ()) if attribute else _resolved_ahead(definition)
            planned.append(_Field(response_key, definition, field_details, attribute, None, ahead, checks,
                                  needs_path, _completer(definition.type, field_details, executor.is_awaitable)))
        return planned

    # --- resolving: every object of a depth, awaitables collected ---------------------------------

    def _resolve(
        self, objects: _Objects, planned: _Field, pending: list[_Waiting]
    ) -> _Resolved:
        sources = objects.sources
        parent_name = objects.type.name
        key = planned.response_key
        # tuple.__new__: a third cheaper than calling the NamedTuple (~200 Path objects per dashboard).
        paths: list[Path | None] = (
            [_new(Path, (path, key, parent_name)) for path in objects.paths] if planned.needs_path else []
        )
        if planned.typename is not None:
            return _Resolved(objects, planned, [planned.typename] * len(sources), paths)
        if planned.attribute is not None:
            attribute = planned.attribute
            return _Resolved(objects, planned, [getattr(source, attribute) for source in sources], paths)

        executor = self.executor
        definition = planned.definition
        first = planned.field_details[0]
        try:
            args = (
                get_argument_values(definition, first.node, executor.variable_values, None, executor.hide_suggestions)
                if definition.args or first.node.arguments
                else {}
            )
        except Exception as exc:  # coercion errors become field errors: graphql-core reports them
            raise Unsupported from exc
        resolve = definition.resolve or executor.field_resolver
        nodes = [details.node for details in planned.field_details]
        ahead = planned.ahead
        if ahead is not None and planned.checks and not self._allowed(objects, planned, nodes, paths, args):
            ahead = None  # the resolvers refuse, as graphql-core will report
        values: list[Any] = []
        for source, path in zip(sources, paths, strict=True):
            if ahead is not None:
                known = getattr(source, RESOLVED, None)
                if known is not None and ahead in known:
                    values.append(self._now_or_later(known[ahead], values, pending))
                    continue
            assert path is not None
            info = executor.build_resolve_info(definition, nodes, objects.type, path)
            try:
                value = resolve(source, info, **args)
            except Exception:
                self.failed = True
                value = None
            else:
                value = self._now_or_later(value, values, pending)
            values.append(value)
        return _Resolved(objects, planned, values, paths)

    def _allowed(
        self, objects: _Objects, planned: _Field, nodes: list[FieldNode], paths: list[Path | None], args: dict[str, Any]
    ) -> bool:
        """Whether every `request_only` permission of the field says yes, asked once for all objects."""
        path = paths[0]
        assert path is not None
        info = self.executor.build_resolve_info(planned.definition, nodes, objects.type, path)
        strawberry_info = Info(_raw_info=info, _field=planned.definition.extensions[_STRAWBERRY_FIELD])
        try:
            return all(
                check.has_permission(objects.sources[0], strawberry_info, **args) is True for check in planned.checks
            )
        except Exception:
            return False

    def _now_or_later(self, value: Any, values: list[Any], pending: list[_Waiting]) -> Any:
        """The value itself, or None with a `_Waiting` queued to fill `values[len(values)]` later."""
        if isinstance(value, Coroutine):
            try:
                yielded = value.send(None)
            except StopIteration as done:
                return done.value
            except Exception:
                self.failed = True
                return None
            pending.append(_waiting(values, len(values), value, yielded))
            return None
        if isinstance(value, asyncio.Future) and value.done():
            if value.cancelled() or value.exception() is not None:
                self.failed = True
                return None
            return value.result()
        if self.executor.is_awaitable(value):
            pending.append(_Waiting(values, len(values), None, asyncio.ensure_future(value)))
            return None
        return value

    async def _settle(self, pending: list[_Waiting]) -> None:
        """Wait until every queued value is there, resuming suspended coroutines by hand.

        Resolvers mostly wait for DataLoader futures: those are waited for directly and the
        coroutines resumed here, rather than wrapping each coroutine in a task. Everything is waited
        for even after a failure, so nothing of this run is still going when graphql-core starts over.
        """
        waiting = pending
        try:
            while waiting:
                await asyncio.wait({item.future for item in waiting}, return_when=asyncio.FIRST_COMPLETED)
                still: list[_Waiting] = []
                for item in waiting:
                    if not item.future.done():
                        still.append(item)
                    elif item.coroutine is None:
                        self._take(item)
                    else:
                        self._resume(item, still)
                waiting = still
        except BaseException:  # cancelled: stop what this run started
            for item in waiting:
                if item.coroutine is not None:
                    item.coroutine.close()
                elif not item.future.done():
                    item.future.cancel()
            raise

    def _take(self, item: _Waiting) -> None:
        future = item.future
        if future.cancelled() or future.exception() is not None:
            self.failed = True
        else:
            item.values[item.index] = future.result()

    def _resume(self, item: _Waiting, still: list[_Waiting]) -> None:
        coroutine = item.coroutine
        assert coroutine is not None
        try:
            yielded = coroutine.send(None)  # the future it waits on is done: `await` returns (or raises)
        except StopIteration as done:
            item.values[item.index] = done.value
        except Exception:
            self.failed = True
        else:
            still.append(_waiting(item.values, item.index, coroutine, yielded))

    # --- completing: leaves coerced, objects grouped for the next depth ----------------------------

    def _complete(self, item: _Resolved, following: Following) -> None:
        planned = item.field
        targets = item.objects.targets
        key = planned.response_key
        complete = planned.complete
        if item.paths:
            for target, value, path in zip(targets, item.values, item.paths, strict=True):
                target[key] = complete(value, path, following)
        else:
            for target, value in zip(targets, item.values, strict=True):
                target[key] = complete(value, None, following)


def _completer(
    return_type: GraphQLOutputType, details: FieldDetailsList, is_awaitable: Callable[[Any], bool]
) -> Completer:
    """A function completing values of `return_type`, made once per field and selection set: the type
    dispatch graphql-core repeats for every value (about 500 per dashboard) happens here once."""
    if isinstance(return_type, GraphQLNonNull):
        inner = _completer(return_type.of_type, details, is_awaitable)

        def non_null(value: Any, path: Path | None, following: Following) -> Any:
            completed = inner(value, path, following)
            if completed is None:
                raise Unsupported  # graphql-core raises a field error and nulls the nearest nullable parent
            return completed

        return non_null
    if isinstance(return_type, GraphQLLeafType):
        return _leaf_completer(return_type)
    if isinstance(return_type, GraphQLList):
        return _list_completer(_completer(return_type.of_type, details, is_awaitable), is_awaitable)
    if isinstance(return_type, GraphQLObjectType):
        return _object_completer(return_type, details)
    return _abstract  # interfaces and unions


def _leaf_completer(return_type: GraphQLLeafType) -> Completer:
    coerce = return_type.coerce_output_value
    # String and ID give back a `str` as it is; skip the call for the most common leaf.
    passes_str = return_type in (GraphQLString, GraphQLID)

    def leaf(value: Any, path: Path | None, following: Following) -> Any:
        if value is None or value is Undefined:
            return None
        if passes_str and value.__class__ is str:
            return value
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise Unsupported
        return coerced

    return leaf


def _list_completer(item: Completer, is_awaitable: Callable[[Any], bool]) -> Completer:
    def list_(value: Any, path: Path | None, following: Following) -> Any:
        if value is None or value is Undefined:
            return None
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise Unsupported
        elements = list(value)
        if any(is_awaitable(element) for element in elements):
            # A list of awaitables: graphql-core settles each item on its own (one failing item
            # nulls only itself). It calls the resolver again, so close these unawaited.
            for element in elements:
                if isinstance(element, Coroutine):
                    element.close()
            raise Unsupported
        return [item(element, _new(Path, (path, index, None)), following) for index, element in enumerate(elements)]

    return list_


def _object_completer(return_type: GraphQLObjectType, details: FieldDetailsList) -> Completer:
    is_type_of = return_type.is_type_of
    if is_type_of is not None and not _strawberry_made(is_type_of):
        return _abstract  # a custom `is_type_of` may need `info`, which is not built here
    group_key = (return_type.name, id(details))

    def object_(value: Any, path: Path | None, following: Following) -> Any:
        if value is None or value is Undefined:
            return None
        if is_type_of is not None and not is_type_of(value, None):
            raise Unsupported
        objects = following.get(group_key)
        if objects is None:
            objects = following[group_key] = _Objects(return_type, details)
        target: dict[str, Any] = {}
        objects.sources.append(value)
        objects.targets.append(target)
        objects.paths.append(path)
        return target

    return object_


def _abstract(value: Any, path: Path | None, following: Following) -> Any:
    if value is None or value is Undefined:
        return None
    raise Unsupported


def _waiting(values: list[Any], index: int, coroutine: Coroutine[Any, Any, Any], yielded: Any) -> _Waiting:
    """A coroutine that stopped at `yielded`, as a value still to come.

    A coroutine waiting on an asyncio future yields that future with `_asyncio_future_blocking` set,
    and whoever drives it (normally a task) clears the flag; until then no other coroutine may await
    the same future ("await wasn't used with future"). We drive it: clear the flag, wait for the
    future, resume the coroutine. Anything else it may yield (a bare `yield` from `asyncio.sleep(0)`,
    another loop's future) is left to a real task, which then drives the coroutine to its end.
    """
    if isinstance(yielded, asyncio.Future) and getattr(yielded, "_asyncio_future_blocking", False):
        yielded._asyncio_future_blocking = False
        return _Waiting(values, index, coroutine, yielded)
    return _Waiting(values, index, None, asyncio.ensure_future(_Resumed(coroutine, yielded)))


class _Resumed:
    """Awaits a coroutine whose first step already ran and stopped at `yielded`.

    Hands `yielded` to the task that awaits this, then relays what the task sends or throws, exactly
    as `await` would have done had the coroutine not been started by hand (PEP 380 delegation).

    """

    __slots__ = ("coroutine", "yielded")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self.coroutine = coroutine
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, yielded = self.coroutine, self.yielded
        while True:
            try:
                sent = yield yielded
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # cancellation, relayed like `await` relays it
                try:
                    yielded = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    yielded = coroutine.send(sent)
                except StopIteration as done:
                    return done.value


Plans = dict[tuple[str, int], list[_Field]]
_new = tuple.__new__


def _plans(executor: BatchedExecutor) -> Plans:
    """Where this run keeps its plans: the document's memo when the plan cannot differ between requests.

    Which fields a selection set has depends on the request only through `@skip`/`@include` with a
    variable; a document with any directive on a selection is planned afresh every time.
    """
    extras = getattr(executor.context_value, "extras", None)
    memo = extras.get(executor.document_memo) if executor.document_memo and isinstance(extras, dict) else None
    if not isinstance(memo, dict):
        return {}
    operation = executor.operation
    key = ("batched-plans", id(operation))
    found = memo.get(key)
    if found is None:
        static = not _has_directives(operation.selection_set, executor.fragment_definitions, set())
        found = memo[key] = {} if static else False
    return found if isinstance(found, dict) else {}


def _has_directives(selection_set: SelectionSetNode | None, fragments: Mapping[str, Any], seen: set[str]) -> bool:
    for selection in selection_set.selections if selection_set else ():
        if selection.directives:
            return True
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if name in seen or fragment is None:
                continue
            seen.add(name)
            if fragment.directives or _has_directives(fragment.selection_set, fragments, seen):
                return True
        elif _has_directives(getattr(selection, "selection_set", None), fragments, seen):
            return True
    return False


def _plain_attribute(definition: GraphQLField) -> str | None:
    """The Python attribute behind a Strawberry field without a resolver, None for anything else.

    Strawberry resolves such a field with `_get_basic_result`, which reads the attribute with the
    configured default resolver (`getattr`) and nothing else.
    """
    resolve = definition.resolve
    strawberry_field = (definition.extensions or {}).get(_STRAWBERRY_FIELD)
    if resolve is None or strawberry_field is None or getattr(resolve, "__name__", "") != "_get_basic_result":
        return None
    if strawberry_field.base_resolver is not None or strawberry_field.default_resolver is not getattr:
        return None
    name = strawberry_field.python_name
    return name if isinstance(name, str) else None


def _resolved_ahead(definition: GraphQLField) -> tuple[str | None, tuple[BasePermission, ...]]:
    """For a Strawberry resolver field without arguments whose only extensions check `request_only`
    permissions: its Python name (where RESOLVED values are found) and those permissions; (None, ())
    for anything else. With arguments, one value per name could not stand for every call."""
    strawberry_field = (definition.extensions or {}).get(_STRAWBERRY_FIELD)
    if strawberry_field is None or strawberry_field.base_resolver is None or definition.args:
        return None, ()
    checks: list[BasePermission] = []
    for extension in strawberry_field.extensions:
        if not isinstance(extension, PermissionExtension) or extension.fail_silently:
            return None, ()
        for permission in extension.permissions:
            if getattr(permission, "request_only", False) is not True:
                return None, ()
            checks.append(permission)
    name = strawberry_field.python_name
    return (name, tuple(checks)) if isinstance(name, str) else (None, ())


def _strawberry_made(is_type_of: Callable[..., Any]) -> bool:
    # Strawberry's generated `is_type_of` checks the class and ignores `info`; a custom one may not.
    return getattr(is_type_of, "__module__", "") == "strawberry.schema.schema_converter"


def _strip_non_null(type_: GraphQLOutputType) -> GraphQLOutputType:
    return type_.of_type if is_non_null_type(type_) else type_


def _unwrap(type_: GraphQLOutputType) -> GraphQLOutputType:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


__all__ = ["EXECUTOR", "RESOLVED", "BatchedExecutor", "Unsupported"]
