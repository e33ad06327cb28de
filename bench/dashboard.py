"""Dashboard throughput: Tandem's GraphQL endpoint against a hand-written Starlette endpoint.

Both serve the same "dashboard" (the viewer's 50 tasks with assignee and document) from one SQLite
file, each in its own uvicorn subprocess (one worker). The load generator alternates between them
for several rounds (A B, B A, ...) so that drift (CPU boost, page cache, a noisy neighbour) hits
both alike, then prints requests/s, p50/p99 latency and the ratio Tandem / hand-written.

    .venv/bin/python bench/dashboard.py                      # defaults: ~30-60 s on 2 cores
    .venv/bin/python bench/dashboard.py --requests 2000 --rounds 6 --concurrency 16

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/dashboard.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402

HOST = "127.0.0.1"
QUERY = (
    "{ viewer { tasks(first: 50) { edges { node { id title status "
    "assignee { id name } document { id title } } } } } }"
)
TASKS_PER_VIEWER = 50
ASSIGNEES = 10
OTHER_TASKS_PER_ASSIGNEE = 20  # rows the dashboard query must skip
STATUSES = ("TODO", "IN_PROGRESS", "DONE")


# --- seeding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    directory: Path

    @property
    def db_path(self) -> Path:
        return self.directory / "dashboard.db"

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.db_path}"

    @property
    def keys_dir(self) -> Path:
        return self.directory / "keys"


def seed(workspace: Workspace) -> int:
    """Migrate a fresh database and fill it; returns the viewer's user id."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from db.migrate import upgrade
    from db.models import Document, DocumentCollaborator, Task, User

    upgrade(workspace.database_url)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    engine = create_engine(f"sqlite:///{workspace.db_path}")
    with Session(engine) as session, session.begin():
        viewer = User(email="viewer@bench.test", name="Vera Viewer", password_hash=None, role="member")
        people = [
            User(email=f"user{i}@bench.test", name=f"Teammate {i}", password_hash=None, role="member")
            for i in range(ASSIGNEES)
        ]
        session.add_all([viewer, *people])
        session.flush()
        # Documents belong to teammates and are shared with the viewer, so visibility is a real check.
        documents = [Document(title=f"Spec {i}", owner_id=person.id) for i, person in enumerate(people)]
        session.add_all(documents)
        session.flush()
        for document, person in zip(documents, people, strict=True):
            session.add(DocumentCollaborator(document_id=document.id, user_id=person.id, role="OWNER"))
            session.add(DocumentCollaborator(document_id=document.id, user_id=viewer.id, role="EDITOR"))
        for i in range(TASKS_PER_VIEWER):
            session.add(Task(
                title=f"Dashboard task {i + 1}", description="", status=STATUSES[i % 3], priority=1 + i % 4,
                owner_id=viewer.id, assignee_id=people[i % ASSIGNEES].id, document_id=documents[i % 7].id,
                created_at=start + timedelta(minutes=i), updated_at=start + timedelta(minutes=i),
            ))
        for j, person in enumerate(people):
            for k in range(OTHER_TASKS_PER_ASSIGNEE):
                moment = start + timedelta(hours=j, seconds=k)
                session.add(Task(
                    title=f"Someone else's task {j}.{k}", description="", status="TODO", priority=2,
                    owner_id=person.id, assignee_id=people[(j + 1) % ASSIGNEES].id,
                    created_at=moment, updated_at=moment,
                ))
        viewer_id = viewer.id
    engine.dispose()
    return viewer_id


def issue_token(workspace: Workspace, viewer_id: int) -> str:
    from app.main import token_service

    return token_service(tandem_settings(workspace)).issue_access_token(
        str(viewer_id), {"profile", "tasks:read", "documents:read"}, client_id="bench", ttl_seconds=3600
    )


def tandem_settings(workspace: Workspace) -> Any:
    from app.settings import Settings

    return Settings(
        database_url=workspace.database_url,
        keys_dir=workspace.keys_dir,
        redis_url=None,
        log_level="WARNING",
        freeze_gc_on_start=True,
        otel_exporter="none",
        _env_file=None,  # type: ignore[call-arg]
    )


# --- (b) the hand-written endpoint ------------------------------------------------------------------


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


# --- servers ------------------------------------------------------------------------------------


def serve(kind: str, workspace: Workspace, port: int) -> None:
    """Subprocess entry point: one uvicorn worker, quiet logs."""
    import uvicorn

    if kind == "tandem":
        from app.main import create_app

        settings = tandem_settings(workspace)
        application = create_app(settings)
    else:
        from app.settings import Settings

        defaults = Settings(_env_file=None)  # type: ignore[call-arg]
        application = handwritten_app(workspace, defaults.issuer, defaults.audience)
    uvicorn.run(application, host=HOST, port=port, log_level="warning", access_log=False, lifespan="on",
                workers=None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.contextmanager
def running(kind: str, workspace: Workspace, cpu: int | None) -> Iterator[Server]:
    port = _free_port()
    env = {**os.environ, "TANDEM_FREEZE_GC_ON_START": "true", "TANDEM_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind,
               "--workspace", str(workspace.directory), "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    server = Server(kind, port, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the {kind} server exited during startup (code {process.returncode})")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the {kind} server did not start within 60 s")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- load -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Tally:
    seconds: float = 0.0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def burst(
    client: httpx.AsyncClient, target: Target, requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """`requests` POSTs over `concurrency` connections; returns wall seconds and per-request latencies."""
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.post(target.url, content=target.body, headers=target.headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{target.name}: HTTP {response.status_code}: {response.text[:500]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, Tally]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    clients = {t.name: httpx.AsyncClient(limits=limits, timeout=30) for t in targets}
    try:
        answers = []
        for target in targets:
            response = await clients[target.name].post(target.url, content=target.body, headers=target.headers)
            body = response.json()
            if response.status_code != 200 or "errors" in body:
                raise SystemExit(f"{target.name} answered {response.status_code}: {response.text[:1000]}")
            answers.append(body["data"])
        if any(answer != answers[0] for answer in answers):
            shown = "\n".join(orjson.dumps(answer).decode()[:2000] for answer in answers)
            raise SystemExit(f"the two endpoints disagree:\n{shown}")
        edges = answers[0]["viewer"]["tasks"]["edges"]
        print(f"responses are equal JSON ({len(edges)} tasks, {len(orjson.dumps(answers[0]))} bytes of data)")

        for target in targets:  # warm-up: connection pools, parser caches, page cache
            await burst(clients[target.name], target, args.warmup, args.concurrency)

        tallies = {t.name: Tally() for t in targets}
        for round_number in range(args.rounds):
            order = targets if round_number % 2 == 0 else targets[::-1]
            for target in order:
                seconds, latencies = await burst(clients[target.name], target, args.requests, args.concurrency)
                tally = tallies[target.name]
                tally.seconds += seconds
                tally.requests += len(latencies)
                tally.latencies += latencies
                tally.round_rates.append(len(latencies) / seconds)
            rates = "  ".join(f"{t.name} {tallies[t.name].round_rates[-1]:7.0f} req/s" for t in targets)
            print(f"round {round_number + 1}/{args.rounds}: {rates}")
        return tallies
    finally:
        for client in clients.values():
            await client.aclose()


def report(tallies: dict[str, Tally], args: argparse.Namespace) -> None:
    print()
    print(f"{'endpoint':<14}{'req/s':>9}{'rounds min-max':>18}{'p50 ms':>9}{'p99 ms':>9}{'requests':>10}")
    for name, tally in tallies.items():
        spread = f"{min(tally.round_rates):.0f}-{max(tally.round_rates):.0f}"
        print(f"{name:<14}{tally.rate:>9.0f}{spread:>18}{tally.percentile(50):>9.1f}"
              f"{tally.percentile(99):>9.1f}{tally.requests:>10}")
    tandem, hand = tallies["tandem"], tallies["hand-written"]
    per_round = [a / b for a, b in zip(tandem.round_rates, hand.round_rates, strict=True)]
    print()
    print(f"throughput ratio tandem / hand-written: {tandem.rate / hand.rate:.2f} "
          f"(per round {min(per_round):.2f}-{max(per_round):.2f}, median {statistics.median(per_round):.2f})")
    print(f"p50 latency ratio tandem / hand-written: {tandem.percentile(50) / hand.percentile(50):.2f}")
    print(f"concurrency {args.concurrency}, {args.rounds} rounds x {args.requests} requests per endpoint, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average before/after {args.load_before:.2f}/{os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=250, help="requests per endpoint per round (250)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent connections (8)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per endpoint first (100)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the servers to one CPU and the load generator to another")
    parser.add_argument("--serve", choices=["tandem", "hand-written"], help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve(args.serve, Workspace(args.workspace), args.port)
        return

    # On a machine with two or more CPUs, the servers (one loaded at a time) get one CPU and this
    # process another, so the load generator does not steal the server's time slices.
    args.load_before = os.getloadavg()[0]  # other work on the machine skews both sides, not the ratio
    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    cpus = sorted(os.sched_getaffinity(0)) if pin else []
    workspace = Workspace(Path(tempfile.mkdtemp(prefix="tandem-bench-")))
    try:
        viewer_id = seed(workspace)
        token = issue_token(workspace, viewer_id)  # also creates the signing key both servers read
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
        body = orjson.dumps({"query": QUERY})
        if pin:
            os.sched_setaffinity(0, {cpus[0]})
        with running("tandem", workspace, cpus[1] if pin else None) as tandem, \
                running("hand-written", workspace, cpus[1] if pin else None) as hand:
            targets = [
                Target("tandem", f"{tandem.url}/graphql", headers, body),
                Target("hand-written", f"{hand.url}/dashboard", headers, body),
            ]
            print(f"seeded {workspace.db_path}; servers pinned to CPU {cpus[1]}, load generator to CPU {cpus[0]}"
                  if pin else f"seeded {workspace.db_path}; no CPU pinning")
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                tallies = runner.run(measure(targets, args))
        report(tallies, args)
    finally:
        shutil.rmtree(workspace.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
