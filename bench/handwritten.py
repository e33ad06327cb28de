"""The hand-written endpoints the dashboard benchmark measures Tandem against.

What a developer would write by hand for this one screen, with the same care for correctness: verify
the same ES256 token with pyjwt (alg, kid, iss, aud, exp, required claims, scopes), then four SQL
statements -- the viewer, the 50 tasks, their assignees, their documents (joined to the viewer's
collaborations) -- and the JSON with orjson. Two of them:

- `handwritten_app`: SQLAlchemy Core on the same async driver Tandem uses (aiosqlite, asyncpg);
- `handwritten_fast.fast_app`: written for speed, the driver directly (sqlite3 on the event loop, or
  an asyncpg pool with its prepared-statement cache).
"""

from __future__ import annotations

import base64
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import orjson
from harness import Workspace

TASKS_SQL = """
    SELECT id, title, status, assignee_id, document_id FROM tasks
    WHERE owner_id = :viewer OR assignee_id = :viewer
    ORDER BY created_at DESC, id DESC LIMIT :limit
"""
USERS_SQL = "SELECT id, name FROM users WHERE id IN :ids"
DOCUMENTS_SQL = """
    SELECT d.id, d.title FROM documents d
    JOIN document_collaborators c ON c.document_id = d.id AND c.user_id = :viewer
    WHERE d.id IN :ids
"""

# Loads the rows for a viewer: (tasks as (id, title, status, assignee_id, document_id), users by id,
# document titles by id), or None when the viewer does not exist.
Load = Callable[[int], Awaitable["tuple[list[Any], dict[int, str], dict[int, str]] | None"]]


def _gid(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def dashboard_body(tasks: Iterable[Any], users: dict[int, str], documents: dict[int, str]) -> bytes:
    edges = [
        {"node": {
            "id": _gid("Task", t[0]), "title": t[1], "status": t[2],
            "assignee": {"id": _gid("User", t[3]), "name": users[t[3]]} if t[3] in users else None,
            "document": {"id": _gid("Document", t[4]), "title": documents[t[4]]} if t[4] in documents else None,
        }}
        for t in tasks
    ]
    return orjson.dumps({"data": {"viewer": {"tasks": {"edges": edges}}}})


def dashboard_app(workspace: Workspace, issuer: str, audience: str, load: Load,
                  start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> Any:
    """The endpoint around `load`: token checks, the JSON, `/healthz`, a frozen collector."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    public_keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for path in workspace.keys_dir.glob("*.pem"):
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        public_keys[path.stem] = private_key.public_key()

    def refuse(status: int, message: str) -> Response:
        return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")

    async def dashboard(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return refuse(401, "missing bearer token")
        try:
            key = public_keys[jwt.get_unverified_header(token).get("kid", "")]
            claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer,
                                leeway=30, options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]})
        except (KeyError, jwt.PyJWTError):
            return refuse(401, "invalid token")
        scopes = set(str(claims.get("scope", "")).split())
        if "tasks:read" not in scopes or "documents:read" not in scopes:
            return refuse(403, "insufficient scope")
        await request.body()
        found = await load(int(claims["sub"]))
        if found is None:
            return refuse(401, "unknown user")
        return Response(dashboard_body(*found), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await start()
        gc.collect()
        gc.freeze()  # the same treatment Tandem gets from TANDEM_FREEZE_GC_ON_START
        yield
        await stop()

    return Starlette(
        routes=[Route("/dashboard", dashboard, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan
    )


def handwritten_app(workspace: Workspace, issuer: str, audience: str) -> Any:
    """SQLAlchemy Core on the async driver, a connection per request from a pool of 20."""
    from sqlalchemy import bindparam, text
    from sqlalchemy.ext.asyncio import create_async_engine

    options = {"pool_size": 20, "max_overflow": 10} if workspace.postgres else {}
    engine = create_async_engine(workspace.database_url, **options)
    users_sql = text(USERS_SQL).bindparams(bindparam("ids", expanding=True))
    documents_sql = text(DOCUMENTS_SQL).bindparams(bindparam("ids", expanding=True))

    async def load(viewer_id: int) -> tuple[list[Any], dict[int, str], dict[int, str]] | None:
        async with engine.connect() as conn:
            if (await conn.execute(text("SELECT id FROM users WHERE id = :id"), {"id": viewer_id})).first() is None:
                return None
            tasks = (await conn.execute(text(TASKS_SQL), {"viewer": viewer_id, "limit": 50})).all()
            user_ids = sorted({t.assignee_id for t in tasks if t.assignee_id is not None})
            document_ids = sorted({t.document_id for t in tasks if t.document_id is not None})
            users: dict[int, str] = {}
            if user_ids:
                users = {row.id: row.name for row in await conn.execute(users_sql, {"ids": user_ids})}
            documents: dict[int, str] = {}
            if document_ids:
                found = await conn.execute(documents_sql, {"viewer": viewer_id, "ids": document_ids})
                documents = {row.id: row.title for row in found}
        return list(tasks), users, documents

    async def nothing() -> None:
        return None

    return dashboard_app(workspace, issuer, audience, load, nothing, engine.dispose)
