"""Static cost analysis: what an operation may cost before it runs, and what it did cost after.

`requested_cost` prices the operation from the document and its variables alone, as an upper
bound: every field costs its weight for each value it may return (see `limits/cost_model.py`), list
sizes come from `first`/`last` or the assumed sizes, and a selection on an interface or union costs
its common fields plus the dearest of its type-specific fragments. Each fragment is priced once,
however often it is spread, so pricing is linear in the size of the document; a spread does add the
fragment's price each time, so fragments that spread each other many times over price as what they
would be if written out.

`actual_cost` prices what was really returned: the same weights, over the result's real lists and
objects (null and missing values cost nothing), with fields merged the way graphql-core merges them
for execution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
)
from graphql.execution.values import get_variable_values

from limits.cost_model import DEFAULT_LIST_SIZE, CostModel, FieldPrice
from limits.shape import fragments_of
from resolvers.errors import QueryTooComplex

# Prices are reported in JSON, where integers past 2^53 lose precision (and past 2^63 break encoders).
MAX_COST = 2**53 - 1
# What to count on the objects of one type under some selection sets (keyed by their ids, so the
# plans are only good for the document they were made for).
CountingPlans = dict[tuple[tuple[int, ...], str], list["_Counted"]]
# Selection sets nested this deep (fields, inline fragments and spreads together) are refused
# rather than priced: the depth limit stops honest queries long before.
MAX_NESTING = 150


@dataclass(slots=True)
class _Price:
    """A selection set's price: `fixed`, plus per-item prices of list fields whose size is set by
    the field that encloses the selection set (a connection's `edges` and `nodes`)."""

    fixed: float = 0.0
    per_item: dict[str, float] = field(default_factory=dict)

    def add(self, other: _Price) -> None:
        self.fixed += other.fixed
        for name, value in other.per_item.items():
            self.per_item[name] = self.per_item.get(name, 0.0) + value

    def total(self, size: float | None = None, sized_fields: tuple[str, ...] = ()) -> float:
        return self.fixed + sum(
            value * (size if size is not None and name in sized_fields else DEFAULT_LIST_SIZE)
            for name, value in self.per_item.items()
        )


def root_type(model: CostModel, operation: OperationDefinitionNode) -> GraphQLObjectType | None:
    schema = model.schema
    if operation.operation == OperationType.QUERY:
        return schema.query_type
    if operation.operation == OperationType.MUTATION:
        return schema.mutation_type
    return schema.subscription_type


def coerce_variables(
    model: CostModel, operation: OperationDefinitionNode, variables: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The variables as execution will see them (defaults applied); None when they are invalid,
    in which case graphql-core refuses the operation before any resolver runs."""
    coerced = get_variable_values(model.schema, operation.variable_definitions or (), variables or {})
    return None if isinstance(coerced, list) else dict(coerced.coerced)


def requested_cost(
    model: CostModel, document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> int:
    root = root_type(model, operation)
    if root is None:
        return 0
    pricer = _Pricer(model, document, variables)
    return _whole(pricer.selection_set(operation.selection_set, root, 0).total())


def actual_cost(
    model: CostModel, document: DocumentNode, operation: OperationDefinitionNode,
    variables: dict[str, Any], data: Mapping[str, Any] | None, plans: CountingPlans | None = None,
) -> int:
    """`plans`: a dict to keep what to count per selection set in, for the next call with the same
    document and variables (the plans depend on both, through fragments and `@skip`/`@include`)."""
    root = root_type(model, operation)
    if root is None or data is None:
        return 0
    counter = _Counter(model, document, variables, plans)
    return _whole(counter.object((operation.selection_set,), root, data))


def _whole(cost: float) -> int:
    """Rounded up, and at most `MAX_COST` (which then means "at least that much")."""
    if not math.isfinite(cost) or cost >= MAX_COST:
        return MAX_COST
    return math.ceil(cost - 1e-9)  # decimal weights: 0.1 * 30 must not round up to 4


class _Pricer:
    def __init__(self, model: CostModel, document: DocumentNode, variables: dict[str, Any]) -> None:
        self.model = model
        self.fragments = fragments_of(document)
        self.variables = variables
        self.memo: dict[str, _Price] = {}
        self.in_progress: set[str] = set()

    def selection_set(self, selection_set: SelectionSetNode, parent: GraphQLNamedType, nesting: int) -> _Price:
        if nesting > MAX_NESTING:
            raise QueryTooComplex(f"The query nests selections more than {MAX_NESTING} levels deep.")
        price = _Price()
        branches: dict[str, _Price] = {}
        for selection in selection_set.selections:
            if not included(selection, self.variables):
                continue
            if isinstance(selection, FieldNode):
                price.add(self.field(selection, parent, nesting))
                continue
            condition = _condition(selection, self.fragments)
            target = parent if condition is None else self.model.schema.get_type(condition)
            if target is None:
                continue  # unknown type or fragment: validation reports it
            if isinstance(selection, InlineFragmentNode):
                part = self.selection_set(selection.selection_set, target, nesting + 1)
            else:
                assert isinstance(selection, FragmentSpreadNode)
                part = self.fragment(selection.name.value, target, nesting)
            if applies_always(self.model, condition, parent):
                price.add(part)
            else:
                branches.setdefault(target.name, _Price()).add(part)
        if branches:
            price.fixed += max(branch.total() for branch in branches.values())
        return price

    def fragment(self, name: str, target: GraphQLNamedType, nesting: int) -> _Price:
        if name in self.memo:
            return self.memo[name]
        if name in self.in_progress:  # a cycle: validation refuses it; it adds nothing here
            return _Price()
        self.in_progress.add(name)
        price = self.selection_set(self.fragments[name].selection_set, target, nesting + 1)
        self.in_progress.discard(name)
        self.memo[name] = price
        return price

    def field(self, node: FieldNode, parent: GraphQLNamedType, nesting: int) -> _Price:
        price = self.model.price(parent.name, node.name.value)
        if price is None:
            return _Price()
        each = price.weight
        if node.selection_set is not None:
            returned = _returned_type(self.model, parent, node.name.value)
            if returned is not None:
                child = self.selection_set(node.selection_set, returned, nesting + 1)
                sized_fields = price.sizing.sized_fields if price.sizing else ()
                each += child.total(self.size(node, price) if sized_fields else None, sized_fields)
        if not price.returns_list:
            return _Price(fixed=each)
        if price.sizing is not None and not price.sizing.sized_fields:
            return _Price(fixed=each * self.size(node, price))
        # No size of its own: the enclosing field may size it (`sizedFields`), else the default.
        return _Price(per_item={node.name.value: each})

    def size(self, node: FieldNode, price: FieldPrice) -> float:
        assert price.sizing is not None
        given = [
            value for argument in node.arguments or ()
            if argument.name.value in price.sizing.slicing_arguments
            and (value := _size_value(argument.value, self.variables)) is not None
        ]
        if given:
            return float(max(given))
        if price.sizing.assumed_size is not None:
            return price.sizing.assumed_size
        return float(DEFAULT_LIST_SIZE)


@dataclass(frozen=True, slots=True)
class _Counted:
    """One response key to count on each object: its weight, and what to walk inside its values."""

    key: str
    weight: float
    returned: GraphQLNamedType | None
    children: tuple[SelectionSetNode, ...]


class _Counter:
    """Walks the result data with the selections that produced it.

    What to count on an object depends only on the selections and the type, not on the object, so
    it is worked out once per (selections, type) and reused for every item of a list.
    """

    def __init__(
        self, model: CostModel, document: DocumentNode, variables: dict[str, Any], plans: CountingPlans | None
    ) -> None:
        self.model = model
        self.document = document
        self.variables = variables
        self.plans: CountingPlans = {} if plans is None else plans

    def object(self, selection_sets: tuple[SelectionSetNode, ...], parent: GraphQLNamedType, data: Any) -> float:
        if not isinstance(data, Mapping):
            return 0.0
        total = 0.0
        for counted in self.plan(selection_sets, parent):
            value = data.get(counted.key)
            if value is None:
                continue
            for item in _flatten(value):
                if item is None:
                    continue
                total += counted.weight
                if counted.children and counted.returned is not None:
                    total += self.object(counted.children, counted.returned, item)
        return total

    def plan(self, selection_sets: tuple[SelectionSetNode, ...], parent: GraphQLNamedType) -> list[_Counted]:
        memo_key = (tuple(id(s) for s in selection_sets), parent.name)
        planned = self.plans.get(memo_key)
        if planned is None:
            fragments = fragments_of(self.document)
            planned = self.plans[memo_key] = [
                counted for key, fields in self.collect(selection_sets, parent, fragments).items()
                if (counted := self.counted(key, fields)) is not None
            ]
        return planned

    def counted(self, key: str, fields: list[tuple[GraphQLNamedType, FieldNode]]) -> _Counted | None:
        """None for keys that cost nothing whatever they hold (scalars of weight 0)."""
        prices = [(p, owner, node) for owner, node in fields if (p := self.model.price(owner.name, node.name.value))]
        if not prices:
            return None
        weight = max(p.weight for p, _, _ in prices)
        _, owner, first = prices[0]
        children = tuple(node.selection_set for _, _, node in prices if node.selection_set is not None)
        if weight == 0 and not children:
            return None
        return _Counted(key, weight, _returned_type(self.model, owner, first.name.value), children)

    def collect(
        self, selection_sets: tuple[SelectionSetNode, ...], parent: GraphQLNamedType,
        fragments: Mapping[str, FragmentDefinitionNode],
    ) -> dict[str, list[tuple[GraphQLNamedType, FieldNode]]]:
        """Fields by response key, through fragments (each fragment once), as graphql-core collects
        them. On an interface or union every type-specific fragment is taken: the result holds only
        the keys of the type that was returned, and a key shared by several is counted once."""
        fields: dict[str, list[tuple[GraphQLNamedType, FieldNode]]] = {}
        visited: set[str] = set()
        stack: list[tuple[SelectionSetNode, GraphQLNamedType]] = [(s, parent) for s in reversed(selection_sets)]
        while stack:
            selection_set, owner = stack.pop()
            for selection in reversed(selection_set.selections):
                if not included(selection, self.variables):
                    continue
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    fields.setdefault(key, []).append((owner, selection))
                    continue
                condition = _condition(selection, fragments)
                target = owner if condition is None else self.model.schema.get_type(condition)
                if target is None:
                    continue
                if isinstance(selection, InlineFragmentNode):
                    stack.append((selection.selection_set, target))
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in visited:
                    visited.add(selection.name.value)
                    stack.append((fragments[selection.name.value].selection_set, target))
        return fields


def _flatten(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return [value]
    items: list[Any] = []
    for item in value:
        items.extend(_flatten(item))
    return items


def _condition(selection: SelectionNode, fragments: Mapping[str, FragmentDefinitionNode]) -> str | None:
    if isinstance(selection, InlineFragmentNode):
        return selection.type_condition.name.value if selection.type_condition else None
    if isinstance(selection, FragmentSpreadNode):
        fragment = fragments.get(selection.name.value)
        return fragment.type_condition.name.value if fragment is not None else "\0unknown"
    return None


def applies_always(model: CostModel, condition: str | None, parent: GraphQLNamedType) -> bool:
    """A fragment applies to every value of `parent` when its type is `parent` or a supertype of it."""
    if condition is None or condition == parent.name:
        return True
    if is_abstract_type(parent):
        return False
    candidate = model.schema.get_type(condition)
    if candidate is None or not is_abstract_type(candidate):
        return False
    return isinstance(parent, GraphQLObjectType) and model.schema.is_sub_type(candidate, parent)


def _returned_type(model: CostModel, parent: GraphQLNamedType, field_name: str) -> GraphQLNamedType | None:
    if field_name in ("__schema", "__type"):
        return model.schema.get_type("__Schema" if field_name == "__schema" else "__Type")
    if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) or field_name not in parent.fields:
        return None
    named: GraphQLNamedType = get_named_type(parent.fields[field_name].type)
    return named


def included(selection: SelectionNode, variables: dict[str, Any]) -> bool:
    """`@skip(if:)` and `@include(if:)`, as graphql-core applies them."""
    for directive in selection.directives or ():
        if directive.name.value in ("skip", "include"):
            condition = _if_argument(directive, variables)
            if directive.name.value == "skip" and condition is True:
                return False
            if directive.name.value == "include" and condition is False:
                return False
    return True


def _if_argument(directive: DirectiveNode, variables: dict[str, Any]) -> bool | None:
    for argument in directive.arguments or ():
        if argument.name.value == "if":
            if isinstance(argument.value, BooleanValueNode):
                return argument.value.value
            if isinstance(argument.value, VariableNode):
                value = variables.get(argument.value.name.value)
                return value if isinstance(value, bool) else None
    return None


def _size_value(node: ValueNode, variables: dict[str, Any]) -> int | None:
    """An Int slicing argument's value (never below 0), or a list argument's length."""
    if isinstance(node, VariableNode):
        value = variables.get(node.name.value)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return max(value, 0)
        if isinstance(value, list):
            return len(value)
        return None
    if isinstance(node, IntValueNode):
        try:
            return max(int(node.value), 0)
        except ValueError:
            return None
    if isinstance(node, ListValueNode):
        return len(node.values)
    return None
