"""The price list: what each field of the schema costs, read once from the schema's directives.

The schema declares prices with the GraphQL cost directives (IBM's GraphQL Cost Directives
specification), printed in the SDL so that clients can price a query exactly as the server does:

- `@cost(weight: "2")` on a field: the field costs 2 for each value it returns; on an object type:
  the default for every field that returns that type.
- `@listSize(slicingArguments: ["first", "last"], assumedSize: 20, sizedFields: ["edges", "nodes"])`
  on a list or connection field: how many items it returns. The largest slicing argument given wins
  (a list argument, like `nodes(ids:)`, counts its length); without one, `assumedSize`. With
  `sizedFields`, the size applies to those list fields of the returned object (a connection's
  `edges` and `nodes`), not to the field itself.

Defaults, for fields without a directive: an object (or interface, union) costs 1, a scalar or
enum 0; a Mutation or Subscription root field 10; a list without `@listSize` is taken to hold
`DEFAULT_LIST_SIZE` items. Introspection is priced like any other query, but its objects are served
from memory, so each costs `INTROSPECTION_WEIGHT`, and its lists are as long as they really are on
average in this schema (it is static), so the introspection query a GraphQL IDE sends stays cheap
while a query that nests introspection lists many levels deep does not.

This module reads the directives by their GraphQL names (`cost`, `listSize`) from the Strawberry
definitions behind the graphql-core schema, so `limits` does not import `schema`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_composite_type,
)

DEFAULT_LIST_SIZE = 10
ROOT_OPERATION_WEIGHT = 10.0  # mutations write; subscriptions hold a connection's resources
INTROSPECTION_WEIGHT = 0.1
_STRAWBERRY_DEFINITION = "strawberry-definition"


@dataclass(frozen=True, slots=True)
class ListSizing:
    assumed_size: float | None = None
    slicing_arguments: tuple[str, ...] = ()
    sized_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldPrice:
    weight: float  # for each value the field returns
    returns_list: bool
    sizing: ListSizing | None = None  # from @listSize


class CostModel:
    """Prices by (parent type name, field name), built once per schema."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.prices: dict[tuple[str, str], FieldPrice] = {}
        roots = {t.name for t in (schema.mutation_type, schema.subscription_type) if t is not None}
        introspection_sizes = _introspection_sizes(schema)
        for type_ in schema.type_map.values():
            if not isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
                continue
            for name, field in type_.fields.items():
                self.prices[(type_.name, name)] = _price(
                    type_, name, field, root=type_.name in roots, introspection_sizes=introspection_sizes
                )
        schema_meta = FieldPrice(INTROSPECTION_WEIGHT, returns_list=False)
        self.meta = {"__schema": schema_meta, "__type": schema_meta, "__typename": FieldPrice(0, False)}

    def price(self, type_name: str, field_name: str) -> FieldPrice | None:
        """None for a field the type does not have (validation reports it; it costs nothing here)."""
        if field_name.startswith("__") and field_name in self.meta:
            return self.meta[field_name]
        return self.prices.get((type_name, field_name))


def _price(
    parent: GraphQLNamedType, name: str, field: GraphQLField, *, root: bool,
    introspection_sizes: dict[tuple[str, str], float],
) -> FieldPrice:
    returned = get_named_type(field.type)
    weight = _weight(_directives(field.extensions))
    if weight is None:
        weight = _weight(_directives(returned.extensions))
    if weight is None:
        if root:
            weight = ROOT_OPERATION_WEIGHT
        elif returned.name.startswith("__") and is_composite_type(returned):
            weight = INTROSPECTION_WEIGHT
        else:
            weight = 1.0 if is_composite_type(returned) else 0.0
    sizing = _sizing(_directives(field.extensions))
    if sizing is None and (parent.name, name) in introspection_sizes:
        sizing = ListSizing(assumed_size=introspection_sizes[(parent.name, name)])
    return FieldPrice(weight, returns_list=_is_list(field.type), sizing=sizing)


def _is_list(type_: GraphQLOutputType) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _directives(extensions: dict[str, Any] | None) -> Sequence[object]:
    definition = (extensions or {}).get(_STRAWBERRY_DEFINITION)
    return getattr(definition, "directives", None) or ()


def _graphql_name(directive: object) -> str | None:
    meta = getattr(type(directive), "__strawberry_directive__", None)
    return getattr(meta, "graphql_name", None)


def _weight(directives: Iterable[object]) -> float | None:
    for directive in directives:
        if _graphql_name(directive) == "cost":
            return float(getattr(directive, "weight"))  # noqa: B009 (a duck-typed directive)
    return None


def _sizing(directives: Iterable[object]) -> ListSizing | None:
    for directive in directives:
        if _graphql_name(directive) == "listSize":
            assumed = getattr(directive, "assumed_size", None)  # None or UNSET when not given
            return ListSizing(
                assumed_size=float(assumed) if isinstance(assumed, int) else None,
                slicing_arguments=tuple(getattr(directive, "slicing_arguments", None) or ()),
                sized_fields=tuple(getattr(directive, "sized_fields", None) or ()),
            )
    return None


def _introspection_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], float]:
    """The average length of each introspection list in this schema (the schema does not change)."""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in with_fields for f in t.fields.values()]
    count = max(len(types), 1)
    directives = list(schema.directives)
    return {
        ("__Schema", "types"): float(len(types)),
        ("__Schema", "directives"): float(len(directives)),
        ("__Type", "fields"): len(fields) / count,
        ("__Type", "interfaces"): sum(len(t.interfaces) for t in with_fields) / count,
        ("__Type", "possibleTypes"): sum(
            len(schema.get_possible_types(t)) for t in types if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)
        ) / count,
        ("__Type", "enumValues"): sum(len(t.values) for t in types if isinstance(t, GraphQLEnumType)) / count,
        ("__Type", "inputFields"): sum(
            len(t.fields) for t in types if isinstance(t, GraphQLInputObjectType)
        ) / count,
        ("__Field", "args"): sum(len(f.args) for f in fields) / max(len(fields), 1),
        ("__Directive", "args"): sum(len(d.args) for d in directives) / max(len(directives), 1),
    }
