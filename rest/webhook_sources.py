"""Configured inbound webhook sources: who may call `POST /webhooks/{name}`, with which secrets,
acting as which user. Given as JSON in `TANDEM_WEBHOOK_SOURCES`, e.g.::

    [{"name": "crm", "secrets": ["whsec_new...", "whsec_old..."], "act_as": "bot@example.com"}]

Several secrets are accepted at once so a sender can rotate without a window of refused calls:
add the new secret, switch the sender over, then drop the old one.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

SOURCE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24  # Standard Webhooks asks for 24 to 64 random bytes


def secret_bytes(secret: str) -> bytes:
    """The key inside a `whsec_<base64>` secret; `ValueError` when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= 64:
        raise ValueError(f"a webhook secret holds {MIN_SECRET_BYTES} to 64 random bytes")
    return key


class WebhookSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=SOURCE_NAME)]
    secrets: list[str] = Field(min_length=1, max_length=5)
    act_as: Annotated[str, StringConstraints(min_length=3, max_length=320)] = Field(
        description="The email of the user whose rights the source's events use."
    )

    @field_validator("secrets")
    @classmethod
    def _valid_secrets(cls, secrets: list[str]) -> list[str]:
        for secret in secrets:
            secret_bytes(secret)
        return secrets

    @field_validator("act_as")
    @classmethod
    def _lower_email(cls, value: str) -> str:
        return value.strip().lower()


def by_name(sources: list[WebhookSource]) -> dict[str, WebhookSource]:
    """Sources keyed by name; `ValueError` when two share one."""
    named: dict[str, WebhookSource] = {}
    for source in sources:
        if source.name in named:
            raise ValueError(f"two webhook sources are named {source.name!r}")
        named[source.name] = source
    return named
