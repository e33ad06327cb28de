"""Would the current schema break any trusted document? (`tandem pq check`, run by `make test`.)

Two checks per operation:

1. Validation against the current schema catches a removed field, a removed or renamed argument, a
   new required argument, an argument whose type no longer fits, a removed enum value written in
   the document.
2. What validation cannot see is compared with `schema.lock.graphql`, the schema the manifests were
   last accepted against (written by `tandem pq add` and `tandem pq check --write-lock`): a field
   the operation reads whose type changed (`String!` to `Int!`, or to nullable: generated client
   code breaks), an enum it reads or sends that lost a value, an input object it sends through a
   variable that lost a field or gained a required one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    is_list_type,
    is_named_type,
    is_non_null_type,
    is_required_input_field,
    type_from_ast,
    validate,
    visit,
)
from graphql import build_schema as schema_from_sdl

from persisted_queries.manifest import TrustedOperation
from persisted_queries.trusted import LOCK_FILE, TrustedDocuments


@dataclass(frozen=True)
class Breakage:
    operation: TrustedOperation
    message: str

    def __str__(self) -> str:
        return f"{self.operation.manifest}: {self.operation.label}: {self.message}"


@dataclass
class CheckReport:
    operations: list[TrustedOperation] = field(default_factory=list)
    manifest_errors: dict[str, list[str]] = field(default_factory=dict)
    breakages: list[Breakage] = field(default_factory=list)
    locked: bool = False

    @property
    def ok(self) -> bool:
        return not self.manifest_errors and not self.breakages


def check_directory(directory: Path, schema: GraphQLSchema) -> CheckReport:
    """Load every manifest in `directory` and check each operation against `schema` (and the lock)."""
    trusted = TrustedDocuments(directory)
    trusted.load()
    report = CheckReport(trusted.operations, dict(trusted.errors))
    locked = None
    lock_path = directory / LOCK_FILE
    if lock_path.exists():
        try:
            locked = schema_from_sdl(lock_path.read_text())
        except (GraphQLError, TypeError) as exc:
            report.manifest_errors[LOCK_FILE] = [f"is not a valid schema ({exc})"]
        report.locked = locked is not None
    report.breakages = check_operations(report.operations, schema, locked)
    return report


def write_lock(directory: Path, sdl: str) -> None:
    path = directory / LOCK_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(sdl)
    temporary.replace(path)


def check_operations(
    operations: list[TrustedOperation], schema: GraphQLSchema, locked: GraphQLSchema | None
) -> list[Breakage]:
    breakages = []
    for operation in operations:
        messages = [error.message for error in validate(schema, operation.document)]
        if locked is not None:
            messages += [m for m in _changes_since_lock(operation, schema, locked) if m not in messages]
        breakages += [Breakage(operation, message) for message in messages]
    return breakages


def _changes_since_lock(operation: TrustedOperation, schema: GraphQLSchema, locked: GraphQLSchema) -> list[str]:
    found: list[str] = []
    type_info = TypeInfo(locked)

    class Reads(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            parent, old = type_info.get_parent_type(), type_info.get_field_def()
            if parent is None or old is None:
                return
            new_parent = schema.get_type(parent.name)
            if not isinstance(new_parent, GraphQLObjectType | GraphQLInterfaceType):
                return
            new = new_parent.fields.get(node.name.value)
            if new is None:
                return  # removed: validation already says so
            coordinate = f"{parent.name}.{node.name.value}"
            if not _safe_output_change(old.type, new.type):
                found.append(f"{coordinate} changed type from {old.type} to {new.type}.")
            found.extend(_enum_losses(get_named_type(old.type), schema, f"returned by {coordinate}"))

    visit(operation.document, TypeInfoVisitor(type_info, Reads()))
    for definition in operation.document.definitions:
        for variable in getattr(definition, "variable_definitions", None) or ():
            old_type = type_from_ast(locked, variable.type)
            if old_type is not None:
                where = f"variable ${variable.variable.name.value}"
                found.extend(_input_losses(get_named_type(old_type), schema, where, set()))
    return list(dict.fromkeys(found))


def _safe_output_change(old: GraphQLType, new: GraphQLType) -> bool:
    """A client reading `old` can read `new`: same shape, or nullable made non-null."""
    if is_non_null_type(old):
        return is_non_null_type(new) and _safe_output_change(old.of_type, new.of_type)
    if is_non_null_type(new):
        return _safe_output_change(old, new.of_type)
    if is_list_type(old):
        return is_list_type(new) and _safe_output_change(old.of_type, new.of_type)
    return is_named_type(new) and getattr(old, "name", None) == getattr(new, "name", None)


def _safe_input_change(old: GraphQLType, new: GraphQLType) -> bool:
    """A value valid for `old` is valid for `new`: same shape, or non-null relaxed to nullable."""
    if is_non_null_type(new):
        return is_non_null_type(old) and _safe_input_change(old.of_type, new.of_type)
    if is_non_null_type(old):
        return _safe_input_change(old.of_type, new)
    if is_list_type(old):
        return is_list_type(new) and _safe_input_change(old.of_type, new.of_type)
    return is_named_type(new) and getattr(old, "name", None) == getattr(new, "name", None)


def _enum_losses(old: GraphQLType, schema: GraphQLSchema, where: str) -> list[str]:
    new = schema.get_type(getattr(old, "name", ""))
    if not isinstance(old, GraphQLEnumType) or not isinstance(new, GraphQLEnumType):
        return []
    return [f"{old.name}.{value} was removed ({where})." for value in old.values if value not in new.values]


def _input_losses(old: GraphQLType, schema: GraphQLSchema, where: str, seen: set[str]) -> list[str]:
    """What a value the client builds for input type `old` may now fail on."""
    if not isinstance(old, GraphQLEnumType | GraphQLInputObjectType) or old.name in seen:
        return []
    seen.add(old.name)
    if isinstance(old, GraphQLEnumType):
        return _enum_losses(old, schema, f"{where} sends it")
    new = schema.get_type(old.name)
    if not isinstance(new, GraphQLInputObjectType):
        return []  # a changed kind makes the variable's type unknown or wrong: validation reports it
    found = []
    for name, old_field in old.fields.items():
        new_field = new.fields.get(name)
        if new_field is None:
            found.append(f"{old.name}.{name} was removed ({where} may send it).")
        elif not _safe_input_change(old_field.type, new_field.type):
            found.append(f"{old.name}.{name} changed type from {old_field.type} to {new_field.type} ({where}).")
        else:
            found.extend(_input_losses(get_named_type(old_field.type), schema, where, seen))
    for name, new_field in new.fields.items():
        if name not in old.fields and is_required_input_field(new_field):
            found.append(f"{old.name}.{name} is a new required field ({where} does not send it).")
    return found
