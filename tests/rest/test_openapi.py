"""`/openapi.json` describes every REST endpoint, and the server keeps to it: schemathesis fuzzes
each operation against the real app under uvicorn and finds no server error and no response that
breaks the description. Plus the declaration API, and Starlette's own 404/405 in the error shape."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import BaseModel
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from standardwebhooks import Webhook

from app.main import create_app
from app.settings import Settings
from db.engine import make_engine, make_sessions
from db.models import User
from rest.openapi import Body, Operation, Reply, build_document
from tests.live_server import LiveServer
from tests.rest.conftest import BOT_EMAIL, SECRET_A, SOURCE, fast

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
DESCRIBED_PATHS = {"/webhooks/{source}", "/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/openapi.json",
                   "/oauth/authorize", "/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/userinfo",
                   "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/auth/ws-ticket"}
# Their valid requests name clients, codes and tokens the fuzzer cannot know: refused, rightly (400/401).
NEEDS_REGISTERED_CLIENTS = {"/oauth/authorize", "/oauth/token", "/oauth/revoke", "/oauth/introspect"}


# --- the document ---------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_every_rest_route_is_described(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == DESCRIBED_PATHS
    error_ref = {"$ref": "#/components/schemas/Error"}
    webhook = document["paths"]["/webhooks/{source}"]["post"]
    for status in ("400", "401", "404", "409", "413", "415", "422"):
        assert webhook["responses"][status]["content"]["application/json"]["schema"] == error_ref, status
    assert {p["name"] for p in webhook["parameters"]} == {
        "source", "webhook-id", "webhook-timestamp", "webhook-signature", "Idempotency-Key"}
    body_schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert set(body_schema["discriminator"]["mapping"]) == {"task.create", "task.update", "task.close"}
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message", "details", "requestId"]
    assert {"TaskCreateEvent", "TaskCreateData", "Receipt", "Readiness", "Jwks"} <= set(schemas)


@SQLITE_ONLY
async def test_the_oauth_endpoints_are_described_in_their_own_shapes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    token = paths["/oauth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(form["discriminator"]["mapping"]) == {
        "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"}
    oauth_error = {"$ref": "#/components/schemas/OAuthError"}
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect"):
        responses = paths[path]["post"]["responses"]
        assert {status: responses[status]["content"]["application/json"]["schema"] for status in ("400", "401")} == {
            "400": oauth_error, "401": oauth_error}, path
    assert token["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenResponse"}
    assert schemas["OAuthError"]["required"] == ["error"]
    assert set(paths["/oauth/authorize"]) == {"get", "post"} and set(paths["/oauth/userinfo"]) == {"get", "post"}
    assert "text/html" in paths["/oauth/authorize"]["get"]["responses"]["200"]["content"]
    assert "302" in paths["/oauth/authorize"]["get"]["responses"]
    ticket = paths["/auth/ws-ticket"]["post"]
    assert ticket["security"] == [{"bearer": []}] and set(ticket["responses"]) == {"201", "401", "503"}
    # The discovery documents are described as they are served.
    served = (await client.get("/.well-known/openid-configuration")).json()
    assert set(schemas["OpenIDConfiguration"]["required"]) <= set(served)


async def test_declaring_another_endpoint_is_enough() -> None:
    """How the OAuth endpoints join: a form body, its own errors, bearer security."""

    class RevokeForm(BaseModel):
        token: str

    document = build_document([Operation(
        "POST", "/oauth/revoke", "revoke", "Revoke a token (RFC 7009)", tags=("oauth",),
        body=Body(RevokeForm, "application/x-www-form-urlencoded"),
        responses=(Reply(200, "Revoked."),), errors=(400, 401), security=("bearer",),
    )])
    operation = document["paths"]["/oauth/revoke"]["post"]
    assert operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"] == {
        "$ref": "#/components/schemas/RevokeForm"}
    assert set(operation["responses"]) == {"200", "400", "401"}
    assert operation["security"] == [{"bearer": []}]
    assert "RevokeForm" in document["components"]["schemas"]
    with pytest.raises(ValueError, match="declared twice"):
        build_document([Operation("GET", "/x", "a", "A"), Operation("GET", "/x", "b", "B")])


@SQLITE_ONLY
async def test_unknown_paths_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/no/such/thing")
    wrong_method = await client.delete("/healthz")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD"}
    for response in (missing, wrong_method):
        assert response.json()["error"]["requestId"] == response.headers["x-request-id"]


# --- schemathesis against the live server ---------------------------------------------------------


@pytest.fixture(scope="module")
def live_api(sqlite_template: Path, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (SQLite, the `crm` source and its user) under uvicorn, for the whole module."""
    import asyncio

    path = tmp_path_factory.mktemp("openapi") / "tandem.db"
    shutil.copy(sqlite_template, path)
    base = Settings(database_url=f"sqlite+aiosqlite:///{path}", keys_dir=keys_dir, redis_url=None, log_json=False,
                    freeze_gc_on_start=False, _env_file=None)  # type: ignore[call-arg]

    async def add_bot() -> None:
        engine = make_engine(base.database_url)
        async with make_sessions(engine).begin() as session:
            session.add(User(email=BOT_EMAIL, name="CRM bot", password_hash=None))
        await engine.dispose()

    asyncio.run(add_bot())
    with LiveServer(create_app(fast(base))) as server:
        yield server.url


def _described() -> Any:
    """The document the app serves, built the same way (the server is only known at run time)."""
    from app.rest_layer import DESCRIBED

    return build_document([operation for operations in DESCRIBED for operation in operations],
                          description=_SERVED_DESCRIPTION)


_SERVED_DESCRIPTION = ("The REST side of Tandem: webhooks, operations and OAuth. The product itself is GraphQL "
                       "(POST /graphql).")
schema = schemathesis.openapi.from_dict(_described())


def test_the_fuzzed_document_is_the_served_one(live_api: str) -> None:
    assert httpx.get(f"{live_api}/openapi.json").json() == json.loads(json.dumps(_described()))


def _sign_positive_webhook(case: Any) -> dict[str, Any]:
    """Valid webhook cases get a real signature (and a known source), so the fuzzer reaches the body
    checks instead of stopping at 401; invalid ones go as generated and must be refused.

    A valid case's `Idempotency-Key` is made unique: the fuzzer reuses values like "0" with other
    bodies, which is the client error that 422 IDEMPOTENCY_KEY_REUSED rightly reports (tested in
    test_idempotency.py), not valid data refused.
    """
    if case.operation.path != "/webhooks/{source}" or case.meta.generation.mode != GenerationMode.POSITIVE:
        return {}
    case.path_parameters["source"] = SOURCE
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    body = json.dumps(case.body)
    now = datetime.fromtimestamp(int(time.time()), UTC)
    message_id = case.headers["webhook-id"]
    return {
        "data": body.encode(),
        "headers": {"webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": Webhook(SECRET_A).sign(message_id, now, body),
                    "content-type": "application/json"},
    }


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_server_keeps_to_its_description(case: Any, live_api: str) -> None:
    excluded = [positive_data_acceptance] if case.operation.path in NEEDS_REGISTERED_CLIENTS else []
    case.call_and_validate(base_url=live_api, excluded_checks=excluded, **_sign_positive_webhook(case))
