"""Short-lived shared state in the database: sign-in sessions, attempt counters, sliding windows, and
revocations.

They used to live in Redis alone, so a Redis outage stopped sign-in and revocation. In the database
every instance sees them and they survive restarts; Redis still carries revocations to each
instance's memory (auth/revocation_replica.py), so checking a token costs no query.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base, UTCDateTime


class ExpiringEntry(Base):
    """A value (or a counter, as text) under a key, until `expires_at`."""

    __tablename__ = "expiring_entries"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WindowHit(Base):
    """One hit in a sliding window (registrations per address, say)."""

    __tablename__ = "window_hits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Revocation(Base):
    """A revoked token (`jti:<id>`) or session (`sid:<id>`), until no token it covers can be valid."""

    __tablename__ = "revocations"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
