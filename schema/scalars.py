"""Scalars of our own: `Base64`, strict (Strawberry's silently drops characters outside the alphabet).

Registered through `StrawberryConfig.scalar_map` in `build_schema` (`SCALARS`).
"""

from __future__ import annotations

import base64
import binascii
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

Base64 = NewType("Base64", bytes)


def _parse_base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("Base64 values are strings.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Not valid Base64 (standard alphabet, with padding).") from None


def _serialize_base64(value: bytes) -> str:
    return base64.b64encode(value).decode()


SCALARS: dict[object, ScalarDefinition] = {
    Base64: strawberry.scalar(
        name="Base64",
        description="Binary data as Base64 (RFC 4648 §4: standard alphabet, padded).",
        specified_by_url="https://datatracker.ietf.org/doc/html/rfc4648.html#section-4",
        serialize=_serialize_base64,
        parse_value=_parse_base64,
    ),
}
