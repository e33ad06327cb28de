"""Per-request DataLoaders: one bundle per request, created by the context factory, never global.

Loaders that depend on who is asking are bound to the viewer, so "not visible" and "missing" are the
same `None` everywhere.
"""

from __future__ import annotations

from db.engine import Sessions
from loaders.documents import DocumentLoaders
from loaders.tasks import TaskLoaders
from loaders.users import UserLoaders
from loaders.webhooks import WebhookLoaders

# Anonymous requests get loaders bound to a user id that never exists, so they see nothing.
NOBODY = 0


class Loaders:
    def __init__(self, sessions: Sessions, viewer_id: int | None) -> None:
        viewer = viewer_id if viewer_id is not None else NOBODY
        self.users = UserLoaders(sessions)
        self.tasks = TaskLoaders(sessions, viewer)
        self.documents = DocumentLoaders(sessions, viewer)
        self.webhooks = WebhookLoaders(sessions, viewer)
