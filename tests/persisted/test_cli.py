"""`tandem pq check | add | list`, run in-process through `app.cli.main` as a shell would run it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.settings import Settings
from persisted_queries.trusted import LOCK_FILE
from schema import build_schema
from tests.conftest import serve, without_cost
from tests.persisted.conftest import OPERATIONS, SHIPPED_MANIFEST, apollo_manifest, sha256

TYPENAME = "query Typename { __typename }"
LEGACY = "query Legacy { tasks(first: 5) { nodes { id legacyField } } }"
NEEDS_ARGUMENT = "query NoId { task { id } }"


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest directory like the shipped one (manifest + lock) that the CLI finds through the environment."""
    path = tmp_path / "pq"
    path.mkdir()
    shutil.copy(SHIPPED_MANIFEST, path)
    shutil.copy(SHIPPED_MANIFEST.parent / LOCK_FILE, path)
    monkeypatch.setenv("TANDEM_PERSISTED_QUERIES_DIR", str(path))
    monkeypatch.delenv("TANDEM_REDIS_URL", raising=False)
    return path


def write(path: Path, content: Any) -> Path:
    path.write_text(json.dumps(content))
    return path


def test_check_passes_on_the_shipped_manifests(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pq", "check"]) == 0
    out = capsys.readouterr()
    assert f"{len(OPERATIONS)} trusted operations in 1 manifests" in out.out
    assert "0 broken by the current schema" in out.out
    assert out.err == ""


def test_check_names_each_broken_operation(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(directory / "old-app.json", apollo_manifest(LEGACY, NEEDS_ARGUMENT, TYPENAME))
    assert main(["pq", "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"breaking: old-app.json: Op0 (sha256:{sha256(LEGACY)[:12]}…): Cannot query field 'legacyField' on type 'Task'.",
        f"breaking: old-app.json: Op1 (sha256:{sha256(NEEDS_ARGUMENT)[:12]}…): " + err[1].split("…): ", 1)[1],
    ]
    assert "is required, but it was not provided" in err[1]


def test_check_fails_on_a_malformed_manifest(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (directory / "bad.json").write_text("{not json")
    assert main(["pq", "check"]) == 1
    assert capsys.readouterr().err.startswith("error: bad.json: is not valid JSON")


def test_check_without_a_lock_says_what_it_cannot_see(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (directory / LOCK_FILE).unlink()
    assert main(["pq", "check"]) == 0
    assert f"note: no {LOCK_FILE}: only validation was checked" in capsys.readouterr().out
    assert main(["pq", "check", "--write-lock"]) == 0
    assert (directory / LOCK_FILE).read_text() == build_schema().as_str() + "\n"


def test_add_reviews_copies_and_locks(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (directory / LOCK_FILE).write_text("type Query { old: Int }\n")  # stale, but breaks nothing
    dashboard = OPERATIONS["ViewerDashboard"]["body"]
    incoming = write(tmp_path / "ios-2.4.json", apollo_manifest(TYPENAME, dashboard))
    assert main(["pq", "add", str(incoming)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["operation", "type", "fields", "depth", "cost", "status"]
    assert out.splitlines()[1].split() == ["Op0", "query", "1", "1", "1", "new"]
    assert out.splitlines()[2].split()[-2:] == ["already", "trusted"]
    assert "2 operations, 1 new; estimated cost" in out
    assert (directory / "ios-2.4.json").read_bytes() == incoming.read_bytes()
    assert (directory / LOCK_FILE).read_text() == build_schema().as_str() + "\n"
    assert main(["pq", "check"]) == 0


def test_add_refuses_operations_the_schema_cannot_run(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incoming = write(tmp_path / "old.json", apollo_manifest(TYPENAME, LEGACY))
    assert main(["pq", "add", str(incoming)]) == 1
    err = capsys.readouterr().err
    assert "Cannot query field 'legacyField' on type 'Task'." in err
    assert "Not added: 1 problems above." in err
    assert not (directory / "old.json").exists()


def test_add_refuses_an_id_trusted_with_another_body(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(directory / "web.json", apollo_manifest(TYPENAME, ids=["shared-id"]))
    incoming = write(tmp_path / "ios.json", apollo_manifest("query Other { __typename }", ids=["shared-id"]))
    assert main(["pq", "add", str(incoming)]) == 1
    assert "id 'shared-id' is already trusted in web.json with another body" in capsys.readouterr().err


def test_add_does_not_overwrite_without_replace(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incoming = write(tmp_path / "mobile-app.json", apollo_manifest(TYPENAME))
    assert main(["pq", "add", str(incoming)]) == 1
    assert "pass --replace" in capsys.readouterr().err
    assert main(["pq", "add", str(incoming), "--replace"]) == 0
    assert (directory / "mobile-app.json").read_bytes() == incoming.read_bytes()


def test_add_dry_run_and_name(directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    incoming = write(tmp_path / "build-123.json", {sha256(TYPENAME): TYPENAME})
    assert main(["pq", "add", str(incoming), "--dry-run"]) == 0
    assert "Dry run: nothing written." in capsys.readouterr().out
    assert not (directory / "build-123.json").exists()
    assert main(["pq", "add", str(incoming), "--name", "android-5.0"]) == 0
    assert (directory / "android-5.0.json").exists()


def test_add_refuses_a_malformed_manifest(directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    incoming = write(tmp_path / "bad.json", {"format": "apollo-persisted-query-manifest", "version": 7})
    assert main(["pq", "add", str(incoming)]) == 1
    assert capsys.readouterr().err == "error: bad.json: `version` 7 is not supported (only 1)\n"


def test_list_shows_operations_with_cost(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pq", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["manifest", "operation", "type", "id", "cost", "last", "use"]
    assert [line.split()[1] for line in lines[1:len(OPERATIONS) + 1]] == list(OPERATIONS)
    assert lines[-1].startswith("note: last use is recorded in Redis")


def test_list_as_json(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pq", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_name = {entry["name"]: entry for entry in listed["operations"]}
    assert by_name["TaskDetail"] == {
        "manifest": "mobile-app.json", "name": "TaskDetail", "type": "query", "id": OPERATIONS["TaskDetail"]["id"],
        "cost": by_name["TaskDetail"]["cost"], "depth": 3, "lastUsed": None,
    }
    # 20 tasks by default (the variable's default), each with its rows: a list costs more than a detail.
    assert by_name["TaskList"]["cost"] > 20 * by_name["TaskDetail"]["cost"] / 2
    assert listed["errors"] == {}


def test_list_shows_last_use_from_redis(
    directory: Path, settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def use_the_dashboard() -> None:
        shared = settings.model_copy(update={"redis_url": redis_url, "persisted_queries_dir": directory})
        async with serve(shared) as http:
            response = await http.post("/graphql", json={"documentId": OPERATIONS["ViewerDashboard"]["id"]})
            assert without_cost(response.json()) == {"data": {"viewer": None}}

    asyncio.run(use_the_dashboard())  # a sync test: the CLI runs its own event loop
    monkeypatch.setenv("TANDEM_REDIS_URL", redis_url)
    capsys.readouterr()
    assert main(["pq", "list", "--json"]) == 0
    used = {entry["name"]: entry["lastUsed"] for entry in json.loads(capsys.readouterr().out)["operations"]}
    assert used["ViewerDashboard"] is not None and used["ViewerDashboard"].endswith("Z")
    assert used["TaskDetail"] is None


def test_list_with_redis_down_still_lists(
    directory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TANDEM_REDIS_URL", "redis://127.0.0.1:1/6")
    assert main(["pq", "list"]) == 0
    out = capsys.readouterr().out
    assert "ViewerDashboard" in out
    assert "note: last use unavailable: Redis did not answer" in out
