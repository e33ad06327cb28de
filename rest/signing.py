"""Standard Webhooks signatures (https://www.standardwebhooks.com), through the reference library.

Signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 with the secret's key,
sent as `v1,<base64>`; several signatures are separated by spaces (one per live secret during a
rotation), and a receiver accepts the message if any of them verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOLERANCE_SECONDS = 5 * 60  # the reference library's window, which we enforce ourselves first


def signature_header(secrets: Iterable[str], message_id: str, timestamp: datetime, body: str) -> str:
    return " ".join(Webhook(secret).sign(message_id, timestamp.astimezone(UTC), body) for secret in secrets)


def headers_for(secrets: Iterable[str], message_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt (a fresh timestamp every time)."""
    timestamp = (now or datetime.now(UTC)).replace(microsecond=0)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(secrets, message_id, timestamp, body),
    }


def verifies(secrets: Iterable[str], body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether any of `secrets` signed `body` with these headers (timestamps checked by the caller)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return False
    wanted = {name: headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    for secret in secrets:
        try:
            Webhook(secret).verify(text, wanted, json_parse=False)
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed `v1,...` entry
            continue
        return True
    return False
