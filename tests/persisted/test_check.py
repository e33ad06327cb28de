"""Schema-change safety: which changes break which trusted operation, by name.

Each case is an old schema (the lock), a new one and an operation, built from SDL, so every kind of
breaking change is tried on its own; the CLI tests run the same check on the real schema.
"""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, parse

from persisted_queries.check import check_directory, check_operations, write_lock
from persisted_queries.manifest import TrustedOperation
from persisted_queries.trusted import LOCK_FILE
from schema import build_schema as tandem_schema
from tests.persisted.conftest import SHIPPED_MANIFEST, sha256

OLD = """
type Query { task(id: ID!): Task  tasks(status: Status, filter: Filter): [Task!]! }
type Task { id: ID!  title: String!  status: Status!  due: String  tags: [String!]! }
enum Status { TODO DONE }
input Filter { label: String  status: Status }
"""


def operation(body: str) -> TrustedOperation:
    return TrustedOperation(sha256(body), "Op", "query", body, sha256(body), "app.json", parse(body))


def breakages(new_sdl: str, body: str, old_sdl: str | None = OLD) -> list[str]:
    locked = build_schema(old_sdl) if old_sdl else None
    return [b.message for b in check_operations([operation(body), ], build_schema(new_sdl), locked)]


READ_TASK = "query Op($id: ID!) { task(id: $id) { id title status due tags } }"


def test_no_change_breaks_nothing() -> None:
    assert breakages(OLD, READ_TASK) == []


def test_removed_field() -> None:
    assert breakages(OLD.replace("title: String!", ""), READ_TASK) == ["Cannot query field 'title' on type 'Task'."]


def test_removed_field_is_caught_without_a_lock() -> None:
    assert breakages(OLD.replace("title: String!", ""), READ_TASK, old_sdl=None) == [
        "Cannot query field 'title' on type 'Task'."]


def test_changed_type() -> None:
    assert breakages(OLD.replace("title: String!", "title: Int!"), READ_TASK) == [
        "Task.title changed type from String! to Int!."]


def test_changed_type_needs_the_lock() -> None:
    # Validation alone cannot see it: a scalar is still a scalar.
    assert breakages(OLD.replace("title: String!", "title: Int!"), READ_TASK, old_sdl=None) == []


def test_non_null_made_nullable_breaks_readers() -> None:
    assert breakages(OLD.replace("title: String!", "title: String"), READ_TASK) == [
        "Task.title changed type from String! to String."]


def test_list_made_single_breaks_readers() -> None:
    assert breakages(OLD.replace("tags: [String!]!", "tags: String!"), READ_TASK) == [
        "Task.tags changed type from [String!]! to String!."]


def test_nullable_made_non_null_is_safe_for_readers() -> None:
    assert breakages(OLD.replace("due: String", "due: String!"), READ_TASK) == []


def test_new_required_argument() -> None:
    new = OLD.replace("task(id: ID!): Task", "task(id: ID!, workspace: ID!): Task")
    [message] = breakages(new, READ_TASK)  # graphql-core words it differently across versions
    assert "workspace" in message and "is required, but it was not provided" in message


def test_new_optional_argument_is_safe() -> None:
    assert breakages(OLD.replace("task(id: ID!): Task", "task(id: ID!, workspace: ID): Task"), READ_TASK) == []


def test_changed_argument_type() -> None:
    new = OLD.replace("task(id: ID!): Task", "task(id: Int!): Task")
    assert breakages(new, READ_TASK) == [
        "Variable '$id' of type 'ID!' used in position expecting type 'Int!'."]


def test_enum_value_removed_from_an_output() -> None:
    assert breakages(OLD.replace("enum Status { TODO DONE }", "enum Status { TODO }"), READ_TASK) == [
        "Status.DONE was removed (returned by Task.status)."]


def test_enum_value_removed_from_a_variable() -> None:
    body = "query Op($status: Status) { tasks(status: $status) { id } }"
    assert breakages(OLD.replace("enum Status { TODO DONE }", "enum Status { TODO }"), body) == [
        "Status.DONE was removed (variable $status sends it)."]


def test_enum_value_removed_from_a_literal() -> None:
    body = "query Op { tasks(status: DONE) { id } }"
    assert breakages(OLD.replace("enum Status { TODO DONE }", "enum Status { TODO }"), body, old_sdl=None) == [
        "Value 'DONE' does not exist in 'Status' enum."]


def test_input_object_changes_seen_through_a_variable() -> None:
    body = "query Op($filter: Filter) { tasks(filter: $filter) { id } }"
    new = OLD.replace("input Filter { label: String  status: Status }",
                      "input Filter { status: [Status]  team: ID! }")
    assert breakages(new, body) == [
        "Filter.label was removed (variable $filter may send it).",
        "Filter.status changed type from Status to [Status] (variable $filter).",
        "Filter.team is a new required field (variable $filter does not send it).",
    ]


def test_input_object_gaining_an_optional_field_is_safe() -> None:
    body = "query Op($filter: Filter) { tasks(filter: $filter) { id } }"
    new = OLD.replace("input Filter { label: String  status: Status }",
                      "input Filter { label: String  status: Status  team: ID  strict: Boolean! = false }")
    assert breakages(new, body) == []


def test_fields_through_fragments_are_checked() -> None:
    body = "query Op { tasks { ...Row } } fragment Row on Task { ... on Task { title } }"
    assert breakages(OLD.replace("title: String!", "title: Int!"), body) == [
        "Task.title changed type from String! to Int!."]


def test_breakage_names_manifest_and_operation() -> None:
    [breakage] = check_operations([operation(READ_TASK)], build_schema(OLD.replace("title: String!", "")), None)
    assert str(breakage).startswith(f"app.json: Op (sha256:{sha256(READ_TASK)[:12]}…): Cannot query field 'title'")


# --- on the real schema ---------------------------------------------------------------------------


def test_the_shipped_manifests_pass_against_the_shipped_lock() -> None:
    report = check_directory(SHIPPED_MANIFEST.parent, tandem_schema()._schema)
    assert report.ok, [str(b) for b in report.breakages] + [str(e) for e in report.manifest_errors.items()]
    assert report.locked
    assert {op.name for op in report.operations} >= {"ViewerDashboard", "TaskList", "CreateTask"}


def test_the_shipped_lock_is_a_schema_the_code_can_still_serve(tmp_path: Path) -> None:
    # The lock may trail the schema (it moves when a manifest is added), but it must parse.
    assert build_schema((SHIPPED_MANIFEST.parent / LOCK_FILE).read_text()).query_type is not None


def test_a_lock_that_is_not_a_schema_is_an_error(tmp_path: Path) -> None:
    write_lock(tmp_path, "type Query {")
    report = check_directory(tmp_path, tandem_schema()._schema)
    assert not report.ok
    assert list(report.manifest_errors) == [LOCK_FILE]


def test_a_changed_field_type_under_shipped_operations_is_caught(tmp_path: Path) -> None:
    # The change the other way round: the lock says `title` was `Int!` (on Task and CreateTaskInput),
    # the code has `String!`.
    (tmp_path / SHIPPED_MANIFEST.name).write_bytes(SHIPPED_MANIFEST.read_bytes())
    old_title = "  title: String!\n  description: String!"
    sdl = tandem_schema().as_str().replace(old_title, "  title: Int!\n  description: String!")
    write_lock(tmp_path, sdl)
    report = check_directory(tmp_path, tandem_schema()._schema)
    assert [str(b).split(" (sha256")[0] + ": " + b.message for b in report.breakages] == [
        "mobile-app.json: ViewerDashboard: Task.title changed type from Int! to String!.",
        "mobile-app.json: TaskList: Task.title changed type from Int! to String!.",
        "mobile-app.json: TaskDetail: Task.title changed type from Int! to String!.",
        "mobile-app.json: CreateTask: Task.title changed type from Int! to String!.",
        "mobile-app.json: CreateTask: CreateTaskInput.title changed type from Int! to String! (variable $input).",
    ]
