"""Opaque global IDs (`base64("Task:42")`), shared by the schema and by what we send and accept
outside GraphQL (webhook payloads), so every surface names an object the same way."""

from __future__ import annotations

import base64
import binascii

from resolvers.errors import BadUserInput, NotFound

MAX_KEY = 2**31 - 1  # primary keys are 32-bit INTEGER columns


def encode_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_any_id(global_id: str, field: str = "id") -> tuple[str, int]:
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        number = int(pk)
    except (binascii.Error, UnicodeError, ValueError):
        raise BadUserInput(f"`{field}` is not a valid ID.", field=field) from None
    if not type_name or number <= 0:
        raise BadUserInput(f"`{field}` is not a valid ID.", field=field)
    if number > MAX_KEY:
        raise NotFound("Nothing has this ID.")  # well-formed, but no row can have it
    return type_name, number


def decode_id(global_id: str, type_name: str, field: str = "id") -> int:
    found_type, pk = decode_any_id(global_id, field)
    if found_type != type_name:
        raise BadUserInput(f"`{field}` must be the ID of a {type_name}.", field=field)
    return pk
