"""Managing outbound endpoints through GraphQL: ownership, scopes, limits, input rules, rotation,
pausing and redelivery; and the SSRF rules, which refuse private and loopback targets in production."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from standardwebhooks import Webhook

from app.settings import Settings
from db.engine import Sessions
from db.models import User, utcnow
from db.webhooks import WebhookEndpoint
from resolvers.webhooks import MAX_ENDPOINTS_PER_USER
from tests.conftest import Gql, codes
from tests.factories import make_user
from tests.rest.conftest import (
    CREATE_ENDPOINT,
    Receiver,
    create_endpoint,
    endpoint_state,
    eventually,
    own_app,
)

CREATE_TASK = """mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"""
LIST = "{ webhookEndpoints { totalCount nodes { id url description events enabled } } }"
UPDATE = """mutation($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) {
  endpoint { id url events description enabled disabledAt disabledReason } userErrors { field message code } } }"""
ROTATE = """mutation($id: ID!) { rotateWebhookSecret(input: {id: $id}) { secret endpoint { id } userErrors { code } } }"""
DELETE = """mutation($id: ID!) { deleteWebhookEndpoint(input: {id: $id}) { deletedWebhookEndpointId userErrors { code } } }"""
REDELIVER = """mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id}) { delivery { id status } userErrors { field code message } } }"""
DELIVERY = """query($id: ID!) { webhookDelivery(id: $id) { status endpoint { id } } }"""
NODE = """query($id: ID!) { node(id: $id) { id ... on WebhookEndpoint { url } } }"""
ENDPOINT_URL = "http://127.0.0.1:9/hook"  # never called: these tests create no events


def _create_input(url: str = ENDPOINT_URL, events: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"input": {"url": url, "events": events if events is not None else ["TASK_CREATED"], **extra}}


async def _user_errors(gql: Gql, user: User, url: str, events: list[str] | None = None) -> list[dict[str, Any]]:
    body = await gql(CREATE_ENDPOINT, _create_input(url, events), as_user=user)
    errors: list[dict[str, Any]] = body["data"]["createWebhookEndpoint"]["userErrors"]
    return errors


# --- managing endpoints -------------------------------------------------------------------------


async def test_create_shows_the_secret_once_and_lists_without_it(gql: Gql, alice: User) -> None:
    body = await gql(CREATE_ENDPOINT, _create_input(description="CI", events=["TASK_CREATED", "TASK_DELETED"]),
                     as_user=alice)
    payload = body["data"]["createWebhookEndpoint"]
    assert payload["secret"].startswith("whsec_") and len(payload["secret"]) > 40
    Webhook(payload["secret"])  # a secret the reference library accepts
    listed = (await gql(LIST, as_user=alice))["data"]["webhookEndpoints"]
    assert listed["totalCount"] == 1
    assert listed["nodes"][0] == {"id": payload["endpoint"]["id"], "url": ENDPOINT_URL, "description": "CI",
                                  "events": ["TASK_CREATED", "TASK_DELETED"], "enabled": True}
    assert payload["secret"] not in json.dumps(await gql(LIST, as_user=alice))


async def test_someone_elses_endpoint_is_not_found(gql: Gql, alice: User, bob: User) -> None:
    endpoint_id, _ = await create_endpoint(gql, alice, ENDPOINT_URL)
    assert (await gql(LIST, as_user=bob))["data"]["webhookEndpoints"]["totalCount"] == 0
    assert codes(await gql(NODE, {"id": endpoint_id}, as_user=bob)) == ["NOT_FOUND"]
    assert codes(await gql(ROTATE, {"id": endpoint_id}, as_user=bob)) == ["NOT_FOUND"]
    assert codes(await gql(DELETE, {"id": endpoint_id}, as_user=bob)) == ["NOT_FOUND"]
    assert codes(await gql(UPDATE, {"input": {"id": endpoint_id, "enabled": False}}, as_user=bob)) == ["NOT_FOUND"]
    assert (await gql(NODE, {"id": endpoint_id}, as_user=alice))["data"]["node"]["url"] == ENDPOINT_URL


async def test_needs_the_webhooks_scope_and_a_user(gql: Gql, alice: User) -> None:
    assert codes(await gql(LIST, as_user=alice, scope={"tasks:read"})) == ["FORBIDDEN"]
    assert codes(await gql(CREATE_ENDPOINT, _create_input(), as_user=alice, scope={"tasks:write"})) == ["FORBIDDEN"]
    assert codes(await gql(LIST)) == ["UNAUTHENTICATED"]


async def test_at_most_twenty_endpoints(gql: Gql, alice: User) -> None:
    for _ in range(MAX_ENDPOINTS_PER_USER):
        await create_endpoint(gql, alice, ENDPOINT_URL)
    errors = await _user_errors(gql, alice, ENDPOINT_URL)
    assert errors == [{"field": "url", "code": "BAD_USER_INPUT",
                       "message": "You already have 20 webhook endpoints, the most allowed; delete one first."}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("url", "message"), [
    ("ftp://127.0.0.1/x", "`url` must be an http:// or https:// URL."),
    ("https:///nohost", "`url` must be an http:// or https:// URL."),
    ("http://user:pw@127.0.0.1/x", "`url` must not contain credentials; the signature authenticates us."),
    ("http://127.0.0.1:99999/x", "`url` is not a valid URL."),
    ("http://127.0.0.1/x#frag", "`url` must not have a #fragment."),
    ("http://127.0.0.1/a b", "`url` must not contain spaces or control characters."),
    ("http://127.0.0.1/" + "x" * 2000, "`url` must be a URL of at most 2000 characters."),
    ("", "`url` must be a URL of at most 2000 characters."),
])
async def test_malformed_urls_are_refused(gql: Gql, alice: User, url: str, message: str) -> None:
    assert await _user_errors(gql, alice, url) == [{"field": "url", "message": message, "code": "BAD_USER_INPUT"}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_description_is_bounded(gql: Gql, alice: User) -> None:
    body = await gql(CREATE_ENDPOINT, _create_input(description="d" * 501), as_user=alice)
    assert body["data"]["createWebhookEndpoint"]["userErrors"] == [{
        "field": "description", "code": "BAD_USER_INPUT",
        "message": "`description` is 501 characters long; the maximum is 500."}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_events_must_be_given_and_known(gql: Gql, alice: User) -> None:
    assert await _user_errors(gql, alice, ENDPOINT_URL, []) == [
        {"field": "events", "message": "Subscribe to at least one event type.", "code": "BAD_USER_INPUT"}]
    body = await gql(CREATE_ENDPOINT, _create_input(events=["TASK_EXPLODED"]), as_user=alice)
    assert codes(body) == ["BAD_USER_INPUT"]  # not an enum value: refused before anything runs


async def test_update_changes_only_what_is_given(gql: Gql, alice: User) -> None:
    endpoint_id, _ = await create_endpoint(gql, alice, ENDPOINT_URL)
    body = await gql(UPDATE, {"input": {"id": endpoint_id, "description": "new", "events": ["DOCUMENT_SHARED"]}},
                     as_user=alice)
    endpoint = body["data"]["updateWebhookEndpoint"]["endpoint"]
    assert (endpoint["url"], endpoint["description"], endpoint["events"], endpoint["enabled"]) == (
        ENDPOINT_URL, "new", ["DOCUMENT_SHARED"], True)
    paused = await gql(UPDATE, {"input": {"id": endpoint_id, "enabled": False}}, as_user=alice)
    endpoint = paused["data"]["updateWebhookEndpoint"]["endpoint"]
    assert endpoint["enabled"] is False and endpoint["disabledReason"] == "Disabled by its owner."
    nulled = await gql(UPDATE, {"input": {"id": endpoint_id, "enabled": None}}, as_user=alice)
    assert nulled["data"]["updateWebhookEndpoint"]["userErrors"][0]["field"] == "enabled"
    bad = await gql(UPDATE, {"input": {"id": endpoint_id, "url": "gopher://x"}}, as_user=alice)
    assert bad["data"]["updateWebhookEndpoint"]["userErrors"][0]["field"] == "url"


async def test_delete_removes_it(gql: Gql, alice: User) -> None:
    endpoint_id, _ = await create_endpoint(gql, alice, ENDPOINT_URL)
    body = await gql(DELETE, {"id": endpoint_id}, as_user=alice)
    assert body["data"]["deleteWebhookEndpoint"]["deletedWebhookEndpointId"] == endpoint_id
    assert codes(await gql(NODE, {"id": endpoint_id}, as_user=alice)) == ["NOT_FOUND"]


# --- against a receiver -------------------------------------------------------------------------


async def test_rotation_signs_with_both_secrets_for_a_while(gql: Gql, alice: User, receiver: Receiver) -> None:
    endpoint_id, old = await create_endpoint(gql, alice, receiver.url)
    new = (await gql(ROTATE, {"id": endpoint_id}, as_user=alice))["data"]["rotateWebhookSecret"]["secret"]
    assert new != old and new.startswith("whsec_")
    await gql(CREATE_TASK, {"title": "After rotation"}, as_user=alice)
    await eventually(receiver.count, "a delivery")
    message = receiver.received[0]
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):  # a receiver with either secret accepts it
        Webhook(secret).verify(message.body, message.headers)


async def test_paused_endpoint_gets_nothing_until_resumed(gql: Gql, alice: User, receiver: Receiver) -> None:
    endpoint_id, _ = await create_endpoint(gql, alice, receiver.url)
    await gql(UPDATE, {"input": {"id": endpoint_id, "enabled": False}}, as_user=alice)
    await gql(CREATE_TASK, {"title": "While paused"}, as_user=alice)
    assert (await endpoint_state(gql, alice, endpoint_id))["deliveries"]["totalCount"] == 0
    await gql(UPDATE, {"input": {"id": endpoint_id, "enabled": True}}, as_user=alice)
    await gql(CREATE_TASK, {"title": "After resuming"}, as_user=alice)
    await eventually(receiver.count, "the delivery after resuming")
    assert [json.loads(m.body)["data"]["task"]["title"] for m in receiver.received] == ["After resuming"]


async def test_redeliver_sends_the_same_event_again(gql: Gql, alice: User, bob: User, receiver: Receiver) -> None:
    endpoint_id, _ = await create_endpoint(gql, alice, receiver.url)
    await gql(CREATE_TASK, {"title": "Again"}, as_user=alice)

    async def succeeded() -> str | None:
        nodes = (await endpoint_state(gql, alice, endpoint_id))["deliveries"]["nodes"]
        return nodes[0]["id"] if nodes and nodes[0]["status"] == "SUCCEEDED" else None

    delivery_id = await eventually(succeeded, "the first delivery")
    assert codes(await gql(REDELIVER, {"id": delivery_id}, as_user=bob)) == ["NOT_FOUND"]
    assert codes(await gql(DELIVERY, {"id": delivery_id}, as_user=bob)) == ["NOT_FOUND"]
    mine = (await gql(DELIVERY, {"id": delivery_id}, as_user=alice))["data"]["webhookDelivery"]
    assert (mine["status"], mine["endpoint"]["id"]) == ("SUCCEEDED", endpoint_id)
    body = await gql(REDELIVER, {"id": delivery_id}, as_user=alice)
    assert body["data"]["redeliverWebhook"]["delivery"]["status"] == "PENDING"
    await eventually(lambda: receiver.count() == 2, "the redelivery")
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    state = await eventually(succeeded, "the redelivery's record")
    assert state == delivery_id
    attempts = (await endpoint_state(gql, alice, endpoint_id))["deliveries"]["nodes"][0]["attempts"]
    assert [a["number"] for a in attempts] == [1, 2]

    await gql(UPDATE, {"input": {"id": endpoint_id, "enabled": False}}, as_user=alice)
    refused = await gql(REDELIVER, {"id": delivery_id}, as_user=alice)
    assert refused["data"]["redeliverWebhook"]["userErrors"] == [
        {"field": "deliveryId", "code": "BAD_USER_INPUT", "message": "The endpoint is disabled; enable it first."}]
    wrong_type = await gql(REDELIVER, {"id": endpoint_id}, as_user=alice)
    assert wrong_type["data"]["redeliverWebhook"]["userErrors"][0]["field"] == "deliveryId"


async def test_endpoint_failing_for_three_days_is_disabled_and_its_owner_told(
    gql: Gql, alice: User, sessions: Sessions, receiver: Receiver
) -> None:
    receiver.script = [503] * 50
    failing_id, _ = await create_endpoint(gql, alice, receiver.url + "/failing")
    watcher_id, _ = await create_endpoint(gql, alice, receiver.url + "/watcher", ["WEBHOOK_ENDPOINT_DISABLED"])
    # Its failure streak began four days ago (the clock is not ours to fast-forward).
    async with sessions.begin() as session:
        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.url.endswith("/failing"))
                              .values(failing_since=utcnow() - timedelta(days=4)))
    await gql(CREATE_TASK, {"title": "Into the void"}, as_user=alice)

    state = await eventually(
        lambda: _disabled(gql, alice, failing_id), "the failing endpoint being disabled")
    assert state["disabledReason"] == "Every attempt failed for 3 days."
    assert [d["status"] for d in state["deliveries"]["nodes"]] == ["FAILED"]
    receiver.script = []
    notice = await eventually(lambda: [m for m in receiver.received if m.path.endswith("/watcher")],
                              "the notice to the owner's other endpoint")
    payload = json.loads(notice[0].body)
    assert payload["type"] == "webhook_endpoint.disabled"
    assert payload["data"]["endpoint"]["id"] == failing_id
    assert watcher_id != failing_id


async def _disabled(gql: Gql, user: User, endpoint_id: str) -> dict[str, Any] | None:
    state = await endpoint_state(gql, user, endpoint_id)
    return state if not state["enabled"] else None


# --- SSRF: production refuses private targets ----------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_production_refuses_private_and_loopback_targets(settings: Settings) -> None:
    production = settings.model_copy(update={"env": "production", "webhook_worker": False})
    refused = {
        "http://example.com/hook": "`url` must use https://.",
        "https://127.0.0.1/hook": "private or reserved address (127.0.0.1)",
        "https://localhost/hook": "private or reserved address",
        "https://10.1.2.3/hook": "private or reserved address (10.1.2.3)",
        "https://192.168.0.1/hook": "private or reserved address",
        "https://169.254.169.254/latest/meta-data": "private or reserved address (169.254.169.254)",
        "https://100.64.0.1/hook": "private or reserved address",
        "https://[::1]/hook": "private or reserved address (::1)",
        "https://[::ffff:127.0.0.1]/hook": "private or reserved address",
        "https://[fd00::1]/hook": "private or reserved address",
        "https://0.0.0.0/hook": "private or reserved address",
        "https://224.0.0.1/hook": "private or reserved address",
        # IPv6 forms that lead to an IPv4 address: refused unless that address is public.
        "https://[::127.0.0.1]/hook": "private or reserved address",  # IPv4-compatible
        "https://[::ffff:0:10.0.0.1]/hook": "private or reserved address",  # IPv4-translated
        "https://[64:ff9b::7f00:1]/hook": "private or reserved address",  # NAT64 of 127.0.0.1
        "https://[64:ff9b::a9fe:a9fe]/hook": "private or reserved address",  # NAT64 of 169.254.169.254
        "https://[64:ff9b:1::5db8:d70e]/hook": "private or reserved address",  # local-use NAT64
        "https://[2002:7f00:1::]/hook": "private or reserved address",  # 6to4 of 127.0.0.1
        "https://[2002:a00:1::1]/hook": "private or reserved address",  # 6to4 of 10.0.0.1
        "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook": "private or reserved address",  # Teredo, client 10.0.0.1
        "https://[fec0::1]/hook": "private or reserved address",  # site-local
        "https://[::]/hook": "private or reserved address",
        "https://[ff02::1]/hook": "private or reserved address",
        "https://[2001:db8::1]/hook": "private or reserved address",  # documentation
    }
    async with own_app(production) as own:
        alice = await make_user(own.sessions, "Alice")
        for url, reason in refused.items():
            body = await own.graphql(alice, CREATE_ENDPOINT, _create_input(url))
            errors = body["data"]["createWebhookEndpoint"]["userErrors"]
            assert [(e["field"], e["code"]) for e in errors] == [("url", "BAD_USER_INPUT")], url
            assert reason in errors[0]["message"], (url, errors[0]["message"])
        # A public address is fine (nothing is sent: no event happens and the worker is off).
        for public in ("https://93.184.215.14/hook", "https://[64:ff9b::5db8:d70e]/hook",
                       "https://[2002:5db8:d70e::1]/hook", "https://[2606:2800:220:1::]/hook"):
            allowed = await own.graphql(alice, CREATE_ENDPOINT, _create_input(public))
            assert allowed["data"]["createWebhookEndpoint"]["userErrors"] == [], public


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_production_blocks_a_delivery_whose_target_turned_private(settings: Settings, receiver: Receiver) -> None:
    """DNS can change after an endpoint was checked: every attempt checks again, and connects to the
    very address it checked. Here the stored URL now points at loopback, so nothing may be sent."""
    async with own_app(settings.model_copy(update={"env": "production"})) as own:
        alice = await make_user(own.sessions, "Alice")
        body = await own.graphql(alice, CREATE_ENDPOINT, _create_input("https://93.184.215.14/hook"))
        endpoint_id = body["data"]["createWebhookEndpoint"]["endpoint"]["id"]
        async with own.sessions.begin() as session:
            await session.execute(update(WebhookEndpoint).values(url=receiver.url))
        await own.graphql(alice, CREATE_TASK, {"title": "Nope"})

        async def blocked() -> dict[str, Any] | None:
            state = await own.graphql(alice, _ATTEMPTS, {"id": endpoint_id})
            nodes = state["data"]["webhookEndpoint"]["deliveries"]["nodes"]
            attempts = nodes[0]["attempts"] if nodes else []
            return attempts[0] if attempts else None

        attempt = await eventually(blocked, "a blocked attempt")
    assert attempt["outcome"] == "BLOCKED"
    assert "private or reserved address (127.0.0.1)" in attempt["error"]
    assert receiver.count() == 0


_ATTEMPTS = """query($id: ID!) { webhookEndpoint(id: $id) { deliveries { nodes { attempts { outcome error } } } } }"""
