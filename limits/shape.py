"""The shape of the operation that will run: depth, aliases, directives and root fields.

Measured on the parsed document before graphql-core validates it, because some validation rules
cost far more than the document's size (overlapping-field checks are quadratic in the fields of a
selection set) and a limit that runs after them protects nothing. So this pass must itself be safe
on any parsed document, valid or not: it is iterative (no recursion, however deep the nesting),
reads each definition once, and measures each fragment once however often it is spread. Fragment
cycles and spreads of unknown fragments add nothing here; validation reports them afterwards.

- **depth**: fields nested in fields, through fragments (`{ viewer { name } }` is 2). What is under
  `__schema` and `__type` does not count: the standard introspection query that IDEs and codegen send
  nests `ofType` nine levels deep, its size is bounded by the schema, and the cost analysis prices it;
  who may introspect at all is `limits/introspection.py`'s rule.
- **aliases**, **directives**: as written in the operation and in each fragment it reaches
  (a fragment spread twice is written once, and graphql-core executes it once).
- **root fields**: distinct response keys at the top of the operation, through fragments.
- **repeated directives**: names written twice or more on one node, anywhere the operation reaches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True, slots=True)
class Shape:
    depth: int
    aliases: int
    directives: int
    root_fields: int
    # Directive names written more than once on one node (`@skip(if: $a) @skip(if: $b)`): validation
    # would report each repetition, so the limits refuse those that are not repeatable with one error.
    repeated_directives: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Local:
    """What one definition holds by itself, without following its fragment spreads."""

    depth: int = 0
    aliases: int = 0
    directives: int = 0
    root_keys: set[str] = field(default_factory=set)
    repeated_directives: set[str] = field(default_factory=set)
    # (fragment name, fields enclosing the spread within this definition)
    spreads: list[tuple[str, int]] = field(default_factory=list)
    # fragments spread under an introspection field: their aliases and directives count, their depth not
    uncounted_spreads: list[str] = field(default_factory=list)


# Introspection's entry points; what is under them adds no depth.
_INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


def operations(document: DocumentNode, operation_name: str | None) -> list[OperationDefinitionNode]:
    """The operation graphql-core will run; every operation when that is ambiguous (it then refuses)."""
    found = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return found
    return [d for d in found if d.name is not None and d.name.value == operation_name]


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    """Fragments by name; for duplicate names (invalid, reported by validation) the first one."""
    found: dict[str, FragmentDefinitionNode] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            found.setdefault(definition.name.value, definition)
    return found


def measure(document: DocumentNode, operation_name: str | None = None) -> Shape:
    """The largest depth, alias, directive and root-field counts among the operations that may run."""
    measured = _Document(document)
    shapes = [measured.shape(op) for op in operations(document, operation_name)]
    if not shapes:
        return Shape(0, 0, 0, 0)
    return Shape(
        depth=max(s.depth for s in shapes),
        aliases=max(s.aliases for s in shapes),
        directives=max(s.directives for s in shapes),
        root_fields=max(s.root_fields for s in shapes),
        repeated_directives=frozenset().union(*(s.repeated_directives for s in shapes)),
    )


def _read(definition: ExecutableDefinitionNode) -> _Local:
    """One iterative walk over a definition's own nodes."""
    out = _Local(directives=len(definition.directives or ()))
    _note_repeats(definition.directives, out.repeated_directives)
    # (selection set, fields enclosing it, whether it is under an introspection field)
    stack: list[tuple[SelectionSetNode, int, bool]] = [(definition.selection_set, 0, False)]
    while stack:
        selection_set, enclosing, uncounted = stack.pop()
        for selection in selection_set.selections:
            out.directives += len(selection.directives or ())
            if selection.directives and len(selection.directives) > 1:
                _note_repeats(selection.directives, out.repeated_directives)
            if isinstance(selection, FieldNode):
                depth = enclosing if uncounted else enclosing + 1
                out.depth = max(out.depth, depth)
                if selection.alias is not None:
                    out.aliases += 1
                if enclosing == 0 and not uncounted:
                    out.root_keys.add((selection.alias or selection.name).value)
                if selection.selection_set is not None:
                    below = uncounted or selection.name.value in _INTROSPECTION_ROOTS
                    stack.append((selection.selection_set, depth, below))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, enclosing, uncounted))
            elif isinstance(selection, FragmentSpreadNode):
                if uncounted:
                    out.uncounted_spreads.append(selection.name.value)
                else:
                    out.spreads.append((selection.name.value, enclosing))
    return out


def _note_repeats(directives: Sequence[DirectiveNode] | None, into: set[str]) -> None:
    seen: set[str] = set()
    for directive in directives or ():
        name = directive.name.value
        if name in seen:
            into.add(name)
        seen.add(name)


@dataclass(slots=True)
class _Frame:
    name: str
    spreads: Iterator[tuple[str, int]]
    depth: int
    entered_at: int = 0  # fields enclosing the spread being measured below this frame


class _Document:
    """Per-document memo: each fragment is read once and its depth computed once."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = fragments_of(document)
        self.locals: dict[str, _Local] = {}
        self.depths: dict[str, int] = {}

    def local(self, name: str) -> _Local | None:
        if name not in self.locals and name in self.fragments:
            self.locals[name] = _read(self.fragments[name])
        return self.locals.get(name)

    def shape(self, operation: OperationDefinitionNode) -> Shape:
        own = _read(operation)
        reached = self.reachable(own.spreads, only_top=False, uncounted=own.uncounted_spreads)
        depth = max([own.depth, *(before + self.depth(name) for name, before in own.spreads)])
        root_keys = set(own.root_keys)
        for found in self.reachable(own.spreads, only_top=True):
            root_keys |= found.root_keys
        return Shape(
            depth=depth,
            aliases=own.aliases + sum(found.aliases for found in reached),
            directives=own.directives + sum(found.directives for found in reached),
            root_fields=len(root_keys),
            repeated_directives=frozenset(own.repeated_directives).union(
                *(found.repeated_directives for found in reached)),
        )

    def reachable(
        self, spreads: list[tuple[str, int]], *, only_top: bool, uncounted: list[str] | None = None
    ) -> list[_Local]:
        """Known fragments reached through spreads, each once (`only_top`: spreads outside any field;
        otherwise also those under introspection fields, `uncounted`)."""
        seen: set[str] = set()
        found: list[_Local] = []
        pending = [name for name, before in spreads if before == 0 or not only_top]
        if not only_top:
            pending.extend(uncounted or ())
        while pending:
            name = pending.pop()
            if name in seen or (fragment := self.local(name)) is None:
                continue
            seen.add(name)
            found.append(fragment)
            pending.extend(child for child, before in fragment.spreads if before == 0 or not only_top)
            if not only_top:
                pending.extend(fragment.uncounted_spreads)
        return found

    def depth(self, start: str) -> int:
        """A fragment's depth through its spreads, by an iterative depth-first walk.

        A fragment met again while it is still being measured closes a cycle and counts as 0 there.
        """
        stack: list[_Frame] = []
        in_progress: set[str] = set()

        def enter(name: str) -> bool:
            fragment = self.local(name)
            if fragment is None or name in self.depths or name in in_progress:
                return False
            in_progress.add(name)
            stack.append(_Frame(name, iter(fragment.spreads), fragment.depth))
            return True

        enter(start)
        while stack:
            frame = stack[-1]
            for child, before in frame.spreads:
                if enter(child):
                    frame.entered_at = before
                    break
                frame.depth = max(frame.depth, before + self.depths.get(child, 0))
            else:
                stack.pop()
                in_progress.discard(frame.name)
                self.depths[frame.name] = frame.depth
                if stack:
                    parent = stack[-1]
                    parent.depth = max(parent.depth, parent.entered_at + frame.depth)
        return self.depths.get(start, 0)
