"""Look-ahead: which fields a list field's items will be asked for, read from the selection set.

`node_fields(info)` names the fields selected on a connection's items (`edges { node { … } }` and
`nodes { … }`), through fragments and inline fragments. `@skip`/`@include` are not evaluated: a
field skipped at run time only makes a prefetch load one batch that is not read (never one per item).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.types import Info

from auth import scopes
from resolvers.context import Context
from resolvers.prefetch import TaskRelations

_ITEM_PATHS = (("edges", "node"), ("nodes",))


def node_fields(info: Info[Context, Any]) -> frozenset[str]:
    raw = info._raw_info
    fragments = raw.fragments
    names: set[str] = set()
    for path in _ITEM_PATHS:
        selections: list[FieldNode] = list(raw.field_nodes)
        for step in path:
            selections = [child for node in selections for child in _fields(node.selection_set, fragments)
                          if child.name.value == step]
        for node in selections:
            names.update(child.name.value for child in _fields(node.selection_set, fragments))
    return frozenset(names)


def task_relations(info: Info[Context, Any]) -> TaskRelations:
    """What a task list's items will read, for `resolvers.prefetch`."""
    fields = node_fields(info)
    viewer = info.context.viewer
    return TaskRelations(
        owner="owner" in fields,
        assignee="assignee" in fields,
        # Without the scope `Task.document` refuses before loading anything: nothing to prefetch.
        document="document" in fields and viewer is not None and viewer.has_scope(scopes.DOCUMENTS_READ),
        labels="labels" in fields,
    )


def _fields(selection_set: SelectionSetNode | None, fragments: dict[str, Any]) -> Iterable[FieldNode]:
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments)
