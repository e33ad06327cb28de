"""Reads on the request path: Core rows, not ORM objects, and on SQLite one thread hand-off each.

The loaders' batch statements are the request path's only SQL. Measured on the bench machine (a
users `IN` batch of 11 rows, per statement): an `AsyncSession` with ORM entities costs ~900 µs of
CPU, Core rows on an `AsyncConnection` ~540 µs, Core rows on a plain `sqlite3` connection driven
from one worker thread ~340 µs. aiosqlite hands every cursor call (create, execute, fetch, close,
and the rollback when the connection goes back to the pool) to its thread and back, five or so
hand-offs per statement; here the whole statement is one `run_in_executor`.

- `ThreadedSQLiteReads`: a synchronous engine on the same SQLite file (WAL: readers never wait for
  the writer) used from a small thread pool. Writes keep going through the async engine.
- `AsyncReads`: PostgreSQL (asyncpg has no threads to save) and in-memory SQLite (a second engine
  would see another database): Core rows on the async engine.

Rows expose the columns as attributes, like the ORM objects the writes return (`db.records`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sqlalchemy import Engine, Executable, Row, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import sqlite_pragmas

Params = Mapping[str, Any] | None
# A row of any shape (SQLAlchemy 2.1 types a Row by its column types).
AnyRow = Row[*tuple[Any, ...]]
# SQLite serialises on one file; a few readers at once are plenty for one process.
SQLITE_READ_THREADS = 4


class Reads(Protocol):
    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        """Every row of one statement, as Core rows."""

    async def close(self) -> None: ...

    @property
    def engine(self) -> Engine:
        """The synchronous engine the statements run on (for statement listeners, e.g. in tests)."""


class AsyncReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        async with self._engine.connect() as connection:
            return (await connection.execute(statement, params)).all()

    async def close(self) -> None:
        """The async engine belongs to the app, which disposes of it."""

    @property
    def engine(self) -> Engine:
        return self._engine.sync_engine


class ThreadedSQLiteReads:
    def __init__(self, url: str) -> None:
        # Same file, stdlib driver: `sqlite+aiosqlite:///x.db` → `sqlite:///x.db`.
        sync_url = make_url(url).set(drivername="sqlite")
        self._engine = create_engine(sync_url, connect_args={"timeout": 30, "check_same_thread": False},
                                     pool_size=SQLITE_READ_THREADS)
        event.listen(self._engine, "connect", sqlite_pragmas)
        self._threads = ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="tandem-sqlite-read")

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._all, statement, params)

    def _all(self, statement: Executable, params: Params) -> Sequence[AnyRow]:
        with self._engine.connect() as connection:
            return connection.execute(statement, params).all()

    async def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._engine.dispose()

    @property
    def engine(self) -> Engine:
        return self._engine


def make_reads(url: str, engine: AsyncEngine) -> Reads:
    """The read path for the database at `url`, whose async engine (for writes) is `engine`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return ThreadedSQLiteReads(url)
    return AsyncReads(engine)
