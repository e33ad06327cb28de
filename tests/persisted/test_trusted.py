"""Trusted documents: running a manifest's operations by `documentId` or hash, and the clients
(trusted-documents-only OAuth clients; anonymous traffic in production) that may run nothing else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from persisted_queries.policy import TrustedDocumentPolicy
from tests.conftest import GRAPHQL_RESPONSE, codes, serve, task_count, without_cost
from tests.factories import make_task
from tests.persisted.conftest import JSON, OPERATIONS, Post, apq, metric, sha256

TASK_LIST = OPERATIONS["TaskList"]
CREATE_TASK = OPERATIONS["CreateTask"]
MOBILE = "mobile-app"
UNTRUSTED = "{ viewer { id name } }"


# --- documentId -----------------------------------------------------------------------------------


@pytest.mark.parametrize("document_id", [
    pytest.param(f"sha256:{TASK_LIST['id']}", id="sha256 prefix"),
    pytest.param(TASK_LIST["id"], id="bare hex, as codegen clients send it"),
])
async def test_document_id_runs_a_trusted_operation(
    post: Post, sessions: Sessions, alice: User, document_id: str
) -> None:
    await make_task(sessions, alice, "Ship the app")
    response = await post({"documentId": document_id, "variables": {"first": 5}}, as_user=alice)
    assert response.status_code == 200
    tasks = response.json()["data"]["tasks"]
    assert tasks["totalCount"] == 1
    assert tasks["edges"][0]["node"]["title"] == "Ship the app"


async def test_apq_hash_of_a_trusted_operation_runs_without_registering(
    client: httpx.AsyncClient, post: Post, alice: User
) -> None:
    response = await post({"extensions": apq(TASK_LIST["body"])}, as_user=alice)
    assert response.json()["data"]["tasks"]["totalCount"] == 0
    assert await metric(client, "tandem_persisted_query_lookups_total", store="trusted", result="hit") == 1
    assert await metric(client, "tandem_persisted_query_registrations_total") == 0


async def test_trusted_mutation_by_document_id(post: Post, sessions: Sessions, alice: User) -> None:
    response = await post({"documentId": f"sha256:{CREATE_TASK['id']}",
                           "variables": {"input": {"title": "From the phone"}}}, as_user=alice)
    assert response.json()["data"]["createTask"]["task"]["title"] == "From the phone"
    assert await task_count(sessions) == 1


async def test_document_id_over_get_is_cacheable(client: httpx.AsyncClient) -> None:
    dashboard = OPERATIONS["ViewerDashboard"]
    url = "/graphql?" + urlencode({"documentId": f"sha256:{dashboard['id']}", "variables": '{"first":3}'})
    response = await client.get(url)
    assert without_cost(response.json()) == {"data": {"viewer": None}}
    assert response.headers["cache-control"] == "public, max-age=60"
    again = await client.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


async def test_get_result_with_errors_is_not_cached(client: httpx.AsyncClient) -> None:
    url = "/graphql?" + urlencode({"documentId": f"sha256:{TASK_LIST['id']}", "variables": '{"first":3}'})
    response = await client.get(url)
    assert codes(response.json()) == ["UNAUTHENTICATED"]  # tasks need a signed-in caller
    assert response.headers["cache-control"] == "no-store"


async def test_trusted_mutation_over_get_is_405(client: httpx.AsyncClient, sessions: Sessions) -> None:
    url = "/graphql?" + urlencode({"documentId": f"sha256:{CREATE_TASK['id']}",
                                   "variables": '{"input":{"title":"x"}}'})
    response = await client.get(url)
    assert response.status_code == 405
    assert await task_count(sessions) == 0


@pytest.mark.parametrize(("accept", "status"), [(JSON, 200), (GRAPHQL_RESPONSE, 404)])
async def test_unknown_document_id_is_not_found(post: Post, accept: str, status: int) -> None:
    response = await post({"documentId": f"sha256:{sha256('query Nope { __typename }')}"}, accept=accept)
    assert response.status_code == status
    assert codes(response.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize("document_id", [
    pytest.param("sha256:xyz", id="short sha256"),
    pytest.param("sha256:" + "A" * 64, id="upper-case sha256"),
    pytest.param("md5:0123456789abcdef", id="reserved prefix"),
    pytest.param("has space", id="not an identifier"),
    pytest.param("x" * 300, id="too long"),
    pytest.param(42, id="not a string"),
    pytest.param("", id="empty"),
])
async def test_malformed_document_id_is_bad_user_input(post: Post, document_id: Any) -> None:
    response = await post({"documentId": document_id})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_document_id_and_query_together_are_refused(post: Post) -> None:
    response = await post({"documentId": f"sha256:{TASK_LIST['id']}", "query": TASK_LIST["body"]})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_document_id_and_a_different_apq_hash_are_refused(post: Post) -> None:
    response = await post({"documentId": f"sha256:{TASK_LIST['id']}", "extensions": apq(CREATE_TASK["body"])})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_document_id_of_an_apq_registration_runs(post: Post) -> None:
    query = "{ __typename }"
    await post({"query": query, "extensions": apq(query)})
    response = await post({"documentId": f"sha256:{sha256(query)}"})
    assert without_cost(response.json()) == {"data": {"__typename": "Query"}}


# --- trusted-documents-only clients ----------------------------------------------------------------


@pytest.mark.parametrize(("accept", "status"), [(JSON, 200), (GRAPHQL_RESPONSE, 400)])
async def test_trusted_only_client_cannot_send_other_text(post: Post, alice: User, accept: str, status: int) -> None:
    response = await post({"query": UNTRUSTED}, as_user=alice, client_id=MOBILE, trusted_only=True, accept=accept)
    assert response.status_code == status
    body = response.json()
    assert codes(body) == ["PERSISTED_QUERY_REQUIRED"]
    assert "data" not in body


async def test_trusted_only_client_cannot_register_or_use_apq(post: Post, alice: User) -> None:
    registering = await post({"query": UNTRUSTED, "extensions": apq(UNTRUSTED)}, as_user=alice, client_id=MOBILE, trusted_only=True)
    assert codes(registering.json()) == ["PERSISTED_QUERY_REQUIRED"]
    # Registered by someone else, it is still not a trusted document for this client.
    await post({"query": UNTRUSTED, "extensions": apq(UNTRUSTED)}, as_user=alice)
    by_hash = await post({"extensions": apq(UNTRUSTED)}, as_user=alice, client_id=MOBILE, trusted_only=True)
    assert codes(by_hash.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    by_id = await post({"documentId": f"sha256:{sha256(UNTRUSTED)}"}, as_user=alice, client_id=MOBILE, trusted_only=True)
    assert codes(by_id.json()) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize("body", [
    pytest.param({"documentId": f"sha256:{TASK_LIST['id']}"}, id="documentId"),
    pytest.param({"extensions": apq(TASK_LIST["body"])}, id="APQ hash"),
    pytest.param({"query": TASK_LIST["body"], "extensions": apq(TASK_LIST["body"])}, id="hash and text"),
    pytest.param({"query": TASK_LIST["body"]}, id="the trusted text itself"),
])
async def test_trusted_only_client_runs_its_manifest(post: Post, alice: User, body: dict[str, Any]) -> None:
    response = await post(body, as_user=alice, client_id=MOBILE, trusted_only=True)
    assert response.status_code == 200
    assert response.json()["data"]["tasks"]["totalCount"] == 0


async def test_other_clients_may_send_any_text(post: Post, alice: User) -> None:
    response = await post({"query": UNTRUSTED}, as_user=alice, client_id="web-app")
    assert response.json()["data"]["viewer"]["name"] == "Alice"
    no_client = await post({"query": UNTRUSTED}, as_user=alice)
    assert no_client.json()["data"]["viewer"]["name"] == "Alice"


def test_anonymous_rule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_REQUIRE_TRUSTED_DOCUMENTS_FOR_ANONYMOUS", "true")
    loaded = Settings(_env_file=None)  # type: ignore[call-arg]
    assert loaded.require_trusted_documents_for_anonymous is True


# --- anonymous traffic in production --------------------------------------------------------------


async def test_anonymous_traffic_can_be_held_to_trusted_documents(
    settings: Settings, token_for: Any, alice: User
) -> None:
    strict = settings.model_copy(update={"require_trusted_documents_for_anonymous": True})
    async with serve(strict) as http:
        text = await http.post("/graphql", json={"query": UNTRUSTED}, headers={"Accept": GRAPHQL_RESPONSE})
        assert text.status_code == 400
        assert codes(text.json()) == ["PERSISTED_QUERY_REQUIRED"]
        trusted = await http.post("/graphql", json={"documentId": f"sha256:{OPERATIONS['ViewerDashboard']['id']}"})
        assert without_cost(trusted.json()) == {"data": {"viewer": None}}
        signed_in = await http.post("/graphql", json={"query": UNTRUSTED},
                                    headers={"Authorization": f"Bearer {token_for(alice)}"})
        assert signed_in.json()["data"]["viewer"]["name"] == "Alice"


@pytest.mark.parametrize(("anonymous", "flag", "expected"), [
    (True, False, False),
    (False, False, False),
    (False, True, True),
])
def test_policy(anonymous: bool, flag: bool, expected: bool) -> None:
    assert TrustedDocumentPolicy().requires_trusted(anonymous=anonymous, client_flag=flag) is expected
    strict = TrustedDocumentPolicy(require_for_anonymous=True)
    assert strict.requires_trusted(anonymous=True, client_flag=False) is True
    assert strict.requires_trusted(anonymous=False, client_flag=False) is False
