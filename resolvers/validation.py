"""Input checks shared by every domain: each failure is a `BadUserInput` naming the field."""

from __future__ import annotations

import re
from datetime import datetime

from resolvers.errors import BadUserInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def required_text(value: str | None, field: str, max_length: int) -> str:
    if value is None:
        raise BadUserInput(f"`{field}` cannot be null.", field=field)
    text = value.strip()
    if not text:
        raise BadUserInput(f"`{field}` cannot be blank.", field=field)
    return optional_text(text, field, max_length)


def optional_text(value: str, field: str, max_length: int) -> str:
    if len(value) > max_length:
        raise BadUserInput(f"`{field}` is {len(value)} characters long; the maximum is {max_length}.", field=field)
    if "\x00" in value:
        raise BadUserInput(f"`{field}` must not contain NUL characters.", field=field)
    return value


def email(value: str | None, field: str = "email") -> str:
    address = required_text(value, field, 320).lower()
    if not EMAIL.match(address):
        raise BadUserInput(f"`{field}` is not an email address.", field=field)
    return address


def aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise BadUserInput(f"`{field}` needs a UTC offset, e.g. 2026-01-31T17:00:00Z.", field=field)
    return value


def not_null(value: object, field: str) -> None:
    if value is None:
        raise BadUserInput(f"`{field}` cannot be null.", field=field)
