"""GraphQL over HTTP as `app/graphql_http.py` serves it, seen from a client on the wire.

Status codes and media types follow the GraphQL-over-HTTP spec; the 415 for form-like bodies is the
CSRF door; a bad token is a 401, never an anonymous request; every response carries a request id and
the security headers; page sizes are bounded.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pydantic
import pytest

from app.settings import Settings
from db.engine import Sessions
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE, Gql, codes, serve, task_count, without_cost
from tests.factories import make_task

VIEWER = "{ viewer { id } }"
PARSE_ERROR = "{ viewer { id "
UNKNOWN_FIELD = "{ viewer { shoeSize } }"
PAGE_SIZE = "query($first: Int) { tasks(first: $first) { totalCount } }"
CREATE_TASK = 'mutation { createTask(input: {title: "Sneaky"}) { task { id } } }'
QUERY_AND_MUTATION = """
query Q { viewer { id } }
mutation M { createTask(input: {title: "Sneaky"}) { task { id } } }
"""
MISSING_TASK = 'query { task(id: "VGFzazo5OTk5OTk") { id } }'  # Task:999999
TASKS = """
query($first: Int, $last: Int, $after: String) {
  tasks(first: $first, last: $last, after: $after) { edges { cursor } pageInfo { hasNextPage } }
}
"""

JSON = "application/json"
GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")




def bearer(token_for: Callable[..., str], user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}"}


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# --- media types and status codes ---------------------------------------------------------------

NOT_EXECUTABLE = [
    pytest.param({"query": PARSE_ERROR}, id="parse error"),
    pytest.param({"query": UNKNOWN_FIELD}, id="unknown field"),
    pytest.param({"query": PAGE_SIZE, "variables": {"first": "ten"}}, id="variable of the wrong type"),
]


async def test_graphql_response_media_type_when_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": VIEWER}, headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert without_cost(response.json()) == {"data": {"viewer": None}}


@pytest.mark.parametrize("payload", NOT_EXECUTABLE)
async def test_request_that_never_executed_is_400(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await client.post("/graphql", json=payload, headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    body = response.json()
    assert len(body["errors"]) == 1
    assert "data" not in body


@pytest.mark.parametrize("payload", NOT_EXECUTABLE)
async def test_legacy_json_clients_get_200(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await client.post("/graphql", json=payload, headers={"Accept": JSON})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(JSON)
    assert len(response.json()["errors"]) == 1


@pytest.mark.parametrize("payload", NOT_EXECUTABLE)
async def test_request_errors_are_bad_user_input(client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await client.post("/graphql", json=payload)
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "requestId": response.headers["x-request-id"]}


# --- methods ------------------------------------------------------------------------------------


async def test_get_runs_a_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": VIEWER}, headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"viewer": None}}


async def test_get_never_runs_a_mutation(
    client: httpx.AsyncClient, sessions: Sessions, token_for: Callable[..., str], alice: User
) -> None:
    response = await client.get("/graphql", params={"query": CREATE_TASK}, headers=bearer(token_for, alice))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert await task_count(sessions) == 0


async def test_get_cannot_pick_the_mutation_of_a_document(
    client: httpx.AsyncClient, sessions: Sessions, token_for: Callable[..., str], alice: User
) -> None:
    params = {"query": QUERY_AND_MUTATION, "operationName": "M"}
    response = await client.get("/graphql", params=params, headers=bearer(token_for, alice))
    assert response.status_code == 405
    assert await task_count(sessions) == 0


async def test_get_with_variables_that_are_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": PAGE_SIZE, "variables": "{first: 1"})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/graphql", json={"query": VIEWER})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


# --- request bodies -----------------------------------------------------------------------------

# Each body carries a mutation that would create a task if it ran.
MUTATION_AS_JSON = json.dumps({"query": CREATE_TASK}).encode()
MUTATION_AS_FORM = urlencode({"query": CREATE_TASK}).encode()
MUTATION_AS_MULTIPART = (
    b'--b\r\nContent-Disposition: form-data; name="query"\r\n\r\n' + CREATE_TASK.encode() + b"\r\n--b--\r\n"
)
FORM_LIKE = [
    pytest.param("text/plain", MUTATION_AS_JSON, id="text/plain"),
    pytest.param("application/x-www-form-urlencoded", MUTATION_AS_FORM, id="urlencoded"),
    pytest.param("multipart/form-data; boundary=b", MUTATION_AS_MULTIPART, id="multipart"),
    pytest.param("application/json; charset=latin-1", MUTATION_AS_JSON, id="json, not utf-8"),
    pytest.param("", MUTATION_AS_JSON, id="no content type"),
]


@pytest.mark.parametrize(("content_type", "content"), FORM_LIKE)
async def test_bodies_a_html_form_can_send_are_415(
    client: httpx.AsyncClient, sessions: Sessions, token_for: Callable[..., str], alice: User,
    content_type: str, content: bytes,
) -> None:
    headers = {**bearer(token_for, alice), "Content-Type": content_type}
    response = await client.post("/graphql", content=content, headers=headers)
    assert response.status_code == 415
    assert response.headers["accept-post"] == JSON
    assert await task_count(sessions) == 0


async def test_the_same_mutation_as_json_runs(
    client: httpx.AsyncClient, sessions: Sessions, token_for: Callable[..., str], alice: User
) -> None:
    headers = {**bearer(token_for, alice), "Content-Type": JSON}
    response = await client.post("/graphql", content=MUTATION_AS_JSON, headers=headers)
    assert response.status_code == 200
    assert await task_count(sessions) == 1


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          'Application/JSON; charset="UTF-8"'])
async def test_json_with_utf8_is_accepted(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        "/graphql", content=b'{"query": "{ viewer { id } }"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 200
    assert without_cost(response.json()) == {"data": {"viewer": None}}


MALFORMED = [
    pytest.param(b'{"query": ', id="malformed JSON"),
    pytest.param(b"[]", id="empty batch"),
    pytest.param(b'"{ viewer { id } }"', id="a string"),
    pytest.param(b"42", id="a number"),
    pytest.param(b'{"query": "{ viewer { id } }\xff"}', id="not UTF-8"),
    pytest.param(b"{}", id="missing query"),
    pytest.param(b'{"query": "   "}', id="blank query"),
    pytest.param(b'{"query": 7}', id="query not a string"),
    pytest.param(b'{"query": "{ viewer { id } }", "variables": [1]}', id="variables a list"),
    pytest.param(b'{"query": "{ viewer { id } }", "variables": "{}"}', id="variables a string"),
]


@pytest.mark.parametrize("content", MALFORMED)
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
async def test_malformed_requests_are_400(client: httpx.AsyncClient, content: bytes, accept: str) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"Content-Type": JSON, "Accept": accept}
    )
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_body_sent_in_pieces_is_read_whole(client: httpx.AsyncClient) -> None:
    text = orjson.dumps({"query": "{ __typename }", "operationName": None})

    async def pieces() -> AsyncIterator[bytes]:  # several `http.request` messages, no Content-Length
        for start in range(0, len(text), 7):
            yield text[start:start + 7]

    response = await client.post("/graphql", content=pieces(), headers={"Content-Type": JSON})
    assert response.status_code == 200 and response.json()["data"] == {"__typename": "Query"}


async def test_oversized_body_is_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    padded = {"query": VIEWER, "variables": {"pad": "x" * 2000}}
    async with serve(small) as http:
        declared = await http.post("/graphql", json=padded)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
            for _ in range(20):
                yield b" " * 100

        streamed = await http.post("/graphql", content=chunks(), headers={"Content-Type": JSON})
        within = await http.post("/graphql", json={"query": VIEWER, "variables": {"pad": "x" * 900}})
    assert (declared.status_code, streamed.status_code, within.status_code) == (413, 413, 200)
    assert codes(declared.json()) == ["BAD_USER_INPUT"]
    assert "1024" in declared.json()["errors"][0]["message"]


# --- authentication -----------------------------------------------------------------------------

BAD_AUTHORIZATION: dict[str, Callable[[Callable[..., str]], str]] = {
    "garbage": lambda mint: "Bearer garbage",
    "expired": lambda mint: f"Bearer {mint(ttl_seconds=-3600)}",
    "tampered": lambda mint: f"Bearer {mint()[:-6]}AAAAAA",
    "wrong scheme": lambda mint: "Basic YWxpY2U6c2VjcmV0",
    "no token": lambda mint: "Bearer",
}


@pytest.mark.parametrize("kind", BAD_AUTHORIZATION)
async def test_bad_token_is_401_never_anonymous(
    client: httpx.AsyncClient, token_for: Callable[..., str], alice: User, kind: str
) -> None:
    authorization = BAD_AUTHORIZATION[kind](lambda **kwargs: token_for(alice, **kwargs))
    headers = {"Authorization": authorization, "Accept": GRAPHQL_RESPONSE}
    response = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert codes(body) == ["UNAUTHENTICATED"]
    assert "data" not in body


async def test_expired_token_says_so(
    client: httpx.AsyncClient, token_for: Callable[..., str], alice: User
) -> None:
    headers = {"Authorization": f"Bearer {token_for(alice, ttl_seconds=-3600)}"}
    response = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert response.json()["errors"][0]["message"] == "The access token has expired."


# --- request ids and security headers -----------------------------------------------------------

EVERY_KIND_OF_RESPONSE = [
    pytest.param("POST", "/graphql", {"json": {"query": VIEWER}}, id="graphql 200"),
    pytest.param("POST", "/graphql", {"json": {"query": PARSE_ERROR}}, id="graphql parse error"),
    pytest.param("POST", "/graphql", {"content": b"x", "headers": {"Content-Type": "text/plain"}}, id="415"),
    pytest.param("DELETE", "/graphql", {}, id="405"),
    pytest.param("GET", "/healthz", {}, id="healthz"),
    pytest.param("GET", "/metrics", {}, id="metrics"),
    pytest.param("GET", "/no/such/path", {}, id="404"),
]


@pytest.mark.parametrize(("method", "path", "options"), EVERY_KIND_OF_RESPONSE)
async def test_every_response_has_request_id_and_security_headers(
    client: httpx.AsyncClient, method: str, path: str, options: dict[str, Any]
) -> None:
    response = await client.request(method, path, **options)
    assert GENERATED_REQUEST_ID.match(response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"


ERRORS_OF_EVERY_KIND = [
    pytest.param({"json": {"query": PARSE_ERROR}}, id="parse"),
    pytest.param({"json": {"query": UNKNOWN_FIELD}}, id="validation"),
    pytest.param({"json": {"query": MISSING_TASK}}, id="execution"),
    pytest.param({"content": b"{", "headers": {"Content-Type": JSON}}, id="transport"),
]


@pytest.mark.parametrize("options", ERRORS_OF_EVERY_KIND)
async def test_error_request_id_matches_header(
    client: httpx.AsyncClient, token_for: Callable[..., str], alice: User, options: dict[str, Any]
) -> None:
    options = {**options, "headers": {**bearer(token_for, alice), **options.get("headers", {})}}
    response = await client.post("/graphql", **options)
    [error] = response.json()["errors"]
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_sane_incoming_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": UNKNOWN_FIELD}, headers={"X-Request-ID": "client-req_0001.a"}
    )
    assert response.headers["x-request-id"] == "client-req_0001.a"
    assert response.json()["errors"][0]["extensions"]["requestId"] == "client-req_0001.a"


@pytest.mark.parametrize("incoming", ["has spaces in it", "x" * 500, "short", "<script>alert(1)</script>"])
async def test_insane_incoming_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.post("/graphql", json={"query": VIEWER}, headers={"X-Request-ID": incoming})
    assert GENERATED_REQUEST_ID.match(response.headers["x-request-id"])


# --- CORS ---------------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_preflight_from_allowed_origin(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"cors_origins": ["https://app.example"]})) as http:
        response = await http.options("/graphql", headers=preflight("https://app.example"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    allowed = response.headers["access-control-allow-headers"].lower().replace(" ", "").split(",")
    assert {"authorization", "content-type"} <= set(allowed)
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_preflight_from_other_origin_is_refused(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"cors_origins": ["https://app.example"]})) as http:
        response = await http.options("/graphql", headers=preflight("https://evil.example"))
    assert "access-control-allow-origin" not in response.headers


async def test_cross_origin_response_names_the_origin(settings: Settings) -> None:
    query = {"query": VIEWER}
    async with serve(settings.model_copy(update={"cors_origins": ["https://app.example"]})) as http:
        allowed = await http.post("/graphql", json=query, headers={"Origin": "https://app.example"})
        other = await http.post("/graphql", json=query, headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


def test_wildcard_origin_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="explicitly"):
        Settings(cors_origins=["*"])


def test_cors_origins_from_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_CORS_ORIGINS", '["https://app.example"]')
    assert Settings().cors_origins == ["https://app.example"]


def test_cors_origins_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TANDEM_CORS_ORIGINS", "https://app.example, https://admin.example")
    assert Settings().cors_origins == ["https://app.example", "https://admin.example"]


# --- connection limits --------------------------------------------------------------------------


async def test_default_page_size_is_20(gql: Gql, sessions: Sessions, alice: User) -> None:
    for n in range(25):
        await make_task(sessions, alice, f"Task {n}")
    body = await gql(TASKS, as_user=alice)
    assert len(body["data"]["tasks"]["edges"]) == 20
    assert body["data"]["tasks"]["pageInfo"]["hasNextPage"] is True


async def test_page_size_above_100_is_refused(gql: Gql, alice: User) -> None:
    body = await gql(TASKS, {"first": 101}, as_user=alice)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "100" in body["errors"][0]["message"]


BAD_PAGE_ARGUMENTS = [
    pytest.param({"first": -1}, id="negative first"),
    pytest.param({"last": -1}, id="negative last"),
    pytest.param({"last": 101}, id="last above 100"),
    pytest.param({"first": 5, "last": 5}, id="first and last"),
    pytest.param({"after": "garbage"}, id="cursor not base64"),
    pytest.param({"after": cursor("hello")}, id="cursor without offset"),
    pytest.param({"after": cursor("x:3")}, id="cursor of another kind"),
    pytest.param({"after": cursor("o:-5")}, id="negative cursor"),
    pytest.param({"after": cursor("o:99999999999999999999")}, id="cursor beyond 64 bits"),
    pytest.param({"after": cursor("o:2147483648")}, id="cursor beyond 32 bits"),
]


@pytest.mark.parametrize("variables", BAD_PAGE_ARGUMENTS)
async def test_bad_page_arguments_are_bad_user_input(
    gql: Gql, alice: User, variables: dict[str, Any]
) -> None:
    body = await gql(TASKS, variables, as_user=alice)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_accept_with_q_zero_refuses_the_graphql_response_type(client: httpx.AsyncClient) -> None:
    accept = f"{GRAPHQL_RESPONSE};q=0, application/json"
    response = await client.post("/graphql", json={"query": "{ nope }"}, headers={"Accept": accept})
    assert response.headers["content-type"].startswith("application/json")
    assert response.status_code == 200


async def test_unknown_operation_name_is_400_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "query A { __typename }", "operationName": "B"},
                                 headers={"Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
