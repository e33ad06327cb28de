"""The dashboard endpoint written for speed: what a skilled engineer ships when this one screen must
be fast. The same token checks and the same four statements as bench/handwritten.py, with the driver
directly:

- SQLite: one `sqlite3` connection used on the event loop (each statement takes microseconds; a
  thread hand-off would cost more), statements prepared once by sqlite3's statement cache;
- PostgreSQL: an asyncpg pool of 20 connections, statements prepared once per connection (asyncpg's
  cache), `= ANY($1)` instead of an `IN` list.
"""

from __future__ import annotations

from typing import Any

from handwritten import dashboard_app
from harness import Workspace

_PG_TASKS = """SELECT id, title, status, assignee_id, document_id FROM tasks
    WHERE owner_id = $1 OR assignee_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"""
_PG_USERS = "SELECT id, name FROM users WHERE id = ANY($1::int[])"
_PG_DOCUMENTS = """SELECT d.id, d.title FROM documents d
    JOIN document_collaborators c ON c.document_id = d.id AND c.user_id = $1 WHERE d.id = ANY($2::int[])"""

_LITE_TASKS = """SELECT id, title, status, assignee_id, document_id FROM tasks
    WHERE owner_id = ?1 OR assignee_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"""


def fast_app(workspace: Workspace, issuer: str, audience: str) -> Any:
    return _postgres(workspace, issuer, audience) if workspace.postgres else _sqlite(workspace, issuer, audience)


def _postgres(workspace: Workspace, issuer: str, audience: str) -> Any:
    import asyncpg

    dsn = workspace.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    pool: list[asyncpg.Pool] = []

    async def start() -> None:
        pool.append(await asyncpg.create_pool(dsn, min_size=20, max_size=20))

    async def stop() -> None:
        await pool[0].close()

    async def load(viewer_id: int) -> tuple[list[Any], dict[int, str], dict[int, str]] | None:
        async with pool[0].acquire() as conn:
            if await conn.fetchval("SELECT id FROM users WHERE id = $1", viewer_id) is None:
                return None
            tasks = await conn.fetch(_PG_TASKS, viewer_id, 50)
            user_ids = sorted({t[3] for t in tasks if t[3] is not None})
            document_ids = sorted({t[4] for t in tasks if t[4] is not None})
            users = {r[0]: r[1] for r in await conn.fetch(_PG_USERS, user_ids)} if user_ids else {}
            documents = {r[0]: r[1] for r in await conn.fetch(_PG_DOCUMENTS, viewer_id, document_ids)} \
                if document_ids else {}
        return list(tasks), users, documents

    return dashboard_app(workspace, issuer, audience, load, start, stop)


def _sqlite(workspace: Workspace, issuer: str, audience: str) -> Any:
    import sqlite3

    connection = sqlite3.connect(workspace.db_path, check_same_thread=False, cached_statements=64)
    connection.execute("PRAGMA journal_mode=WAL")

    async def load(viewer_id: int) -> tuple[list[Any], dict[int, str], dict[int, str]] | None:
        if connection.execute("SELECT id FROM users WHERE id = ?", (viewer_id,)).fetchone() is None:
            return None
        tasks = connection.execute(_LITE_TASKS, (viewer_id, 50)).fetchall()
        user_ids = sorted({t[3] for t in tasks if t[3] is not None})
        document_ids = sorted({t[4] for t in tasks if t[4] is not None})
        users: dict[int, str] = {}
        if user_ids:
            marks = ",".join("?" * len(user_ids))
            users = dict(connection.execute(f"SELECT id, name FROM users WHERE id IN ({marks})", user_ids).fetchall())
        documents: dict[int, str] = {}
        if document_ids:
            marks = ",".join("?" * len(document_ids))
            documents = dict(connection.execute(
                "SELECT d.id, d.title FROM documents d JOIN document_collaborators c ON c.document_id = d.id "
                f"AND c.user_id = ? WHERE d.id IN ({marks})", (viewer_id, *document_ids)).fetchall())
        return tasks, users, documents

    async def start() -> None:
        return None

    async def stop() -> None:
        connection.close()

    return dashboard_app(workspace, issuer, audience, load, start, stop)
