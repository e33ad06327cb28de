"""Webhook signing secrets are stored sealed (AES-GCM under TANDEM_SECRET_KEY): the database alone
signs nothing. Keys rotate (the newest seals, every configured one opens; `tandem secrets reseal`
moves rows to the newest), production refuses to start without a key, and a secret no configured
key opens fails its deliveries, saying so, rather than sending them unsigned."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from app.main import create_app
from app.secrets import SecretKeyRefused
from app.settings import Settings
from db.secret_box import SecretBox, UndecryptableSecret, new_key, parse_keys
from db.webhooks import WebhookEndpoint
from tests.factories import make_user
from tests.rest.conftest import CREATE_ENDPOINT, Receiver, eventually, own_app

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CREATE_TASK = """mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"""
ATTEMPTS = """query($id: ID!) { webhookEndpoint(id: $id) { deliveries { nodes { status attempts { outcome error } } } } }"""


def _with_keys(settings: Settings, *keys: str) -> Settings:
    return Settings.model_validate({**settings.model_dump(), "secret_key": ",".join(keys)})


async def _stored(own: Any) -> list[tuple[str, str | None]]:
    async with own.sessions() as session:
        return [tuple(row) for row in (await session.execute(
            select(WebhookEndpoint.secret, WebhookEndpoint.previous_secret))).all()]


async def _create(own: Any, user: Any, url: str) -> tuple[str, str]:
    body = await own.graphql(user, CREATE_ENDPOINT, {"input": {"url": url, "events": ["TASK_CREATED"]}})
    payload = body["data"]["createWebhookEndpoint"]
    return payload["endpoint"]["id"], payload["secret"]


async def _delivered(own: Any, user: Any, receiver: Receiver, before: int) -> Any:
    await own.graphql(user, CREATE_TASK, {"title": "Sealed"})
    await eventually(lambda: receiver.count() > before, "a delivery")
    return receiver.received[-1]


@sqlite_only
async def test_secrets_are_stored_sealed_and_keys_rotate(settings: Settings, receiver: Receiver) -> None:
    old, new = new_key(), new_key()
    async with own_app(_with_keys(settings, old)) as own:
        alice = await make_user(own.sessions, "Alice")
        endpoint_id, secret = await _create(own, alice, receiver.url)
        [(stored, _)] = await _stored(own)
        assert stored.startswith("enc1:") and secret not in stored and secret.removeprefix("whsec_") not in stored
        Webhook(secret).verify((m := await _delivered(own, alice, receiver, 0)).body, m.headers)

    # A new key in front: old rows still open, and `reseal` moves them to the new key.
    rotated = _with_keys(settings, new, old)
    async with own_app(rotated) as own:
        Webhook(secret).verify((m := await _delivered(own, alice, receiver, 1)).body, m.headers)
    reseal = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "app.cli", "secrets", "reseal", "--json"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "TANDEM_DATABASE_URL": settings.database_url, "TANDEM_SECRET_KEY": f"{new},{old}",
             "TANDEM_KEYS_DIR": str(settings.keys_dir)})
    assert reseal.returncode == 0, reseal.stderr
    assert json.loads(reseal.stdout) == {"resealed": 1, "unreadable": []}
    async with own_app(_with_keys(settings, new)) as own:  # the old key dropped
        [(stored, _)] = await _stored(own)
        assert SecretBox(parse_keys(new)).is_current(stored)
        Webhook(secret).verify((m := await _delivered(own, alice, receiver, 2)).body, m.headers)

    # With no key that opens it, deliveries fail, say why, and nothing unsigned is sent.
    async with own_app(_with_keys(settings, new_key())) as own:
        sent = receiver.count()
        await own.graphql(alice, CREATE_TASK, {"title": "Unsigned?"})

        async def failed() -> Any:
            nodes = (await own.graphql(alice, ATTEMPTS, {"id": endpoint_id}))["data"]["webhookEndpoint"][
                "deliveries"]["nodes"]
            attempts = [a for n in nodes for a in n["attempts"] if a["error"] and "decrypted" in a["error"]]
            return attempts[0] if attempts else None

        attempt = await eventually(failed, "a failed attempt")
        assert attempt["outcome"] == "FAILED" and receiver.count() == sent


def test_a_sealed_secret_opens_only_with_its_key_and_column() -> None:
    box = SecretBox(parse_keys(new_key()))
    sealed = box.seal("whsec_abc", context="one")
    assert box.open(sealed, context="one") == "whsec_abc"
    with pytest.raises(UndecryptableSecret):
        box.open(sealed, context="another")
    with pytest.raises(UndecryptableSecret):
        SecretBox(parse_keys(new_key())).open(sealed, context="one")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(UndecryptableSecret):
        box.open(tampered, context="one")
    assert box.open("whsec_legacy", context="one") == "whsec_legacy"  # stored before keys were configured


@sqlite_only
@pytest.mark.parametrize("value", ["not base64 !", "c2hvcnQ", f"{new_key()},c2hvcnQ"])
def test_bad_keys_are_refused_with_a_reason(settings: Settings, value: str) -> None:
    with pytest.raises(SecretKeyRefused, match="TANDEM_SECRET_KEY"):
        create_app(_with_keys(settings, value))


@sqlite_only
def test_production_refuses_to_start_without_a_key(settings: Settings) -> None:
    production = Settings.model_validate({**settings.model_dump(), "env": "production", "secret_key": None})
    with pytest.raises(SecretKeyRefused, match="TANDEM_SECRET_KEY is required in production"):
        create_app(production)
