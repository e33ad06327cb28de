"""Demo data for a first look: a demo user, a teammate, a few tasks and documents. Idempotent."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update

from auth import scopes
from auth.oauth.data import client_by_id, create_client
from auth.oauth.models import AUTHORIZATION_CODE, REFRESH_TOKEN
from auth.passwords import hash_password
from db.engine import Sessions
from db.models import (
    CollaboratorRole,
    Document,
    DocumentCollaborator,
    Task,
    TaskLabel,
    TaskStatus,
    User,
    utcnow,
)
from db.oauth import OAuthClient, as_list
from resolvers.users import create_user, user_by_email

DEMO_EMAIL = "demo@tandem.local"
DEMO_PASSWORD = "tandem-demo"
TEAMMATE_EMAIL = "sam@tandem.local"
# The public OAuth client GraphiQL signs in with (`Settings.graphiql_client_id`).
DEMO_CLIENT_ID = "tandem-demo"


def graphiql_redirect_uris(issuer: str) -> list[str]:
    """GraphiQL's own page is its redirect URI; on loopback, under both names people type."""
    parts = urlsplit(issuer.rstrip("/"))
    uris = [urlunsplit((parts.scheme, parts.netloc, parts.path + "/graphql", "", ""))]
    aliases = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}
    if parts.hostname in aliases:
        netloc = aliases[parts.hostname] + (f":{parts.port}" if parts.port else "")
        uris.append(urlunsplit((parts.scheme, netloc, parts.path + "/graphql", "", "")))
    return uris


async def ensure_demo_client(sessions: Sessions, issuer: str, client_id: str = DEMO_CLIENT_ID) -> bool:
    """The GraphiQL client, public (PKCE, no secret); returns whether it was created. Idempotent."""
    redirect_uris = graphiql_redirect_uris(issuer)
    existing = await client_by_id(sessions, client_id)
    if existing is None:
        await create_client(sessions, name="Tandem GraphiQL", redirect_uris=redirect_uris, scope=sorted(scopes.ALL),
                            grant_types=[AUTHORIZATION_CODE, REFRESH_TOKEN], confidential=False, client_id=client_id)
        return True
    missing = [uri for uri in redirect_uris if uri not in as_list(existing.redirect_uris)]
    if missing:  # the issuer moved (another port): GraphiQL there must be able to sign in too
        async with sessions.begin() as session:
            await session.execute(update(OAuthClient).where(OAuthClient.client_id == client_id)
                                  .values(redirect_uris=[*as_list(existing.redirect_uris), *missing]))
    return False


async def seed(sessions: Sessions) -> tuple[User, bool]:
    """Returns the demo user and whether anything was created."""
    existing = await user_by_email(sessions, DEMO_EMAIL)
    if existing is not None:
        return existing, False
    demo = await create_user(sessions, email=DEMO_EMAIL, name="Demo User", password_hash=hash_password(DEMO_PASSWORD))
    sam = await user_by_email(sessions, TEAMMATE_EMAIL) or await create_user(
        sessions, email=TEAMMATE_EMAIL, name="Sam Teammate", password_hash=None
    )
    now = utcnow()
    async with sessions.begin() as session:
        plan = Document(title="Launch plan", owner_id=demo.id)
        notes = Document(title="Meeting notes", owner_id=sam.id)
        session.add_all([plan, notes])
        await session.flush()
        session.add_all([
            DocumentCollaborator(document_id=plan.id, user_id=demo.id, role=CollaboratorRole.OWNER.value),
            DocumentCollaborator(document_id=plan.id, user_id=sam.id, role=CollaboratorRole.EDITOR.value),
            DocumentCollaborator(document_id=notes.id, user_id=sam.id, role=CollaboratorRole.OWNER.value),
            DocumentCollaborator(document_id=notes.id, user_id=demo.id, role=CollaboratorRole.VIEWER.value),
        ])
        tasks = [
            Task(title="Write the announcement", owner_id=demo.id, assignee_id=demo.id, document_id=plan.id,
                 priority=3, due_at=now + timedelta(days=3)),
            Task(title="Review pricing page", owner_id=demo.id, assignee_id=sam.id, document_id=plan.id,
                 status=TaskStatus.IN_PROGRESS.value),
            Task(title="Book the venue", owner_id=sam.id, assignee_id=demo.id, due_at=now + timedelta(days=10)),
            Task(title="Send the agenda", owner_id=sam.id, document_id=notes.id, status=TaskStatus.DONE.value),
        ]
        session.add_all(tasks)
        await session.flush()
        session.add_all([TaskLabel(task_id=tasks[0].id, label="launch"), TaskLabel(task_id=tasks[1].id, label="web")])
    async with sessions() as session:
        refreshed = await session.scalar(select(User).where(User.id == demo.id))
    assert refreshed is not None
    return refreshed, True
