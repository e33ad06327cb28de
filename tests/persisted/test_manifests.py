"""Manifests: both formats load; a bad one is refused whole with a clear message, logged, and the
server starts with the good ones; manifests reload when their files change."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from persisted_queries.manifest import ManifestError, load_manifest
from persisted_queries.trusted import TrustedDocuments
from tests.conftest import codes, serve, without_cost
from tests.persisted.conftest import OPERATIONS, SHIPPED_MANIFEST, apollo_manifest, metric, sha256

TYPENAME = "query Typename { __typename }"
OTHER = "query Other { viewer { id } }"


def write(directory: Path, name: str, content: Any) -> Path:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return caught.value.problems


# --- formats --------------------------------------------------------------------------------------


def test_the_shipped_manifest_loads() -> None:
    operations = load_manifest(SHIPPED_MANIFEST)
    assert [op.name for op in operations] == list(OPERATIONS)
    assert {op.type for op in operations} == {"query", "mutation"}
    assert all(op.sha256 == op.id for op in operations)


def test_codegen_map_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "web.json", {sha256(TYPENAME): TYPENAME, sha256(OTHER): OTHER})
    operations = load_manifest(path)
    assert [(op.name, op.type, op.manifest) for op in operations] == [
        ("Typename", "query", "web.json"), ("Other", "query", "web.json")]


def test_custom_ids_are_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "ios.json", apollo_manifest(TYPENAME, ids=["ios-Typename-v3"]))
    [operation] = load_manifest(path)
    assert operation.id == "ios-Typename-v3"
    assert operation.sha256 == sha256(TYPENAME)


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "is not valid JSON"),
    ("[]", "must be a JSON object: Apollo's manifest or a {hash: document} map"),
    ({"format": "relay", "operations": []}, "`format` must be 'apollo-persisted-query-manifest'"),
    ({"format": "apollo-persisted-query-manifest", "version": 2, "operations": []},
     "`version` 2 is not supported (only 1)"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": {}}, "`operations` must be a list"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"body": TYPENAME}]},
     "operations[0] must be an object with a string `id`"),
    (apollo_manifest(TYPENAME, ids=[sha256(OTHER)]),
     f"operation {sha256(OTHER)!r}: the id is not the SHA-256 of the body (that is {sha256(TYPENAME)})"),
    ({sha256("{ viewer { id "): "{ viewer { id "},
     f"operation {sha256('{ viewer { id ')!r}: the body is not valid GraphQL: Syntax Error: Expected Name, found <EOF>. "
     "(line 1, column 15)"),
    ({"sdl": "type Query { x: Int }"}, "operation 'sdl': the body may hold only operations and fragments"),
    ({"frag": "fragment F on Query { __typename }"}, "operation 'frag': the body has no operation"),
    ({"blank": "  "}, "operation 'blank': the body must be a non-empty string"),
    ({"number": 42}, "operation 'number': the body must be a non-empty string"),
    ({"has space": TYPENAME}, "operation 'has space': the id must be a SHA-256 (hex) or use only letters, "
                              "digits and - . _ ~"),
    ({sha256(TYPENAME).upper(): TYPENAME}, f"operation {sha256(TYPENAME).upper()!r}: a SHA-256 id must be lower case"),
    ({"format": "apollo-persisted-query-manifest", "version": 1,
      "operations": [{"id": "a", "type": "mutation", "body": TYPENAME}]},
     "operation 'a': `type` is 'mutation' but the body is a query"),
    ({"format": "apollo-persisted-query-manifest", "version": 1,
      "operations": [{"id": "a", "body": TYPENAME}, {"id": "a", "body": OTHER}]},
     "operation 'a' appears twice with different bodies"),
])
def test_malformed_manifest_says_what_is_wrong(tmp_path: Path, content: Any, problem: str) -> None:
    problems = problems_of(write(tmp_path, "bad.json", content))
    assert any(p.startswith(problem) for p in problems), problems


def test_every_problem_of_a_file_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", {"one": "{", "two": "type Query { x: Int }", sha256(TYPENAME): TYPENAME})
    assert len(problems_of(path)) == 2


# --- at start: bad manifests are left out, the server runs --------------------------------------


async def test_server_starts_with_the_valid_manifests(
    settings: Settings, manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(manifests, "broken.json", "{not json")
    write(manifests, "web.json", {sha256(TYPENAME): TYPENAME})
    async with serve(settings) as http:  # the app's own log handler writes to stderr
        shipped = await http.post("/graphql", json={"documentId": f"sha256:{OPERATIONS['ViewerDashboard']['id']}"})
        assert without_cost(shipped.json()) == {"data": {"viewer": None}}
        web = await http.post("/graphql", json={"documentId": sha256(TYPENAME)})
        assert without_cost(web.json()) == {"data": {"__typename": "Query"}}
        assert await metric(http, "tandem_persisted_query_manifests_failed") == 1
        assert await metric(http, "tandem_trusted_documents") == len(OPERATIONS) + 1
    logged = capsys.readouterr().err
    assert "ERROR tandem.persisted_queries: persisted query manifest" in logged
    assert "broken.json not loaded: is not valid JSON" in logged


async def test_the_same_id_with_another_body_in_a_second_file_is_refused(
    settings: Settings, manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dashboard = OPERATIONS["ViewerDashboard"]
    write(manifests, "z-evil.json", apollo_manifest(TYPENAME, ids=["ViewerDashboard-custom"]))
    write(manifests, "a-first.json", apollo_manifest(OTHER, ids=["ViewerDashboard-custom"]))
    async with serve(settings) as http:
        first = await http.post("/graphql", json={"documentId": "ViewerDashboard-custom"})
        assert without_cost(first.json()) == {"data": {"viewer": None}}  # a-first.json's body, loaded first
        shipped = await http.post("/graphql", json={"documentId": dashboard["id"]})
        assert without_cost(shipped.json()) == {"data": {"viewer": None}}
    assert "z-evil.json: id ViewerDashboard-custom conflicts with a-first.json" in capsys.readouterr().err


async def test_a_missing_manifest_directory_is_an_empty_set(settings: Settings, tmp_path: Path) -> None:
    async with serve(settings.model_copy(update={"persisted_queries_dir": tmp_path / "nowhere"})) as http:
        response = await http.post("/graphql", json={"documentId": OPERATIONS["TaskList"]["id"]})
        assert codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
        typename = await http.post("/graphql", json={"query": "{ __typename }"})
        assert without_cost(typename.json()) == {"data": {"__typename": "Query"}}


# --- reloading ------------------------------------------------------------------------------------


def touch_later(path: Path) -> None:
    """Move the mtime on, so a rewrite within the same clock tick still looks changed."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_reload_picks_up_added_changed_and_removed_manifests(manifests: Path) -> None:
    trusted = TrustedDocuments(manifests)
    trusted.load()
    assert trusted.reload_if_changed() is None  # nothing changed

    added = write(manifests, "web.json", {sha256(TYPENAME): TYPENAME})
    report = trusted.reload_if_changed()
    assert report is not None and report.operations == len(OPERATIONS) + 1
    assert trusted.by_hash(sha256(TYPENAME)) is not None

    write(added, "", "{half a file")
    touch_later(added)
    report = trusted.reload_if_changed()
    assert report is not None and "web.json" in report.errors
    assert trusted.by_hash(sha256(TYPENAME)) is not None  # the last good version stays

    added.unlink()
    report = trusted.reload_if_changed()
    assert report is not None and report.operations == len(OPERATIONS) and not report.errors
    assert trusted.by_hash(sha256(TYPENAME)) is None


async def test_running_server_reloads_manifests(settings: Settings, manifests: Path) -> None:
    async with serve(settings.model_copy(update={"persisted_queries_reload_seconds": 0.05})) as http:
        before = await http.post("/graphql", json={"documentId": sha256(TYPENAME)})
        assert codes(before.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
        write(manifests, "web.json", {sha256(TYPENAME): TYPENAME})
        assert await eventually_ok(http, {"documentId": sha256(TYPENAME)})


async def eventually_ok(http: httpx.AsyncClient, body: dict[str, Any], within: float = 10.0) -> bool:
    """Poll until the request succeeds (the reload runs in the background); no timing is asserted."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if "data" in (await http.post("/graphql", json=body)).json():
            return True
        await asyncio.sleep(0.05)
    return False
