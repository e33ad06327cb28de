"""An executor built once per cached document and operation, copied for each request.

graphql-core's `Executor.build` checks the schema, walks the document for the operation and its
fragments, coerces the variables and initialises some twenty attributes, per request (~15 µs of a
`{ __typename }` request served on the bench machine). For a document the document cache keeps, all
of that but the variables and the per-execution state is the same every time. `ExecutorTemplate`
keeps what `build` made for the first request and hands out shallow copies with fresh per-execution
state, which is how graphql-core itself makes an executor per subscription event
(`build_per_event_executor`) and per deferred group (`create_sub_executor`).

`PER_EXECUTION` names every attribute made fresh; tests/test_executor_template.py compares a copy with
what `build` makes, attribute by attribute, so a graphql-core upgrade that adds state fails there.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from graphql.execution.executor import CollectedErrors, Executor
from graphql.execution.values import get_variable_values
from graphql.pyutils import RefMap
from graphql.type.definition import GraphQLResolveInfoHelpers

# The coercion limit `Executor.build` uses by default (the short way calls it with the defaults).
MAX_COERCION_ERRORS = 50


def _fresh_state(executor: Executor[Any]) -> dict[str, Any]:
    return {
        "async_helpers": GraphQLResolveInfoHelpers(gather=executor.gather_async_work, track=executor.track_async_work),
        "collected_errors": CollectedErrors(),
        "pending_incremental_futures": set(),
        "background_futures": set(),
        "async_work_finished_hook_task": None,
        "_relevant_sub_fields": {},
        "_stream_usages": RefMap(),
        # IncrementalExecutor's
        "defer_usage_set": None,
        "groups": [],
        "tasks": [],
        "streams": [],
        "_initial_execution_plans": RefMap(),
        "_deferred_execution_plans": RefMap(),
    }


# Everything else `build` sets is the same for every request of this document and operation.
PER_EXECUTION = frozenset({"context_value", "variable_values", *_fresh_state(Executor.__new__(Executor))})


class ExecutorTemplate:
    def __init__(self, built: Executor[Any]) -> None:
        """`built`: what `Executor.build` made for one request, before it executed anything."""
        self._class = type(built)
        self._state = {name: value for name, value in vars(built).items() if name not in PER_EXECUTION}
        self._schema = built.schema
        self._definitions = built.operation.variable_definitions or ()
        self._hide_suggestions = built.hide_suggestions
        # Without variable definitions every request's coerced variables are the same (empty) ones.
        self._no_variables = None if self._definitions else built.variable_values

    def executor(
        self, context_value: Any, raw_variable_values: dict[str, Any] | None
    ) -> Executor[Any] | list[GraphQLError]:
        """What `Executor.build` would return for this request: an executor, or the variables' errors."""
        variable_values = self._no_variables
        if variable_values is None:
            coerced = get_variable_values(self._schema, self._definitions, raw_variable_values or {},
                                          max_errors=MAX_COERCION_ERRORS, hide_suggestions=self._hide_suggestions)
            if isinstance(coerced, list):
                return coerced
            variable_values = coerced
        executor = self._class.__new__(self._class)
        state = executor.__dict__
        state.update(self._state)
        state.update(_fresh_state(executor))
        state["context_value"] = context_value
        state["variable_values"] = variable_values
        return executor
