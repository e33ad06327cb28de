"""PostgreSQL stopped under a running app: every request still answers in the documented shapes
(GraphQL errors with `extensions.code`, the REST error JSON), 503 with `Retry-After` where the
database was needed before anything could run, never uvicorn's plain-text 500, and each failure is
one log line with the request id. The app comes back by itself when the database does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from db.migrate import upgrade
from db.models import User
from tests.factories import make_user
from tests.postgres_server import PrivatePostgres

VIEWER = {"query": "{ viewer { name } }"}


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        upgrade(server.url)
        yield server


pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the test brings its own


def _log_lines(capsys: pytest.CaptureFixture[str], request_id: str) -> list[dict[str, object]]:
    """The JSON log lines written for one request (the app logs to stderr), but its access line."""
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("request_id") == request_id and line["logger"] != "tandem.access"]


async def test_requests_while_the_database_is_down(
    settings: Settings, private_postgres: PrivatePostgres, capsys: pytest.CaptureFixture[str],
) -> None:
    configured = settings.model_copy(update={"database_url": private_postgres.url, "log_json": True,
                                             "webhook_worker": False})
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        alice: User = await make_user(app.state.sessions, "Alice")
        token = app.state.tokens.issue_access_token(str(alice.id), {"profile"})
        signed_in = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://tandem.test") as http:
            assert (await http.post("/graphql", json=VIEWER, headers=signed_in)).json()["data"] == {
                "viewer": {"name": "Alice"}}
            private_postgres.stop()
            capsys.readouterr()

            graphql = await http.post("/graphql", json=VIEWER, headers=signed_in)
            assert graphql.status_code == 503, graphql.text
            assert graphql.headers["retry-after"] == "5"
            error = graphql.json()["errors"][0]
            assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
            assert error["extensions"]["requestId"] == graphql.headers["x-request-id"]
            assert "Traceback" not in graphql.text and "asyncpg" not in graphql.text
            [logged] = _log_lines(capsys, graphql.headers["x-request-id"])  # one line, JSON, no traceback
            assert logged["level"] == "error" and logged["dependency"] == "database" and "exception" not in logged

            # Anonymous, the database is first needed by a resolver: a GraphQL error, masked.
            anonymous = await http.post("/graphql", json={"query": "{ tasks { totalCount } }"})
            assert anonymous.headers["content-type"].startswith("application/")
            assert {e["extensions"]["code"] for e in anonymous.json()["errors"]} <= {
                "INTERNAL_SERVER_ERROR", "UNAUTHENTICATED"}

            # REST: the OAuth token endpoint needs its clients table.
            oauth = await http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "x",
                                                          "client_secret": "y"})
            assert oauth.status_code == 503, oauth.text
            assert oauth.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
            assert oauth.json()["error"]["requestId"] == oauth.headers["x-request-id"]
            assert oauth.headers["retry-after"] == "5"

            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["database"] == "unavailable"

            private_postgres.start()
            answer = await _eventually_answers(http, signed_in)
            assert answer["data"] == {"viewer": {"name": "Alice"}}


async def _eventually_answers(http: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, object]:
    import asyncio
    import time

    deadline = time.monotonic() + 15
    while True:
        response = await http.post("/graphql", json=VIEWER, headers=headers)
        if response.status_code == 200 and "data" in response.json():
            body: dict[str, object] = response.json()
            return body
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.2)


