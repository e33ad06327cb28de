"""The scopes Tandem understands; a token may carry any subset."""

from __future__ import annotations

OPENID = "openid"
EMAIL = "email"
PROFILE = "profile"
TASKS_READ = "tasks:read"
TASKS_WRITE = "tasks:write"
DOCUMENTS_READ = "documents:read"
DOCUMENTS_WRITE = "documents:write"
# Admin powers need both this scope and an admin account: a member's token never gets it.
ADMIN = "admin"
WEBHOOKS = "webhooks"

# What the consent page tells a person they are granting.
DESCRIPTIONS = {
    OPENID: "Know who you are (your Tandem user id)",
    EMAIL: "See your email address",
    PROFILE: "See and change your name, email and password",
    TASKS_READ: "See your tasks and the tasks shared with you",
    TASKS_WRITE: "Create, change and delete tasks",
    DOCUMENTS_READ: "See your documents and the documents shared with you",
    DOCUMENTS_WRITE: "Create, change, share and delete documents",
    ADMIN: "Act as an administrator",
    WEBHOOKS: "Manage your outbound webhook endpoints and see their deliveries",
}

ALL = frozenset(DESCRIPTIONS)
