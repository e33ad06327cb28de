"""The scopes Tandem understands; a token may carry any subset."""

from __future__ import annotations

PROFILE = "profile"
TASKS_READ = "tasks:read"
TASKS_WRITE = "tasks:write"
DOCUMENTS_READ = "documents:read"
DOCUMENTS_WRITE = "documents:write"
WEBHOOKS = "webhooks"  # manage your outbound webhook endpoints and see their deliveries

ALL = frozenset({"openid", PROFILE, "email", TASKS_READ, TASKS_WRITE, DOCUMENTS_READ, DOCUMENTS_WRITE, WEBHOOKS})
