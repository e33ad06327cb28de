"""Tables behind collaborative documents: the append-only update log, its compacted state, snapshots.

A document's content is a Yjs document (pycrdt). Every accepted update is appended to
`document_updates` with the document's next `version` in the same transaction that bumps
`documents.version`, so an acknowledged update is durable and versions have no gaps. Compaction
folds the oldest part of the log into `document_states` (one merged Yjs update per document).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from db.models import Base, UTCDateTime, utcnow


class DocumentUpdate(Base):
    """One Yjs v1 update, as accepted; `version` is the document's version right after it."""

    __tablename__ = "document_updates"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class DocumentState(Base):
    """All updates up to `version`, merged into one Yjs update; the log holds only what came after."""

    __tablename__ = "document_states"

    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class DocumentSnapshot(Base):
    """A named copy of a document's full state at `version`, restorable later."""

    __tablename__ = "document_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
