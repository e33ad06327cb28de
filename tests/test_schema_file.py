"""`schema.graphql` at the repo root is what clients (codegen, persisted-query checks) read: keep it exact."""

from pathlib import Path

from schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    expected = build_schema().as_str() + "\n"
    assert SCHEMA_FILE.read_text() == expected, "schema.graphql is stale: run `make schema` and commit it."


def test_schema_has_the_names_clients_rely_on() -> None:
    sdl = SCHEMA_FILE.read_text()
    for name in ("interface Node", "type PageInfo", "type TaskConnection", "userErrors: [UserError!]!",
                 "nodes(ids: [ID!]!): [Node]!", "enum CollaboratorRole"):
        assert name in sdl, name
