"""The `tandem` command, run in-process through `app.cli.main` as a shell would run it.

These run on SQLite only: they test the commands (arguments, output, exit codes, idempotency),
not the database; `db upgrade` on PostgreSQL already runs in the session fixtures. The tests are
synchronous because `db upgrade`, `seed` and friends call `asyncio.run` themselves.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from app.main import token_service
from app.seed import DEMO_EMAIL
from app.settings import Settings


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An upgraded, empty SQLite database that the CLI finds through `TANDEM_*` variables."""
    path = tmp_path / "tandem.db"
    monkeypatch.setenv("TANDEM_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("TANDEM_KEYS_DIR", str(tmp_path / "keys"))
    assert main(["db", "upgrade"]) == 0
    return path


def user_count(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM users").fetchone()[0])


def user_id(database: Path, email: str) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0])


def test_db_upgrade_says_so(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["db", "upgrade"]) == 0  # a second run has nothing to do, and says the same
    assert capsys.readouterr().out == "Database is up to date.\n"
    assert user_count(database) == 0


def test_seed_is_idempotent(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["seed"]) == 0
    assert "Demo data created." in capsys.readouterr().out
    seeded = user_count(database)
    assert seeded == 2  # the demo user and a teammate

    assert main(["seed"]) == 0
    assert "Demo data already present." in capsys.readouterr().out
    assert user_count(database) == seeded


def test_user_create_prints_json(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    argv = ["user", "create", "--email", "Ada@Example.test", "--name", "Ada", "--password", "long enough"]
    assert main([*argv, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["email"] == "ada@example.test"
    assert created["name"] == "Ada"
    assert created["id"] == user_id(database, "ada@example.test")


def test_user_create_refuses_a_taken_email(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["user", "create", "--email", "ada@example.test", "--name", "Ada", "--password", "long enough"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 1
    assert capsys.readouterr().err == "error: That email address is already in use.\n"
    assert user_count(database) == 1


def test_user_create_refuses_a_short_password(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    argv = ["user", "create", "--email", "ada@example.test", "--name", "Ada", "--password", "short"]
    assert main(argv) == 1
    assert "at least 8 characters" in capsys.readouterr().err
    assert user_count(database) == 0


def test_token_is_verified_by_the_app(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed"]) == 0
    capsys.readouterr()
    assert main(["token", "--email", DEMO_EMAIL, "--scope", "tasks:read"]) == 0
    token = capsys.readouterr().out.strip()
    claims = token_service(Settings()).verify(token)
    assert claims.subject == str(user_id(database, DEMO_EMAIL))
    assert claims.scopes == frozenset({"tasks:read"})


def test_token_refuses_an_unknown_scope(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed"]) == 0
    capsys.readouterr()
    assert main(["token", "--email", DEMO_EMAIL, "--scope", "everything"]) == 1
    output = capsys.readouterr()
    assert output.out == ""
    assert "Unknown scope(s): everything" in output.err


def test_token_refuses_an_unknown_email(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["token", "--email", "nobody@example.test"]) == 1
    output = capsys.readouterr()
    assert output.out == ""
    assert "No user with email nobody@example.test" in output.err


def test_schema_print(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "print"]) == 0
    sdl = capsys.readouterr().out
    assert "type Query {" in sdl
    assert "interface Node {" in sdl
    assert "type Mutation {" in sdl


# --- OAuth clients and signing keys -------------------------------------------------------------------


def test_client_create_prints_the_secret_once_and_stores_its_hash(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["client", "create", "--name", "Reports", "--confidential", "--scope", "tasks:read", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["client_secret"] and created["client_id"].startswith("tdm_")
    assert created["grant_types"] == ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"]
    with contextlib.closing(sqlite3.connect(database)) as connection:
        stored = connection.execute("SELECT secret_hash FROM oauth_clients WHERE client_id = ?",
                                    (created["client_id"],)).fetchone()[0]
    assert stored != created["client_secret"] and len(stored) == 64


def test_client_create_public_app(database: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["client", "create", "--name", "SPA", "--public", "--redirect-uri", "https://app.example/cb",
                 "--scope", "tasks:read", "--trusted-documents-only", "--manifest", "mobile-app.json", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["client_secret"] is None
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    assert created["trusted_documents_only"] is True and created["manifests"] == ["mobile-app.json"]
    assert created["resource_audience"] is None and created["may_delegate"] is False


def test_client_create_registers_a_resource_server_and_a_delegate(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["client", "create", "--name", "API", "--confidential", "--resource-server", "tandem",
                 "--may-delegate", "--id-token-alg", "RS256", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert (created["resource_audience"], created["may_delegate"], created["id_token_alg"]) == ("tandem", True, "RS256")


@pytest.mark.parametrize(("args", "message"), [
    (["--public", "--scope", "launch"], "Unknown scope"),
    (["--public", "--grant-type", "authorization_code"], "redirect-uri"),
    (["--public", "--grant-type", "client_credentials"], "confidential"),
    (["--public", "--redirect-uri", "/relative"], "absolute"),
    (["--public", "--redirect-uri", "https://a.example/cb", "--trusted-documents-only"], "--manifest"),
    (["--public", "--redirect-uri", "https://a.example/cb", "--trusted-documents-only", "--manifest", "nope.json"],
     "No such manifest: nope.json"),
    (["--public", "--redirect-uri", "https://a.example/cb", "--manifest", "mobile-app.json"], "--trusted-documents-only"),
    (["--public", "--resource-server", "tandem"], "--confidential"),
])
def test_client_create_refuses_bad_input(
    database: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    capsys.readouterr()
    assert main(["client", "create", "--name", "Bad", *args, "--json"]) == 1
    assert message in json.loads(capsys.readouterr().err)["error"]


def test_seed_creates_the_graphiql_client(database: Path) -> None:
    assert main(["seed"]) == 0
    with contextlib.closing(sqlite3.connect(database)) as connection:
        row = connection.execute("SELECT secret_hash, redirect_uris FROM oauth_clients WHERE client_id = ?",
                                 ("tandem-demo",)).fetchone()
    assert row[0] is None  # public: GraphiQL runs in the browser and cannot keep a secret
    assert json.loads(row[1]) == ["http://127.0.0.1:8000/graphql", "http://localhost:8000/graphql"]


def test_keys_rotate_adds_a_signing_key(database: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capsys.readouterr()
    assert main(["keys", "rotate", "--json"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    kids = sorted(path.stem for path in (tmp_path / "keys").glob("*.pem"))
    assert kids[-1] == rotated["kid"] and len(kids) == 2 and rotated["retired"] == []
    settings = Settings(keys_dir=tmp_path / "keys")
    assert [key["kid"] for key in token_service(settings).keys.jwks()["keys"]] == kids


def test_secrets_new_key_prints_a_key_the_settings_take(capsys: pytest.CaptureFixture[str]) -> None:
    from db.secret_box import parse_keys

    capsys.readouterr()
    assert main(["secrets", "new-key"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["secrets", "new-key"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second and len(parse_keys(f"{second},{first}")) == 2  # docs/security.md's rotation line
