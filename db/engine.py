"""Engines and session factories for SQLite (aiosqlite) and PostgreSQL (asyncpg) from one URL."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class Sessions(Protocol):
    """What code that opens sessions needs: an `async_sessionmaker`, or the app's joining factory
    (`db.request_transaction`), which hands out sessions of the request's transaction when there is one."""

    def __call__(self, **local_kw: Any) -> AsyncSession: ...

    def begin(self) -> AbstractAsyncContextManager[AsyncSession]: ...


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; connects lazily. SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # off by default in SQLite; our ON DELETE rules need it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_transaction_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for one long transaction whose parts are savepoints, on SQLite too.

    The sqlite3 driver starts transactions lazily and lets a RELEASE of the outermost savepoint
    commit everything, which would break the one-transaction rule. So on this engine the driver is
    told to stay out of it and each transaction starts with `BEGIN IMMEDIATE` (it is going to write
    anyway, so it takes SQLite's write lock up front and never fails to upgrade).
    """
    engine = make_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _driver_stays_out)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _driver_stays_out(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
