"""A client registered as trusted-documents-only: its tokens say so, and /graphql holds them to the manifests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client

from auth.oauth.data import create_client
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, codes, without_cost
from tests.oauth.conftest import REDIRECT_URI, WEB_SCOPES, RegisteredClient, code_flow_tokens

MANIFEST = Path(__file__).resolve().parents[2] / "persisted_queries" / "mobile-app.json"
DASHBOARD_ID = next(op["id"] for op in json.loads(MANIFEST.read_text())["operations"] if op["name"] == "ViewerDashboard")


async def _token(http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], sessions: Sessions,
                 *, trusted_only: bool) -> str:
    client, _ = await create_client(
        sessions, name="iOS app", redirect_uris=[REDIRECT_URI], scope=WEB_SCOPES,
        grant_types=["authorization_code", "refresh_token"], confidential=False, trusted_documents_only=trusted_only,
    )
    token = await code_flow_tokens(http, oauth_client, RegisteredClient(client.client_id, None),
                                   scope="openid profile tasks:read documents:read")
    return str(token["access_token"])


async def test_trusted_only_client_runs_its_manifest_and_nothing_else(
    http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], sessions: Sessions, person: User
) -> None:
    headers = {"Authorization": f"Bearer {await _token(http, oauth_client, sessions, trusted_only=True)}",
               "Accept": GRAPHQL_RESPONSE}
    text = await http.post("/graphql", json={"query": "{ viewer { name } }"}, headers=headers)
    assert text.status_code == 400
    assert codes(text.json()) == ["PERSISTED_QUERY_REQUIRED"]
    trusted = await http.post("/graphql", json={"documentId": f"sha256:{DASHBOARD_ID}"}, headers=headers)
    assert trusted.json()["data"]["viewer"]["name"] == "Pat", trusted.text


async def test_other_clients_send_any_text(
    http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], sessions: Sessions, person: User
) -> None:
    headers = {"Authorization": f"Bearer {await _token(http, oauth_client, sessions, trusted_only=False)}"}
    response = await http.post("/graphql", json={"query": "{ viewer { name } }"}, headers=headers)
    assert without_cost(response.json()) == {"data": {"viewer": {"name": "Pat"}}}
