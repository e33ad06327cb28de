"""Forward references between schema modules (users ↔ tasks ↔ documents), resolved by Strawberry later."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from schema.documents import Document
    from schema.realtime import DocumentSnapshot
    from schema.tasks import Task, TaskFilter, TaskOrder
    from schema.users import User

UserType = Annotated["User", strawberry.lazy("schema.users")]
TaskType = Annotated["Task", strawberry.lazy("schema.tasks")]
DocumentType = Annotated["Document", strawberry.lazy("schema.documents")]
DocumentSnapshotType = Annotated["DocumentSnapshot", strawberry.lazy("schema.realtime")]
TaskFilterType = Annotated["TaskFilter", strawberry.lazy("schema.tasks")]
TaskOrderType = Annotated["TaskOrder", strawberry.lazy("schema.tasks")]
