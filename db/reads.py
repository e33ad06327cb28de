"""Reads on the request path: Core rows, not ORM objects, and on SQLite few or no thread hand-offs.

The loaders' batch statements are the request path's only SQL. Measured on the bench machine (a
users `IN` batch of 11 rows, per statement): an `AsyncSession` with ORM entities costs ~900 µs of
CPU, Core rows on an `AsyncConnection` ~540 µs, Core rows on a plain `sqlite3` connection driven
from a worker thread ~340 µs. aiosqlite hands every cursor call (create, execute, fetch, close, and
the rollback when the connection goes back to the pool) to its thread and back, five or so hand-offs
per statement.

Two kinds of statement:

- `lookup`: rows by key (a primary-key or indexed `IN` batch): bounded work, tens of µs in SQLite.
  On SQLite it runs right on the event loop: a thread hand-off costs more than the statement (~50
  µs of CPU bare, and a server pinned to one core measured ~200 µs per hand-off once the worker
  thread and the loop contend for the GIL: 146 against 129 dashboards/s with all reads inline).
  Its connections wait at most `INLINE_BUSY_MS` for a lock (in WAL mode readers practically never
  wait); if they would have to, the statement goes to a thread like any other.
- `all`: anything that may scan (pages, counts, filters, search): in a thread, so a slow query never
  stalls the loop (sqlite3 releases the GIL while it steps).

- `SQLiteReads`: synchronous engines on the same SQLite file (WAL: readers never wait for the
  writer). Writes keep going through the async engine.
- `AsyncReads`: PostgreSQL (asyncpg has no threads to save) and in-memory SQLite (a second engine
  would see another database): Core rows on the async engine, for both kinds.

Rows come back as named tuples, one class per set of result columns: they expose the columns as
attributes, like the ORM objects the writes return (`db.records`), at ~50 ns a read where a
SQLAlchemy `Row` takes ~540 ns (measured). A task row is read a dozen times on its way into the
response, so making the tuple (~0.4 µs) pays for itself several times over.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Executable, Row, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.direct_lookups import DirectLookups
from db.engine import Sessions, sqlite_pragmas

Params = Mapping[str, Any] | None
# A row of any shape: a named tuple of the result's columns (see the module docstring).
AnyRow = Any
# SQLite serialises on one file; a few readers at once are plenty for one process.
SQLITE_READ_THREADS = 4
INLINE_BUSY_MS = 20


class Reads(Protocol):
    def per_request(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Within it, the reads of this task (and the tasks it starts) share one connection."""
        ...

    async def lookup(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        """Every row of a statement that finds rows by key (bounded work), as Core rows."""

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        """Every row of any statement, as Core rows."""

    async def close(self) -> None: ...

    @property
    def engines(self) -> tuple[Engine, ...]:
        """The synchronous engines the statements run on (for statement listeners, e.g. in tests)."""


class _Held:
    """One connection for all the reads of one request, checked out at its first read: a request's
    reads then cost one pool checkout, not one each. Statements take turns on it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self.turn = asyncio.Lock()
        self.closed = False

    async def connection(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return self._connection

    async def close(self) -> None:
        self.closed = True  # a task the request started and that reads later gets a connection of its own
        if self._connection is not None:
            await self._connection.close()


_held: ContextVar[_Held | None] = ContextVar("tandem_request_reads", default=None)


class AsyncReads:
    def __init__(self, engine: AsyncEngine) -> None:
        # Each read is one statement: in autocommit there is no BEGIN before it and no ROLLBACK after
        # it, two round trips of three on PostgreSQL (the pool and its connections are the app's).
        self._base = engine
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def lookup(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        return await self.all(statement, params)

    @contextlib.asynccontextmanager
    async def per_request(self) -> AsyncIterator[None]:
        held = _Held(self._engine)
        token = _held.set(held)
        try:
            yield
        finally:
            _held.reset(token)
            await held.close()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        held = _held.get()
        if held is None or held.closed:
            async with self._engine.connect() as connection:
                result = await connection.execute(statement, params)
                return _records(tuple(result.keys()), result)
        async with held.turn:
            result = await (await held.connection()).execute(statement, params)
            return _records(tuple(result.keys()), result)

    async def close(self) -> None:
        """The async engine belongs to the app, which disposes of it."""

    @property
    def engines(self) -> tuple[Engine, ...]:
        return (self._base.sync_engine,)


class SQLiteReads:
    def __init__(self, url: str) -> None:
        # Same file, stdlib driver: `sqlite+aiosqlite:///x.db` → `sqlite:///x.db`.
        sync_url = make_url(url).set(drivername="sqlite")
        self._threaded = create_engine(sync_url, connect_args={"timeout": 30, "check_same_thread": False},
                                       pool_size=SQLITE_READ_THREADS)
        event.listen(self._threaded, "connect", sqlite_pragmas)
        self._inline = create_engine(sync_url, connect_args={"timeout": INLINE_BUSY_MS / 1000}, pool_size=1)
        event.listen(self._inline, "connect", _inline_pragmas)
        self._threads = ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="tandem-sqlite-read")
        # Kept open between lookups: checking a connection out of the pool and back in cost more than
        # the statement (~45 µs of a ~150 µs key lookup, measured). It never stays in a transaction.
        self._connection: Connection | None = None
        self._direct = DirectLookups(self._inline.dialect)

    async def lookup(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        try:
            return self._inline_rows(statement, params)
        except OperationalError as exc:
            if not _busy(exc.orig):
                raise
        except sqlite3.OperationalError as exc:  # from db/direct_lookups.py
            if not _busy(exc):
                raise
        return await self.all(statement, params)  # locked: wait for it off the loop

    def _inline_rows(self, statement: Executable, params: Params) -> Sequence[AnyRow]:
        connection = self._connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self._connection = self._inline.connect()
        # An engine someone listens to (statement counting in tests, tracing) executes through SQLAlchemy,
        # so that its listeners see every statement.
        if not self._inline.dispatch.before_cursor_execute:
            direct = self._direct.rows(connection.connection.dbapi_connection, statement, params or {})  # type: ignore[arg-type]
            if direct is not None:
                columns, rows = direct
                return _records(columns, rows)
        try:
            result = connection.execute(statement, params)
            return _records(tuple(result.keys()), result)
        finally:
            # Ends the transaction SQLAlchemy began (sqlite3 began none for a SELECT), so the next
            # lookup reads the latest commits.
            connection.rollback()

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, _rows, self._threaded, statement, params)

    def per_request(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _NO_SCOPE

    async def close(self) -> None:
        self._threads.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()
        self._threaded.dispose()
        self._inline.dispose()

    @property
    def engines(self) -> tuple[Engine, ...]:
        return (self._threaded, self._inline)


class _BorrowedReads:
    """Reads on sessions or a connection that belong to someone else: nothing to open or close."""

    async def lookup(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        return await self.all(statement, params)

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        raise NotImplementedError

    def per_request(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _NO_SCOPE

    async def close(self) -> None:
        """Their owner closes them."""

    @property
    def engines(self) -> tuple[Engine, ...]:
        return ()


class SessionReads(_BorrowedReads):
    """Reads through a session factory: for background work whose sessions are bound to one
    connection (an inbound webhook is applied in the same transaction as its receipt)."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        async with self._sessions() as session:
            result = await session.execute(statement, params)
            return _records(tuple(result.keys()), result)


class TransactionReads(_BorrowedReads):
    """Reads on the connection of a request's transaction (`db.request_transaction`): they see its
    uncommitted writes, one statement at a time."""

    def __init__(self, connection: AsyncConnection, lock: Any) -> None:
        self._connection = connection
        self._lock = lock

    async def all(self, statement: Executable, params: Params = None) -> Sequence[AnyRow]:
        async with self._lock.held():
            result = await self._connection.execute(statement, params)
            return _records(tuple(result.keys()), result)


_NO_SCOPE = contextlib.nullcontext()  # SQLite's reads keep their own connections; sessions theirs


def _rows(engine: Engine, statement: Executable, params: Params) -> Sequence[AnyRow]:
    with engine.connect() as connection:
        result = connection.execute(statement, params)
        return _records(tuple(result.keys()), result)


def _records(columns: tuple[str, ...], rows: Iterable[Row[Any]] | Iterable[tuple[Any, ...]]) -> list[AnyRow]:
    make = _record_type(columns)._make
    return [make(row) for row in rows]


@lru_cache(maxsize=512)
def _record_type(columns: tuple[str, ...]) -> Any:
    return namedtuple("Record", columns, rename=True)  # the columns are only known at run time


def _inline_pragmas(dbapi_connection: Any, record: Any) -> None:
    sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={INLINE_BUSY_MS}")  # never hold the event loop for a lock
    cursor.close()


def _busy(error: BaseException | None) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def make_reads(url: str, engine: AsyncEngine) -> Reads:
    """The read path for the database at `url`, whose async engine (for writes) is `engine`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return SQLiteReads(url)
    return AsyncReads(engine)
