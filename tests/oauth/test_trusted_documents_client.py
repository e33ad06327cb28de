"""A client registered as trusted-documents-only: its tokens say so, and /graphql holds them to the manifests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client

from app.settings import Settings
from auth.oauth.data import create_client
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, codes, without_cost
from tests.oauth.conftest import REDIRECT_URI, WEB_SCOPES, RegisteredClient, code_flow_tokens

MANIFEST = Path(__file__).resolve().parents[2] / "persisted_queries" / "mobile-app.json"
OTHER_APP = {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
    {"id": "other-viewer", "name": "OtherViewer", "type": "query", "body": "query OtherViewer { viewer { id } }"}]}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Our app's manifest and another app's, side by side."""
    directory = tmp_path / "manifests"
    directory.mkdir()
    shutil.copy(MANIFEST, directory / MANIFEST.name)
    (directory / "other-app.json").write_text(json.dumps(OTHER_APP))
    return settings.model_copy(update={"persisted_queries_dir": directory})


DASHBOARD_ID = next(op["id"] for op in json.loads(MANIFEST.read_text())["operations"] if op["name"] == "ViewerDashboard")


async def _token(http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], sessions: Sessions,
                 *, trusted_only: bool, manifests: list[str] | None = None) -> str:
    client, _ = await create_client(
        sessions, name="iOS app", redirect_uris=[REDIRECT_URI], scope=WEB_SCOPES,
        grant_types=["authorization_code", "refresh_token"], confidential=False, trusted_documents_only=trusted_only,
        manifests=manifests,
    )
    token = await code_flow_tokens(http, oauth_client, RegisteredClient(client.client_id, None),
                                   scope="openid profile tasks:read documents:read")
    return str(token["access_token"])


async def test_trusted_only_client_runs_its_manifest_and_nothing_else(
    http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], sessions: Sessions, person: User
) -> None:
    token = await _token(http, oauth_client, sessions, trusted_only=True, manifests=[MANIFEST.name])
    headers = {"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE}
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


async def test_a_trusted_only_client_runs_only_its_own_manifests(
    http: httpx.AsyncClient, oauth_client: Callable[..., AsyncOAuth2Client], sessions: Sessions, person: User,
) -> None:
    # Another app's manifest beside ours: its documents are trusted, but not for this client.
    other_body = OTHER_APP["operations"][0]["body"]  # type: ignore[index]
    for manifests, allowed in (([MANIFEST.name], False), ([], False), (["other-app.json"], True)):
        token = await _token(http, oauth_client, sessions, trusted_only=True, manifests=manifests)
        headers = {"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE}
        for body in ({"documentId": "other-viewer"}, {"query": other_body}):
            response = await http.post("/graphql", json=body, headers=headers)
            if allowed:
                assert response.status_code == 200 and response.json()["data"]["viewer"]["id"], response.text
            else:
                assert response.status_code == 403, response.text
                assert codes(response.json()) == ["PERSISTED_QUERY_NOT_ALLOWED"]
