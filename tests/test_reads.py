"""The loaders' read path (db/reads.py): on SQLite key lookups on the event loop, but never stuck there;
on PostgreSQL one connection for all of a request's reads.

The request-level behaviour (both databases, statement counts) is covered by every GraphQL test;
these are the SQLite specifics: a locked file sends a lookup to a thread instead of holding the loop,
and timestamps read back as aware UTC datetimes however they were stored.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from app.main import create_app
from app.settings import Settings
from db.direct_lookups import DirectLookups
from db.models import Task, User
from db.reads import SQLiteReads, _records, _rows
from loaders import documents, tasks, users
from tests.factories import make_document, make_task, make_user


def _database(template: Path, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "reads.db"
    shutil.copy(template, path)
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("INSERT INTO users (email, name, role) VALUES ('a@example.test', 'Ada', 'member')")
    connection.close()
    return path, f"sqlite+aiosqlite:///{path}"


async def test_a_lookup_on_a_locked_file_waits_off_the_loop(sqlite_template: Path, tmp_path: Path) -> None:
    path, url = _database(sqlite_template, tmp_path)
    reads = SQLiteReads(url)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("PRAGMA locking_mode=EXCLUSIVE")  # held until the connection closes
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("UPDATE users SET name = 'Ada Lovelace'")
    locker.execute("COMMIT")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    lookup = asyncio.create_task(reads.lookup(select(User.__table__).where(User.email == "a@example.test")))
    done_while_locked: list[bool] = []

    def unlock() -> None:
        done_while_locked.append(lookup.done())
        locker.close()

    asyncio.get_running_loop().call_later(0.5, unlock)
    try:
        rows = await lookup
    finally:
        ticker.cancel()
        await reads.close()
    assert done_while_locked == [False]  # it waited for the lock...
    assert ticks >= 10  # ...and the loop kept running meanwhile
    assert [row.name for row in rows] == ["Ada Lovelace"]


async def test_timestamps_read_back_as_aware_utc(sqlite_template: Path, tmp_path: Path) -> None:
    path, url = _database(sqlite_template, tmp_path)
    connection = sqlite3.connect(path)
    with connection:
        (user_id,) = connection.execute("SELECT id FROM users").fetchone()
        for title, due in (("ours", "2026-11-01 12:00:00.123456"), ("offset", "2026-11-01 12:00:00+02:00"),
                           ("no fraction", "2026-11-01 12:00:00"), ("none", None)):
            connection.execute(
                "INSERT INTO tasks (title, description, status, priority, due_at, owner_id, created_at, updated_at) "
                "VALUES (?, '', 'TODO', 2, ?, ?, '2026-11-01 08:00:00', '2026-11-01 08:00:00')",
                (title, due, user_id),
            )
    connection.close()
    reads = SQLiteReads(url)
    try:
        rows = {row.title: row for row in await reads.all(select(Task.__table__))}
    finally:
        await reads.close()
    assert rows["ours"].due_at == datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert rows["offset"].due_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert rows["no fraction"].due_at == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert rows["none"].due_at is None
    assert rows["ours"].created_at.tzinfo is UTC


async def test_a_lookup_sees_what_was_committed_since_the_last_one(sqlite_template: Path, tmp_path: Path) -> None:
    """The lookups' connection stays open between lookups: it must never keep reading an old snapshot."""
    path, url = _database(sqlite_template, tmp_path)
    reads = SQLiteReads(url)
    ada = select(User.__table__).where(User.email == "a@example.test")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        assert [row.name for row in await reads.lookup(ada)] == ["Ada"]
        writer.execute("UPDATE users SET name = 'Ada Lovelace'")
        assert [row.name for row in await reads.lookup(ada)] == ["Ada Lovelace"]
        writer.execute("BEGIN IMMEDIATE")  # a writer mid-transaction blocks no reader (WAL)
        writer.execute("UPDATE users SET name = 'Countess'")
        assert [row.name for row in await reads.lookup(ada)] == ["Ada Lovelace"]
        writer.execute("COMMIT")
        assert [row.name for row in await reads.lookup(ada)] == ["Countess"]
    finally:
        writer.close()
        await reads.close()


async def test_direct_lookups_read_what_sqlalchemy_reads(
    settings: Settings, sqlite_template: Path, tmp_path: Path,
) -> None:
    """Every key lookup the loaders make, straight on sqlite3 (db/direct_lookups.py) and through
    SQLAlchemy: the same rows, the same columns, the same Python values (aware datetimes, booleans)."""
    path = tmp_path / "direct.db"
    shutil.copy(sqlite_template, path)
    app = create_app(settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{path}"}))
    async with app.router.lifespan_context(app):
        sessions = app.state.sessions
        ada, bob = await make_user(sessions, "Ada"), await make_user(sessions, "Bob")
        shared = await make_document(sessions, bob, "Shared", editors=[ada])
        due = datetime(2026, 12, 24, 18, 30, 15, 123456, tzinfo=UTC)
        first = await make_task(sessions, ada, "One", assignee=bob, document=shared, labels=["red", "blue"], due_at=due)
        second = await make_task(sessions, bob, "Two", document=shared)
        reads: SQLiteReads = app.state.reads
        cases = [
            (users._BY_IDS, {"ids": [ada.id]}),
            (users._BY_IDS, {"ids": [ada.id, bob.id, 999]}),
            (documents._BY_IDS, {"ids": [shared.id, 999], "viewer": ada.id}),
            (documents._BY_IDS, {"ids": [shared.id], "viewer": 999}),
            (documents._COLLABORATORS, {"ids": [shared.id]}),
            (tasks._BY_IDS, {"ids": [first.id, second.id], "viewer": ada.id}),
            (tasks._LABELS, {"ids": [first.id, second.id]}),
        ]
        with reads._inline.connect() as connection:
            raw = connection.connection.dbapi_connection
            for statement, params in cases:
                direct = reads._direct.rows(raw, statement, params)  # type: ignore[arg-type]
                assert direct is not None, statement
                through_sqlalchemy = _rows(reads._inline, statement, params)
                assert _records(*direct) == list(through_sqlalchemy)
                if through_sqlalchemy:  # all but the invisible document
                    assert direct[0] == through_sqlalchemy[0]._fields
        through: list[str] = []

        def executed(*args: Any) -> None:
            through.append(args[2])

        event.listen(reads._inline, "after_cursor_execute", executed)  # SQLAlchemy's path only
        looked_up = (await reads.lookup(tasks._BY_IDS, {"ids": [first.id], "viewer": ada.id}))[0]
        assert looked_up.due_at == due and looked_up.due_at.tzinfo is not None
        assert through == []  # it went the direct way
        event.listen(reads._inline, "before_cursor_execute", executed)  # someone watches: SQLAlchemy's way
        assert (await reads.lookup(users._BY_IDS, {"ids": [ada.id]}))[0].name == "Ada"
        assert len(through) == 2


async def test_direct_lookups_keep_a_bounded_number_of_statements(sqlite_template: Path, tmp_path: Path) -> None:
    """The number of keys in a batch comes from the request: rendered statements are kept up to a bound,
    and a statement past it still answers right."""
    path, url = _database(sqlite_template, tmp_path)
    reads = SQLiteReads(url)
    direct = DirectLookups(reads._inline.dialect, max_rendered=3)
    connection = sqlite3.connect(path)
    try:
        for count in range(1, 7):
            columns, rows = direct.rows(connection, users._BY_IDS, {"ids": [1] + [999] * (count - 1)})
            assert [dict(zip(columns, row, strict=True))["name"] for row in rows] == ["Ada"]
        assert len(direct._rendered) == 3
    finally:
        connection.close()
        await reads.close()


DASHBOARD = "{ viewer { tasks(first: 50) { edges { node { id title assignee { name } document { title } } } } } }"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_on_postgresql_a_request_s_reads_share_one_connection(
    app: Any, client: Any, sessions: Any, alice: User, bob: User, token_for: Any,
) -> None:
    document = await make_document(sessions, bob, viewers=[alice])
    for n in range(3):
        await make_task(sessions, alice, f"task {n}", assignee=bob, document=document)
    checkouts: list[object] = []

    def counted(*args: object) -> None:
        checkouts.append(args)

    pool = app.state.engine.sync_engine.pool
    event.listen(pool, "checkout", counted)
    try:
        response = await client.post("/graphql", json={"query": DASHBOARD},
                                     headers={"Authorization": f"Bearer {token_for(alice)}"})
    finally:
        event.remove(pool, "checkout", counted)
    assert len(response.json()["data"]["viewer"]["tasks"]["edges"]) == 3
    assert len(checkouts) == 1  # the viewer, the page, the assignees and the documents: one connection
