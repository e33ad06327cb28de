"""What travels through the broker: small JSON messages, one channel per document plus one for tasks."""

from __future__ import annotations

import enum
from typing import Any

import orjson

TASKS_CHANNEL = "tasks"

Event = dict[str, Any]


class DocumentEventKind(enum.StrEnum):
    UPDATE = "UPDATE"  # a Yjs update, with the version it produced
    CURSOR = "CURSOR"  # someone's cursor/selection moved (ephemeral)
    JOINED = "JOINED"  # someone started watching the document
    LEFT = "LEFT"  # their last subscription ended, or their presence timed out
    SNAPSHOT = "SNAPSHOT"  # a snapshot was created
    ACCESS = "ACCESS"  # internal: collaborators changed or the document was deleted; subscribers recheck


class TaskEventKind(enum.StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


def document_channel(document_id: int) -> str:
    return f"document:{document_id}"


def encode(event: Event) -> bytes:
    return orjson.dumps(event)


def decode(message: bytes) -> Event:
    event: Event = orjson.loads(message)
    return event
