"""Shared fixtures: the real app on a real database (SQLite file and PostgreSQL), users, tokens.

Every test that takes `settings` (directly or through `gql`, `client`, `sessions`) runs twice:
once on a fresh SQLite file, once on the local PostgreSQL. An unreachable PostgreSQL or Redis
fails the test with what is missing; nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import pytest
from sqlalchemy import event, func, select
from starlette.applications import Starlette

from app.main import create_app
from app.settings import Settings
from auth import scopes
from db.engine import Sessions
from db.migrate import upgrade
from db.models import Base, Task, User
from schema.relay import encode_id
from tests.factories import make_user
from tests.redis_cluster import PrivateCluster

POSTGRES_ADMIN_URL = os.environ.get("TANDEM_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
# One database per pytest process, so parallel runs on one machine never drop each other's tables.
POSTGRES_DATABASE = f"tandem_test_{os.getpid()}"
REDIS_URL = os.environ.get("TANDEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
GRAPHQL_RESPONSE = "application/graphql-response+json"
# Seals webhook secrets in the tests' databases (production refuses to start without one).
TEST_SECRET_KEY = "dGFuZGVtLXRlc3Qta2V5LTMyLWJ5dGVzLWxvbmctISE"
# Server processes the tests start inherit it, so they open what the in-process apps sealed.
os.environ.setdefault("TANDEM_SECRET_KEY", TEST_SECRET_KEY)


def global_id(type_name: str, pk: int) -> str:
    return encode_id(type_name, pk)


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """The body without `extensions.cost`, which every response carries (tests/limits checks it)."""
    extensions = {k: v for k, v in body.get("extensions", {}).items() if k != "cost"}
    rest = {k: v for k, v in body.items() if k != "extensions"}
    return {**rest, "extensions": extensions} if extensions else rest


# --- databases ----------------------------------------------------------------------------------


async def _admin(statement: str) -> None:
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}). Start it: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)'))
    asyncio.run(_admin(f'CREATE DATABASE "{POSTGRES_DATABASE}"'))
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{base}/{POSTGRES_DATABASE}"
    upgrade(url)
    yield url
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{POSTGRES_DATABASE}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "tandem.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _truncate_postgres(url: str) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "tandem.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate_postgres(url))
    return url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[PrivateCluster]:
    """A private three-master Redis Cluster, started once for the tests that need one."""
    with PrivateCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture
def settings(database_url: str, keys_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        keys_dir=keys_dir,
        redis_url=None,
        log_json=False,
        freeze_gc_on_start=False,
        secret_key=TEST_SECRET_KEY,
        single_instance=True,  # production tests without Redis are one process (app/preflight.py)
        _env_file=None,  # type: ignore[call-arg]
    )


# --- the app ------------------------------------------------------------------------------------


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tandem.test") as http:
        yield http


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app built from `settings`, for tests that need other settings than the fixture's."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://tandem.test") as http:
            yield http


async def task_count(sessions: Sessions) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Task)) or 0)


@pytest.fixture
def sessions(app: Starlette) -> Sessions:
    result: Sessions = app.state.sessions
    return result


@pytest.fixture
def token_for(app: Starlette) -> Callable[..., str]:
    def mint(user: User, scope: set[str] | frozenset[str] | None = None, **kwargs: Any) -> str:
        token: str = app.state.tokens.issue_access_token(str(user.id), scopes.ALL if scope is None else scope, **kwargs)
        return token

    return mint


class Gql(Protocol):
    def __call__(
        self, query: str, variables: dict[str, Any] | None = None, *, as_user: User | None = None,
        scope: set[str] | None = None,
    ) -> Awaitable[dict[str, Any]]: ...


@pytest.fixture
def gql(client: httpx.AsyncClient, token_for: Callable[..., str]) -> Gql:
    """POST a GraphQL request (as `as_user`, if given) and return the decoded body, without
    `extensions.cost` (see `without_cost`)."""

    async def run(
        query: str, variables: dict[str, Any] | None = None, *, as_user: User | None = None,
        scope: set[str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": GRAPHQL_RESPONSE}
        if as_user is not None:
            headers["Authorization"] = f"Bearer {token_for(as_user, scope)}"
        response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        assert response.status_code in (200, 400, 401), response.text
        return without_cost(response.json())

    return run


@pytest.fixture
async def alice(sessions: Sessions) -> User:
    return await make_user(sessions, "Alice")


@pytest.fixture
async def bob(sessions: Sessions) -> User:
    return await make_user(sessions, "Bob")


@pytest.fixture
async def carol(sessions: Sessions) -> User:
    return await make_user(sessions, "Carol")


# --- SQL statement counting ---------------------------------------------------------------------


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("PRAGMA", "SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK")):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def sql_statements(app: Starlette) -> Iterator[StatementCounter]:
    """Every statement on the app's engines: the async one (writes) and the loaders' read engines."""
    counter = StatementCounter()
    engines = {app.state.engine.sync_engine, *app.state.reads.engines}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", counter)
    yield counter
    for engine in engines:
        event.remove(engine, "before_cursor_execute", counter)


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]
