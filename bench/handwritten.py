"""The hand-written endpoint the dashboard benchmark measures Tandem against.

What a developer would write by hand for this one screen, with the same care for correctness: verify
the same ES256 token with pyjwt (alg, kid, iss, aud, exp, required claims, scopes), then four SQL
statements through SQLAlchemy Core on the same driver (aiosqlite) -- the viewer, the 50 tasks, their
assignees, their documents (joined to the viewer's collaborations) -- and the JSON with orjson.
"""

from __future__ import annotations

import base64
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import orjson
from harness import Workspace


def _gid(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


_TASKS_SQL = """
    SELECT id, title, status, assignee_id, document_id FROM tasks
    WHERE owner_id = :viewer OR assignee_id = :viewer
    ORDER BY created_at DESC, id DESC LIMIT :limit
"""
_USERS_SQL = "SELECT id, name FROM users WHERE id IN :ids"
_DOCUMENTS_SQL = """
    SELECT d.id, d.title FROM documents d
    JOIN document_collaborators c ON c.document_id = d.id AND c.user_id = :viewer
    WHERE d.id IN :ids
"""


def handwritten_app(workspace: Workspace, issuer: str, audience: str) -> Any:
    """What a developer would write by hand for this one screen: verify the token, four SQL statements."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sqlalchemy import bindparam, text
    from sqlalchemy.ext.asyncio import create_async_engine
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    engine = create_async_engine(workspace.database_url)
    public_keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for path in workspace.keys_dir.glob("*.pem"):
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        public_keys[path.stem] = private_key.public_key()
    users_sql = text(_USERS_SQL).bindparams(bindparam("ids", expanding=True))
    documents_sql = text(_DOCUMENTS_SQL).bindparams(bindparam("ids", expanding=True))

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
        viewer_id = int(claims["sub"])
        async with engine.connect() as conn:
            if (await conn.execute(text("SELECT id FROM users WHERE id = :id"), {"id": viewer_id})).first() is None:
                return refuse(401, "unknown user")
            tasks = (await conn.execute(text(_TASKS_SQL), {"viewer": viewer_id, "limit": 50})).all()
            user_ids = sorted({t.assignee_id for t in tasks if t.assignee_id is not None})
            document_ids = sorted({t.document_id for t in tasks if t.document_id is not None})
            users: dict[int, str] = {}
            if user_ids:
                users = {row.id: row.name for row in await conn.execute(users_sql, {"ids": user_ids})}
            documents: dict[int, str] = {}
            if document_ids:
                found = await conn.execute(documents_sql, {"viewer": viewer_id, "ids": document_ids})
                documents = {row.id: row.title for row in found}
        edges = [
            {"node": {
                "id": _gid("Task", t.id), "title": t.title, "status": t.status,
                "assignee": {"id": _gid("User", t.assignee_id), "name": users[t.assignee_id]}
                if t.assignee_id in users else None,
                "document": {"id": _gid("Document", t.document_id), "title": documents[t.document_id]}
                if t.document_id in documents else None,
            }}
            for t in tasks
        ]
        body = {"data": {"viewer": {"tasks": {"edges": edges}}}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gc.collect()
        gc.freeze()  # the same treatment Tandem gets from TANDEM_FREEZE_GC_ON_START
        yield
        await engine.dispose()

    return Starlette(
        routes=[Route("/dashboard", dashboard, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan
    )
