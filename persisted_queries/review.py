"""What a reviewer wants to know about an operation before trusting it: size, depth, rough cost.

The cost here is an interim static estimate: every field costs 1, and a paginated field (one with
`first`/`last` arguments) multiplies what it selects by its page size: the literal, else the
variable's default, else `max_page_size` (the worst a client may ask for), and
`default_page_size` when the argument is left out. It stands in until the static cost analysis of
`limits/` (the `@cost`/`@listSize` model in DESIGN.md) is available to call instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

PAGE_ARGUMENTS = ("first", "last")


@dataclass(frozen=True)
class OperationSummary:
    name: str | None
    type: str
    fields: int
    depth: int
    cost: int


def summarize(
    schema: GraphQLSchema, document: DocumentNode, *, default_page_size: int = 20, max_page_size: int = 100
) -> OperationSummary:
    """Summary of the document's first operation (manifest documents hold one)."""
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    walker = _Walker(schema, document, operation, default_page_size, max_page_size)
    root = schema.get_root_type(operation.operation)
    fields, depth, cost = walker.walk(operation.selection_set, root, frozenset())
    name = operation.name.value if operation.name else None
    return OperationSummary(name, operation.operation.value, fields, depth, cost)


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
        default_page_size: int, max_page_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.variable_defaults = {
            v.variable.name.value: int(v.default_value.value)
            for v in operation.variable_definitions or ()
            if isinstance(v.default_value, IntValueNode)
        }
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size

    def walk(
        self, selections: SelectionSetNode | None, parent: GraphQLNamedType | None, seen: frozenset[str]
    ) -> tuple[int, int, int]:
        """(fields, depth, cost) of a selection set; `seen` guards against fragment cycles."""
        fields = depth = cost = 0
        for selection in selections.selections if selections else ():
            condition: str | None
            if isinstance(selection, FieldNode):
                child_type = self._field_type(parent, selection.name.value)
                sub_fields, sub_depth, sub_cost = self.walk(selection.selection_set, child_type, seen)
                fields += 1 + sub_fields
                depth = max(depth, 1 + sub_depth)
                cost += 1 + self._page_size(parent, selection) * sub_cost
                continue
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                inner, condition, seen = fragment.selection_set, fragment.type_condition.name.value, seen | {name}
            else:
                assert isinstance(selection, InlineFragmentNode)
                inner = selection.selection_set
                condition = selection.type_condition.name.value if selection.type_condition else None
            narrowed = self.schema.get_type(condition) if condition else parent
            sub_fields, sub_depth, sub_cost = self.walk(inner, narrowed, seen)
            fields, depth, cost = fields + sub_fields, max(depth, sub_depth), cost + sub_cost
        return fields, depth, cost

    def _field_type(self, parent: GraphQLNamedType | None, name: str) -> GraphQLNamedType | None:
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) and name in parent.fields:
            named: GraphQLNamedType = get_named_type(parent.fields[name].type)
            return named
        return None

    def _page_size(self, parent: GraphQLNamedType | None, node: FieldNode) -> int:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 1
        definition = parent.fields.get(node.name.value)
        if definition is None or not any(arg in definition.args for arg in PAGE_ARGUMENTS):
            return 1
        given = {a.name.value: a.value for a in node.arguments or () if a.name.value in PAGE_ARGUMENTS}
        if not given:
            return self.default_page_size
        sizes = []
        for value in given.values():
            if isinstance(value, IntValueNode):
                sizes.append(int(value.value))
            elif isinstance(value, VariableNode):
                sizes.append(self.variable_defaults.get(value.name.value, self.max_page_size))
            else:
                sizes.append(self.max_page_size)
        return max(1, min(max(sizes), self.max_page_size))
