"""`ExecutorTemplate` hands out what `Executor.build` would make (schema/executor_template.py).

Each copy must equal a freshly built executor attribute by attribute, share nothing a request changes
with the template or with other copies, and answer variables exactly as `build` does. A graphql-core
release that adds per-execution state makes the attribute comparison fail here, not a request later.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, parse
from graphql.execution.executor import CollectedErrors

from schema import build_schema
from schema.executor_template import PER_EXECUTION, ExecutorTemplate
from schema.tasks import TaskStatus

SCHEMA = build_schema()
DOCUMENTS = {
    "no variables": "{ __typename }",
    "variables and a fragment": (
        "query Tasks($first: Int!, $status: [TaskStatus!]) { viewer { ...Mine } } "
        "fragment Mine on User { tasks(first: $first, filter: {status: $status}) { nodes { title } } }"
    ),
    "two operations": "query A { __typename } query B($id: ID!) { node(id: $id) { id } }",
}
GOOD: dict[str, dict[str, Any]] = {"no variables": {}, "variables and a fragment": {"first": 2, "status": ["DONE"]}, "two operations": {"id": "x"}}
NAMES = {"two operations": "B"}


def _build(document: Any, name: str, context: object, variables: dict[str, Any] | None) -> Any:
    return SCHEMA.execution_context_class.build(
        SCHEMA._schema, document, context_value=context, raw_variable_values=variables,
        operation_name=NAMES.get(name), operation_extensions=None,
    )


def _empty(value: Any) -> bool:
    if isinstance(value, CollectedErrors):
        return value.errors == []
    return value is None or len(value) == 0


def _template(document: Any, name: str) -> ExecutorTemplate:
    return ExecutorTemplate(_build(document, name, object(), GOOD[name]))


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_a_copy_is_what_build_makes(name: str) -> None:
    document = parse(DOCUMENTS[name])
    template = _template(document, name)
    context = object()
    built = _build(document, name, context, GOOD[name])
    copies = [template.executor(context, GOOD[name]) for _ in range(2)]
    for copy in copies:
        assert type(copy) is type(built)
        assert set(vars(copy)) == set(vars(built))
        for attribute, value in vars(built).items():
            made = getattr(copy, attribute)
            if attribute == "async_helpers":  # bound to their own executor
                assert made.gather.__self__ is copy and made.track.__self__ is copy
            elif attribute == "context_value":
                assert made is context
            elif attribute == "variable_values":
                assert made.coerced == value.coerced
            elif attribute in PER_EXECUTION:
                assert type(made) is type(value) and _empty(made) and _empty(value), attribute
            else:
                assert made is value or made == value, attribute
    shared_by_both = {attribute for attribute in PER_EXECUTION - {"context_value", "async_work_finished_hook_task",
                                                                   "defer_usage_set"}
                      if getattr(copies[0], attribute) is getattr(copies[1], attribute)}
    assert shared_by_both == ({"variable_values"} if name == "no variables" else set())


def test_every_attribute_build_sets_is_accounted_for() -> None:
    document = parse(DOCUMENTS["no variables"])
    built = _build(document, "no variables", object(), {})
    template = _template(document, "no variables")
    assert PER_EXECUTION <= set(vars(built))
    assert set(vars(built)) - PER_EXECUTION == set(template._state)


@pytest.mark.parametrize("variables", [{}, {"first": "many"}, {"first": 1, "status": ["LOST"]}, {"first": None}])
def test_bad_variables_get_the_errors_build_gives(variables: dict[str, Any]) -> None:
    name = "variables and a fragment"
    document = parse(DOCUMENTS[name])
    errors = _template(document, name).executor(object(), variables)
    expected = _build(document, name, object(), variables)
    assert isinstance(errors, list) and isinstance(expected, list)
    assert [error.formatted for error in errors] == [error.formatted for error in expected]
    assert all(isinstance(error, GraphQLError) for error in errors)


def test_each_copy_coerces_its_own_variables() -> None:
    name = "variables and a fragment"
    template = _template(parse(DOCUMENTS[name]), name)
    first = template.executor(object(), {"first": 5})
    second = template.executor(object(), {"first": 7, "status": ["TODO"]})
    assert not isinstance(first, list) and not isinstance(second, list)
    assert first.variable_values.coerced == {"first": 5}
    assert second.variable_values.coerced == {"first": 7, "status": [TaskStatus.TODO]}
