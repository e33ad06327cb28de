"""One database transaction for a whole request, when the request asks for it.

An `Idempotency-Key` request runs in one transaction that also holds its key's row, so the effects
and the stored answer commit together or not at all (`rest/idempotency_store.py`). The code that
opens sessions does not know: the app's session factory is `JoiningSessions`, which hands out
sessions of the current request's transaction when there is one (each a savepoint inside it, so a
resolver that fails still rolls back only its own part), and plain sessions otherwise.

Within one request, GraphQL resolves fields concurrently, and one connection must not run two
statements at once: sessions and reads take the transaction's lock, which the task holding it may
take again. Work meant to follow the commit (publishing realtime events) waits in `after_commit`
and is dropped if the transaction rolls back, so no subscriber hears of a change that never was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from db.reads import TransactionReads

log = logging.getLogger("tandem.db")

AfterCommit = Callable[[], Awaitable[None]]


class TaskLock:
    """An asyncio lock the task holding it may take again (a resolver's session inside a read)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if self._owner is not None and self._owner is task:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


class _LockedSession(AsyncSession):
    """A session of a request transaction: holds the transaction's lock from enter to exit."""

    async def __aenter__(self) -> _LockedSession:
        await self.info["lock"].acquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self.info["lock"].release()


class RequestTransaction:
    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.lock = TaskLock()
        self.sessions = async_sessionmaker(bind=connection, class_=_LockedSession, expire_on_commit=False,
                                           join_transaction_mode="create_savepoint", info={"lock": self.lock})
        self.reads = TransactionReads(connection, self.lock)
        self.open = True
        self._after_commit: list[AfterCommit] = []

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        # Not the sessionmaker's `begin()`: that one leaves the session without entering it.
        async with self.sessions() as session, session.begin():
            yield session

    def after_commit(self, work: AfterCommit) -> None:
        self._after_commit.append(work)

    async def commit(self) -> None:
        async with self.lock.held():
            await self.connection.commit()
        self.open = False
        for work in self._after_commit:
            try:
                await work()
            except Exception:  # the commit stands; one failed follow-up must not hide the answer
                log.exception("work after a request's commit failed")
        self._after_commit.clear()

    def close(self) -> None:
        """Stop handing out this transaction (a task the request started may outlive it)."""
        self.open = False
        self._after_commit.clear()


_current: ContextVar[RequestTransaction | None] = ContextVar("tandem_request_transaction", default=None)


def current() -> RequestTransaction | None:
    transaction = _current.get()
    return transaction if transaction is not None and transaction.open else None


@contextlib.contextmanager
def joined(transaction: RequestTransaction) -> Any:
    """Code run inside this block opens its sessions in `transaction`."""
    token = _current.set(transaction)
    try:
        yield transaction
    finally:
        _current.reset(token)


def after_commit(work: AfterCommit) -> bool:
    """Hold `work` until the current request's transaction commits; False (run it now) without one."""
    transaction = current()
    if transaction is None:
        return False
    transaction.after_commit(work)
    return True


class JoiningSessions:
    """The app's session factory: the request transaction's sessions inside one, `default`'s outside.

    `one_writer` (SQLite, which has one writer per file): write transactions (`begin()`) of this
    process take turns in an asyncio queue instead of meeting in SQLite's busy handler, which sleeps
    up to 100 ms per try and made a loaded mutation's p99 a hundred times its p50 (bench/README.md).
    Reentrant per task; the documents' own locks are always taken before it, never inside it.
    """

    def __init__(self, default: async_sessionmaker[AsyncSession], *, one_writer: bool = False) -> None:
        self.default = default
        self._writer = TaskLock() if one_writer else None

    def __call__(self, **local_kw: Any) -> AsyncSession:
        transaction = current()
        return (transaction.sessions if transaction is not None else self.default)(**local_kw)

    def begin(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        transaction = current()
        if transaction is not None:
            return transaction.begin()
        return self._in_turn() if self._writer is not None else self.default.begin()

    @contextlib.asynccontextmanager
    async def _in_turn(self) -> AsyncIterator[AsyncSession]:
        assert self._writer is not None
        async with self._writer.held(), self.default.begin() as session:
            yield session
