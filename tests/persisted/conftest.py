"""Fixtures for persisted queries: the app with a manifest directory of its own, Redis database 6.

`settings` here is the suite's `settings` with `persisted_queries_dir` pointing at a temporary copy
of the manifest we ship (`persisted_queries/mobile-app.json`), and reloading left to the tests
(`persisted_queries_reload_seconds=0`), so every fixture built on it (`app`, `client`, `gql`,
`sessions`, `token_for`, `alice`, ...) serves those trusted documents. Tests here do not exercise
the database, so `database_url` is overridden to a fresh SQLite file only (no PostgreSQL run).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from auth.tokens import TRUSTED_DOCUMENTS_ONLY, TRUSTED_MANIFESTS
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MANIFEST = ROOT / "persisted_queries" / "mobile-app.json"
PQ_REDIS_URL = "redis://127.0.0.1:6379/6"
JSON = "application/json"


def shipped_operations() -> dict[str, dict[str, str]]:
    """The shipped manifest's operations by name: {"id", "name", "type", "body"}."""
    data = json.loads(SHIPPED_MANIFEST.read_text())
    return {operation["name"]: operation for operation in data["operations"]}


OPERATIONS = shipped_operations()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(query: str, version: Any = 1) -> dict[str, Any]:
    """The `extensions` an APQ client (Apollo Client, urql) sends for `query`."""
    return {"persistedQuery": {"version": version, "sha256Hash": sha256(query)}}


def apollo_manifest(*bodies: str, ids: list[str] | None = None) -> dict[str, Any]:
    operations = []
    for index, body in enumerate(bodies):
        operations.append({"id": ids[index] if ids else sha256(body), "name": f"Op{index}", "type": "query",
                           "body": body})
    return {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "tandem.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    shutil.copy(SHIPPED_MANIFEST, directory / SHIPPED_MANIFEST.name)
    return directory


@pytest.fixture
def settings(settings: Settings, manifests: Path) -> Settings:
    return settings.model_copy(update={"persisted_queries_dir": manifests, "persisted_queries_reload_seconds": 0})


@pytest.fixture
def redis_url() -> str:
    """Redis database 6, emptied; an unreachable Redis fails the test, never skips it."""
    client = redis.Redis.from_url(PQ_REDIS_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {PQ_REDIS_URL} ({exc}); `make services` starts it.", pytrace=False)
    finally:
        client.close()
    return PQ_REDIS_URL


Post = Callable[..., Any]


def trusted_claims(*manifests: str) -> dict[str, Any]:
    """A trusted-documents-only client's claims, bound to `manifests` (default: the shipped one)."""
    return {TRUSTED_DOCUMENTS_ONLY: True, TRUSTED_MANIFESTS: list(manifests or (SHIPPED_MANIFEST.name,))}


@pytest.fixture
def post(client: httpx.AsyncClient, token_for: Callable[..., str]) -> Post:
    """POST a GraphQL request body as-is; `as_user` signs it, `client_id` names the OAuth client, whose
    tokens say `trusted_only` when it is registered as trusted-documents-only (as the OAuth server issues
    them), bound to the shipped manifest, or to `manifests`."""

    async def send(
        body: dict[str, Any], *, accept: str = GRAPHQL_RESPONSE, as_user: User | None = None,
        client_id: str | None = None, trusted_only: bool = False, manifests: tuple[str, ...] = (),
    ) -> httpx.Response:
        headers = {"Accept": accept}
        if as_user is not None:
            claims = trusted_claims(*manifests) if trusted_only else None
            headers["Authorization"] = f"Bearer {token_for(as_user, None, client_id=client_id, extra=claims)}"
        return await client.post("/graphql", json=body, headers=headers)

    return send


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when it has not been counted yet)."""
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
