"""The price list and the static analysis, on the real schema: what clients read in the SDL is what
the server charges. Pure functions of the schema and the document; no app, no database.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLSchema, parse

from limits.cost import MAX_COST, actual_cost, coerce_variables, requested_cost
from limits.cost_model import CostModel
from limits.shape import operations
from resolvers.errors import QueryTooComplex
from schema import build_schema

SDL = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text()


@cache
def _model() -> CostModel:
    schema: GraphQLSchema = build_schema()._schema
    return CostModel(schema)


def price(query: str, variables: dict[str, Any] | None = None) -> int:
    document = parse(query)
    [operation] = operations(document, None)
    coerced = coerce_variables(_model(), operation, variables)
    assert coerced is not None
    return requested_cost(_model(), document, operation, coerced)


def counted(query: str, data: dict[str, Any], variables: dict[str, Any] | None = None) -> int:
    document = parse(query)
    [operation] = operations(document, None)
    return actual_cost(_model(), document, operation, variables or {}, data)


# --- the SDL carries the prices -----------------------------------------------------------------


def test_the_sdl_declares_the_cost_directives() -> None:
    assert 'directive @cost(weight: String!) on FIELD_DEFINITION | OBJECT' in SDL
    assert ("directive @listSize(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], "
            "requireOneSlicingArgument: Boolean! = true) on FIELD_DEFINITION") in SDL
    connection = ('@listSize(assumedSize: 20, slicingArguments: ["first", "last"], sizedFields: ["edges", "nodes"], '
                  'requireOneSlicingArgument: false)')
    assert SDL.count(connection) == 5  # tasks and documents on Query and User, tasks on Document
    assert 'totalCount: Int! @cost(weight: "1")' in SDL
    assert 'type TaskEdge @cost(weight: "0")' in SDL
    assert 'rateLimit: RateLimit @cost(weight: "0")' in SDL


# --- requested cost -----------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "cost"), [
    ("{ __typename }", 0),
    ("{ viewer { id name email } }", 1),  # an object costs 1, its scalars nothing
    ("{ rateLimit { remaining } }", 0),
    ("{ tasks { edges { cursor } } }", 1),  # edges are free wrappers
    ("{ tasks { totalCount pageInfo { hasNextPage } } }", 2),  # totalCount is a COUNT query
    ("{ tasks { nodes { id } } }", 1 + 20),  # 20 when neither first nor last is given
    ("{ tasks(first: 5) { edges { node { id } } } }", 1 + 5),
    ("{ tasks(last: 7) { nodes { id } } }", 1 + 7),
    ("{ tasks(first: 5) { edges { node { id } } nodes { id } } }", 1 + 5 + 5),
    ("{ tasks(first: 5) { nodes { owner { name } assignee { name } labels } } }", 1 + 5 * 3),
    ("{ tasks(first: 10) { nodes { document { tasks(first: 10) { nodes { id } } } } } }", 1 + 10 * (1 + 1 + 1 + 10)),
    ("{ documents(first: 2) { nodes { collaborators { user { name } role } } } }", 1 + 2 * (1 + 5 * 2)),
    ('{ nodes(ids: ["a", "b", "c"]) { id } }', 3),  # a list slicing argument counts its length
    ('{ node(id: "a") { id } }', 1),
    ("{ tasks(first: 0) { nodes { id } } }", 1),
    ("{ tasks(first: -5) { nodes { id } } }", 1),  # the resolver refuses it; it costs nothing extra
    # The README's example.
    ("{ viewer { tasks(first: 10) { totalCount nodes { title assignee { name } } } } }", 23),
])
def test_requested_cost(query: str, cost: int) -> None:
    assert price(query) == cost


def test_mutations_cost_ten_plus_what_they_select() -> None:
    assert price('mutation { createTask(input: {title: "x"}) { task { id owner { name } } userErrors { message } } }') \
        == 10 + 1 + 1


def test_variables_size_lists() -> None:
    query = "query($n: Int, $m: Int = 3) { tasks(first: $n) { nodes { document { tasks(first: $m) { nodes { id } } } } } }"
    # task + document + its tasks connection + its m tasks, for each of n tasks
    assert price(query, {"n": 4}) == 1 + 4 * (1 + 1 + 1 + 3)
    assert price(query, {"n": 4, "m": 9}) == 1 + 4 * (1 + 1 + 1 + 9)
    assert price(query, {}) == 1 + 20 * (1 + 1 + 1 + 3)  # $n unset: as if not given


def test_skipped_fields_cost_nothing() -> None:
    query = "query($big: Boolean!) { viewer { id } tasks(first: 50) @include(if: $big) { nodes { id } } }"
    assert price(query, {"big": False}) == 1
    assert price(query, {"big": True}) == 1 + 1 + 50
    assert price("{ viewer @skip(if: true) { id } }") == 0


def test_fragments_cost_what_they_select_each_time_they_are_spread() -> None:
    fragment = "fragment T on TaskConnection { nodes { owner { name } } }"
    assert price("{ tasks(first: 3) { ...T } } " + fragment) == 1 + 3 * 2
    # Sized by each connection that spreads it.
    assert price("{ a: tasks(first: 3) { ...T } b: tasks(first: 30) { ...T } } " + fragment) == (1 + 6) + (1 + 60)
    assert price("{ viewer { ...U ...U } } fragment U on User { documents(first: 1) { totalCount } }") == 1 + 2 * 2


def test_an_interface_costs_its_dearest_branch() -> None:
    query = """{ node(id: "x") { id
        ... on Task { owner { name } assignee { name } }
        ... on Document { tasks(first: 10) { nodes { id } } }
        ... on User { name } } }"""
    assert price(query) == 1 + max(2, 1 + 10, 0)
    # A fragment on the interface itself applies to every type.
    assert price('{ node(id: "x") { ...N ... on Task { owner { id } } } } fragment N on Node { id }') == 1 + 1


def test_a_fragment_bomb_is_priced_in_linear_time() -> None:
    fragments = "\n".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(100))
    query = f"{{ viewer {{ ...F0 }} }}\n{fragments}\nfragment F100 on User {{ documents(first: 1) {{ totalCount }} }}"
    assert price(query) == MAX_COST  # 2^101 and more: reported as the largest exact JSON integer


def test_a_chain_of_fragments_past_any_depth_limit_is_refused() -> None:
    fragments = "\n".join(f"fragment F{i} on User {{ ...F{i + 1} }}" for i in range(200))
    with pytest.raises(QueryTooComplex):
        price(f"{{ viewer {{ ...F0 }} }}\n{fragments}\nfragment F200 on User {{ name }}")


def test_selections_nested_past_what_the_depth_limit_allows_are_refused() -> None:
    query = "{ viewer { " + "... { " * 160 + "name" + " }" * 160 + " } }"
    with pytest.raises(QueryTooComplex):
        price(query)


def test_introspection_is_priced_from_the_schemas_real_sizes() -> None:
    model = _model()
    types = model.price("__Schema", "types")
    assert types is not None and types.sizing is not None
    assert types.sizing.assumed_size == len(model.schema.type_map)
    # __schema and each type: a tenth each.
    assert price("{ __schema { types { name } } }") == math.ceil(0.1 * (1 + len(model.schema.type_map)) - 1e-9)


# --- actual cost --------------------------------------------------------------------------------


def test_actual_cost_counts_what_came_back() -> None:
    query = "{ tasks(first: 50) { totalCount nodes { owner { name } assignee { name } } } }"
    data = {"tasks": {"totalCount": 2, "nodes": [
        {"owner": {"name": "a"}, "assignee": None},
        {"owner": {"name": "a"}, "assignee": {"name": "b"}},
    ]}}
    assert price(query) == 1 + 1 + 50 * 3
    assert counted(query, data) == 1 + 1 + 2 + 2 + 1  # connection, count, 2 nodes, 2 owners, 1 assignee
    assert counted(query, {"tasks": None}) == 0


def test_actual_cost_merges_fields_like_execution() -> None:
    query = "{ viewer { id } viewer { name } ...V ...V } fragment V on Query { viewer { id } }"
    assert counted(query, {"viewer": {"id": "1", "name": "A"}}) == 1


def test_actual_cost_of_an_interface_counts_the_type_returned() -> None:
    query = '{ nodes(ids: ["a", "b"]) { ... on Task { owner { name } } ... on Document { owner { name } title } } }'
    data = {"nodes": [{"owner": {"name": "x"}}, None]}
    assert counted(query, data) == 1 + 1
