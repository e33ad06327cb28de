"""Fan-out of document events: delivery latency and events/s for 1, 100 and 1,000 subscribers,
on one document and on many documents, from one run.

One Tandem server (uvicorn subprocess, one worker, SQLite, in-process broker) and, in this process,
the subscribers (graphql-transport-ws over `websockets`) and one writer (`applyDocumentUpdate` over
HTTP). Subscribers are spread over at most `--sockets` WebSocket connections (several subscriptions
per connection, as a browser tab with several open documents would have).

- one document: every subscriber watches the same document; each update reaches all of them.
- many documents: every subscriber watches its own document; each update reaches one of them.

The writer sends one update at a time to one document, and up to 16 at once (to different documents)
otherwise. Latency is from just before the writer sends the mutation to the moment a subscriber has decoded the
event: it includes the mutation (a durable write), the broker, GraphQL execution per subscriber and
the socket. Events/s counts deliveries over the wall time of the phase.

    .venv/bin/python bench/fanout.py                 # about a minute on 2 cores
    .venv/bin/python bench/fanout.py --updates 20 --sizes 1 100
    .venv/bin/python bench/fanout.py --workers 2 --redis redis://127.0.0.1:6379/8   # changes cross workers

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/fanout.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import websockets  # noqa: E402
from pycrdt import Doc, Text  # noqa: E402

EVENTS = "subscription($id: ID!) { documentEvents(documentId: $id) { kind version } }"
APPLY = "mutation($id: ID!, $u: Base64!) { applyDocumentUpdate(input: {documentId: $id, update: $u}) { version } }"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Workspace:
    directory: Path
    port: int = field(default_factory=_free_port)

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.directory / 'tandem.db'}"

    def env(self) -> dict[str, str]:
        # One writer and many subscribers of one user from one address: the per-user and per-address
        # limits (and the writer's budget) raised through their settings, as an operator would.
        many = "1000000"
        return {**os.environ, "TANDEM_DATABASE_URL": self.database_url, "TANDEM_KEYS_DIR": str(self.directory / "keys"),
                "TANDEM_LOG_LEVEL": "WARNING", "TANDEM_REALTIME_QUEUE_SIZE": "100000",
                "TANDEM_WS_MAX_CONNECTIONS_PER_USER": many, "TANDEM_WS_MAX_CONNECTIONS_PER_IP": many,
                "TANDEM_WS_MAX_SUBSCRIPTIONS": many, "TANDEM_WS_MESSAGES_PER_SECOND": many,
                "TANDEM_WS_MESSAGE_BURST": many,
                "TANDEM_RATE_TIERS": '{"user": {"capacity": 1000000000, "restore_rate": 1000000}}'}


async def seed(workspace: Workspace, documents: int) -> tuple[str, list[int]]:
    """A writer who owns `documents` documents; returns their token and the document ids."""
    from app.main import token_service
    from app.settings import Settings
    from db.engine import make_engine, make_sessions
    from db.models import CollaboratorRole, Document, DocumentCollaborator, User

    engine = make_engine(workspace.database_url)
    sessions = make_sessions(engine)
    async with sessions.begin() as session:
        user = User(email="writer@bench.test", name="Writer", password_hash=None, role="member")
        session.add(user)
        await session.flush()
        rows = [Document(title=f"doc {n}", owner_id=user.id) for n in range(documents)]
        session.add_all(rows)
        await session.flush()
        session.add_all(DocumentCollaborator(document_id=row.id, user_id=user.id, role=CollaboratorRole.OWNER.value)
                        for row in rows)
    await engine.dispose()
    settings = Settings(database_url=workspace.database_url, keys_dir=workspace.directory / "keys")
    token = token_service(settings).issue_access_token(str(user.id), ["documents:read", "documents:write"],
                                                       ttl_seconds=3600)
    return token, [row.id for row in rows]


@contextlib.contextmanager
def server(workspace: Workspace, workers: int = 1, redis_url: str | None = None) -> Iterator[str]:
    """One uvicorn server; with `workers` > 1 its workers share `redis_url`, so an update made by one
    worker reaches the subscribers of the others through Redis (the kernel spreads the sockets)."""
    env = workspace.env()
    if redis_url:
        env.update(TANDEM_REDIS_URL=redis_url, TANDEM_REDIS_PREFIX=f"tandem-fanout-{os.getpid()}:")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app_from_environment", "--factory", "--port", str(workspace.port),
         "--log-level", "warning", "--no-access-log", "--workers", str(workers)],
        cwd=ROOT, env=env,
    )
    url = f"http://127.0.0.1:{workspace.port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(20)


def global_id(pk: int) -> str:
    return base64.urlsafe_b64encode(f"Document:{pk}".encode()).decode().rstrip("=")


@dataclass
class Phase:
    subscribers: int
    documents: list[int]  # one per subscriber (repeated for "one document")
    sent: dict[tuple[int, int], float] = field(default_factory=dict)  # (document, version) -> send time
    latencies: list[float] = field(default_factory=list)
    expected: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def _socket(url: str, token: str, phase: Phase, documents: list[int], number: int,
                  warm: set[tuple[int, str]], ready: asyncio.Event) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_size=None) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await ws.send(orjson.dumps(init).decode())
        await ws.recv()
        by_operation: dict[str, int] = {}
        for n, document in enumerate(documents):
            by_operation[str(n)] = document
            await ws.send(orjson.dumps({"type": "subscribe", "id": str(n), "payload": {
                "query": EVENTS, "variables": {"id": global_id(document)}}}).decode())
        async for raw in ws:
            message = orjson.loads(raw)
            if message.get("type") != "next":
                continue
            event = message["payload"]["data"]["documentEvents"]
            # A subscription is known to be live once it has delivered something (JOINED or a probe).
            warm.add((number, message["id"]))
            if len(warm) == phase.subscribers:
                ready.set()
            if event["kind"] == "UPDATE":
                sent = phase.sent.get((by_operation[message["id"]], event["version"]))
                if sent is not None:
                    phase.latencies.append(time.perf_counter() - sent)
                    if len(phase.latencies) == phase.expected:
                        phase.done.set()


async def run_phase(url: str, token: str, name: str, phase: Phase, updates: int, max_sockets: int,
                    versions: dict[int, int]) -> str:
    """`versions`: each document's current version (one writer, so the next one is known in advance)."""
    sockets = min(max_sockets, phase.subscribers)
    groups = [phase.documents[n::sockets] for n in range(sockets)]
    ready, warm = asyncio.Event(), set[tuple[int, str]]()
    ws_url = url.replace("http://", "ws://") + "/graphql"
    tasks = [asyncio.create_task(_socket(ws_url, token, phase, group, n, warm, ready))
             for n, group in enumerate(groups)]
    distinct = sorted(set(phase.documents))
    per_update = phase.subscribers // len(distinct)
    writers: dict[int, Doc[str]] = {}  # one Yjs client per document, so each update applies cleanly

    async with httpx.AsyncClient(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:

        async def send(document: int, measured: bool) -> None:
            writer = writers.setdefault(document, Doc())
            before = writer.get_state()
            writer.get("content", type=Text).insert(0, "x")
            update = base64.b64encode(writer.get_update(before)).decode()
            versions[document] = versions.get(document, 0) + 1
            if measured:  # before sending: the event may arrive before the response
                phase.sent[(document, versions[document])] = time.perf_counter()
            variables = {"id": global_id(document), "u": update}
            response = await http.post("/graphql", json={"query": APPLY, "variables": variables})
            assert response.json()["data"]["applyDocumentUpdate"]["version"] == versions[document], response.text

        # Only the first subscriber of a document by this user sees a JOINED; the others are warmed
        # up by unmeasured probe updates until every subscription has delivered something.
        deadline = time.monotonic() + 120
        while not ready.is_set():
            assert time.monotonic() < deadline, f"{len(warm)} of {phase.subscribers} subscriptions live"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 1.0)
            if not ready.is_set() and len(distinct) == 1:
                await send(distinct[0], measured=False)
        phase.expected = updates * per_update
        started = time.perf_counter()
        # One document: one update at a time (its versions are known in advance). Many documents:
        # up to 16 writes in flight, each to a different document.
        in_flight = 1 if len(distinct) == 1 else 16
        for first in range(0, updates, in_flight):
            batch = range(first, min(updates, first + in_flight))
            await asyncio.gather(*(send(distinct[n % len(distinct)], measured=True) for n in batch))
    await asyncio.wait_for(phase.done.wait(), 300)
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = sorted(latency * 1000 for latency in phase.latencies)
    p50, p99 = statistics.quantiles(ms, n=100)[49], statistics.quantiles(ms, n=100)[98] if len(ms) > 1 else ms[0]
    return (f"{name:<15}{phase.subscribers:>12}{sockets:>9}{updates:>9}{len(ms):>12}"
            f"{p50:>10.1f}{p99:>10.1f}{len(ms) / elapsed:>12.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000], help="subscriber counts")
    parser.add_argument("--updates", type=int, default=30, help="updates per phase")
    parser.add_argument("--sockets", type=int, default=100, help="at most this many WebSocket connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (more than one needs --redis)")
    parser.add_argument("--redis", metavar="URL", help="the workers' shared Redis")
    args = parser.parse_args()
    if args.workers > 1 and not args.redis:
        parser.error("--workers above 1 needs --redis: the workers' subscribers hear each other's updates there")
    with tempfile.TemporaryDirectory(prefix="tandem-fanout-") as directory:
        workspace = Workspace(Path(directory))
        from db.migrate import upgrade

        await asyncio.to_thread(upgrade, workspace.database_url)
        largest = max(args.sizes)
        token, documents = await seed(workspace, largest + 1)
        lines = []
        versions: dict[int, int] = {}
        with server(workspace, args.workers, args.redis) as url:
            for size in args.sizes:
                one = Phase(size, [documents[0]] * size)
                lines.append(await run_phase(url, token, "one document", one, args.updates, args.sockets, versions))
                print(lines[-1], flush=True)
                many = Phase(size, documents[1 : size + 1])
                lines.append(await run_phase(url, token, "many documents", many, max(args.updates, min(size, 300)),
                                             args.sockets, versions))
                print(lines[-1], flush=True)
        print()
        print(f"{'phase':<15}{'subscribers':>12}{'sockets':>9}{'updates':>9}{'deliveries':>12}"
              f"{'p50 ms':>10}{'p99 ms':>10}{'events/s':>12}")
        print("\n".join(lines))
        broker = f"Redis broker ({args.redis})" if args.redis else "in-process broker"
        print(f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.workers} uvicorn worker(s), SQLite, "
              f"{broker}, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
