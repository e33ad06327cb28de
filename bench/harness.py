"""What every benchmark here shares: a seeded workspace, servers in subprocesses, a load generator,
interleaved rounds, server CPU accounting and the report.

- `Workspace` + `seed`: a fresh SQLite file migrated with the app's migrations and filled with one
  viewer's 50-task dashboard (10 teammates, 10 documents shared with the viewer, 200 other tasks).
- `running(...)`: a server in its own process (`tandem` = `create_app` under uvicorn, one or more
  workers; `hand-written` = bench/handwritten.py), pinned to one CPU when asked, stopped afterwards.
- `measure(...)`: warm-up, then rounds that alternate the order of the ways (A B, B A, ...) so drift
  hits all alike; each way is a URL, headers and a body (fixed or made fresh per request).
- Server CPU: the server's process tree's user+system time (`/proc`) over each measured burst,
  divided by the requests: what a request costs the server, whatever the load generator does.

Not a test: nothing here asserts a timing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):  # run as `python bench/<script>.py` from a checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import httpx  # noqa: E402
import orjson  # noqa: E402

HOST = "127.0.0.1"
TASKS_PER_VIEWER = 50
ASSIGNEES = 10
OTHER_TASKS_PER_ASSIGNEE = 20  # rows the dashboard query must skip
STATUSES = ("TODO", "IN_PROGRESS", "DONE")
SCOPES = {"profile", "tasks:read", "tasks:write", "documents:read"}
_TICK = os.sysconf("SC_CLK_TCK")

UNLIMITED_TIERS = json.dumps({tier: {"capacity": 10**12, "restore_rate": 10**9}
                              for tier in ("anonymous", "user", "service", "admin")})


# --- seeding ------------------------------------------------------------------------------------


POSTGRES_ADMIN = os.environ.get("TANDEM_BENCH_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Workspace:
    """A temporary directory (keys, and the SQLite file) and its database: SQLite, or a PostgreSQL
    database made for the run, named in the file `database_url` (so server subprocesses find it)."""

    directory: Path

    @property
    def db_path(self) -> Path:
        return self.directory / "dashboard.db"

    @property
    def database_url(self) -> str:
        named = self.directory / "database_url"
        return named.read_text().strip() if named.exists() else f"sqlite+aiosqlite:///{self.db_path}"

    @property
    def postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def keys_dir(self) -> Path:
        return self.directory / "keys"


@contextlib.contextmanager
def workspace(prefix: str, database: str = "sqlite") -> Iterator[Workspace]:
    """A temporary workspace (seed it with `seed`), deleted afterwards with its database."""
    place = Workspace(Path(tempfile.mkdtemp(prefix=prefix)))
    name = f"tandem_bench_{os.getpid()}"
    if database == "postgres":
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        (place.directory / "database_url").write_text(f"{base}/{name}")
    try:
        yield place
    finally:
        if database == "postgres":
            _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(place.directory, ignore_errors=True)


def _postgres_admin(*statements: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def seed(workspace: Workspace) -> int:
    """Migrate a fresh database and fill it; returns the viewer's user id."""
    from db.migrate import upgrade

    upgrade(workspace.database_url)
    return asyncio.run(_fill(workspace))


async def _fill(workspace: Workspace) -> int:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from db.models import Document, DocumentCollaborator, Task, User

    start = datetime(2026, 11, 1, tzinfo=UTC)
    engine = create_async_engine(workspace.database_url)
    async with AsyncSession(engine) as session, session.begin():
        viewer = User(email="viewer@bench.test", name="Vera Viewer", password_hash=None, role="member")
        people = [
            User(email=f"user{i}@bench.test", name=f"Teammate {i}", password_hash=None, role="member")
            for i in range(ASSIGNEES)
        ]
        session.add_all([viewer, *people])
        await session.flush()
        # Documents belong to teammates and are shared with the viewer, so visibility is a real check.
        documents = [Document(title=f"Spec {i}", owner_id=person.id) for i, person in enumerate(people)]
        session.add_all(documents)
        await session.flush()
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
    await engine.dispose()
    return viewer_id


def tandem_settings(workspace: Workspace, **overrides: Any) -> Any:
    from app.settings import Settings

    values: dict[str, Any] = {
        "database_url": workspace.database_url,
        "keys_dir": workspace.keys_dir,
        "redis_url": None,
        "log_level": "WARNING",
        "freeze_gc_on_start": True,
        "otel_exporter": "none",
    }
    return Settings(**{**values, **overrides}, _env_file=None)


def issue_token(workspace: Workspace, viewer_id: int) -> str:
    """A bearer token for the viewer; also creates the signing key every server reads."""
    from app.main import token_service

    return token_service(tandem_settings(workspace)).issue_access_token(
        str(viewer_id), SCOPES, client_id="bench", ttl_seconds=3600
    )


def shipped_operation(name: str) -> str:
    """The text of operation `name` in the shipped manifest, `persisted_queries/mobile-app.json`."""
    manifest = json.loads((ROOT / "persisted_queries" / "mobile-app.json").read_text())
    return str(next(op["body"] for op in manifest["operations"] if op["name"] == name))


def task_global_id(number: int) -> str:
    """The GraphQL id of the seeded task with database id `number`."""
    return base64.urlsafe_b64encode(f"Task:{number}".encode()).decode().rstrip("=")


def bearer_headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


# --- servers ------------------------------------------------------------------------------------


def serve(kind: str, workspace: Workspace, port: int, workers: int, redis_url: str | None) -> None:
    """Subprocess entry point (`python bench/harness.py --serve KIND ...`): uvicorn, quiet logs."""
    import uvicorn

    from app.http_protocol import CoalescingHttpToolsProtocol

    if kind == "tandem" and workers > 1:
        # Several workers import the app themselves (uvicorn's factory mode), like `tandem serve --workers N`.
        os.environ.update(TANDEM_DATABASE_URL=workspace.database_url, TANDEM_KEYS_DIR=str(workspace.keys_dir),
                          TANDEM_OTEL_EXPORTER="none")
        if redis_url:
            os.environ["TANDEM_REDIS_URL"] = redis_url
        uvicorn.run("app.main:app_from_environment", factory=True, host=HOST, port=port, workers=workers,
                    log_level="warning", access_log=False, lifespan="on", http=CoalescingHttpToolsProtocol,
                    server_header=False)
        return
    if kind == "tandem":
        from app.main import create_app

        application = create_app(tandem_settings(workspace, redis_url=redis_url))
    elif kind in ("hand-written", "fast"):
        from handwritten import handwritten_app
        from handwritten_fast import fast_app

        from app.settings import Settings

        defaults = Settings(_env_file=None)  # type: ignore[call-arg]
        make = handwritten_app if kind == "hand-written" else fast_app
        application = make(workspace, defaults.issuer, defaults.audience)
    else:
        application = _hello_app(tandem_like=kind == "hello-headers")
    # Tandem and the floor under it run uvicorn as `tandem serve` does (one write per response,
    # app/http_protocol.py); the hand-written endpoint and the bare app run stock uvicorn.
    http: Any = CoalescingHttpToolsProtocol if kind in ("tandem", "hello-headers") else "auto"
    uvicorn.run(application, host=HOST, port=port, log_level="warning", access_log=False, lifespan="on", http=http,
                server_header=kind not in ("tandem", "hello-headers"))


def _hello_app(*, tandem_like: bool = False) -> Any:
    """A bare ASGI app: what uvicorn's HTTP handling alone costs per request. `tandem_like`: answering
    with the header fields and body of Tandem's anonymous `{ __typename }` answer (uvicorn checks and
    encodes every header field, so they are part of the floor)."""
    data: dict[str, Any] = {"data": {"__typename": "Query"}}
    extra: list[tuple[bytes, bytes]] = []
    if tandem_like:
        from app.middleware import security_headers

        data["extensions"] = {"cost": {"requestedQueryCost": 0, "actualQueryCost": 0, "throttleStatus": {
            "maximumAvailable": 1000, "currentlyAvailable": 1000, "restoreRate": 10.0}}}
        extra = [(b"ratelimit-policy", b'"anonymous";q=1000;w=100'), (b"ratelimit", b'"anonymous";r=1000;t=0'),
                 *security_headers(hsts=False), (b"vary", b"Origin"), (b"x-request-id", os.urandom(16).hex().encode())]
    body = orjson.dumps(data)
    length = str(len(body)).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", length), *extra]})
        await send({"type": "http.response.body", "body": body})

    return app


def free_port() -> int:
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

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its children (uvicorn workers), so far."""
        return sum(_cpu_of(pid) for pid in [self.process.pid, *_descendants(self.process.pid)])


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (all threads, living and ended)


@contextlib.contextmanager
def running(kind: str, workspace: Workspace, cpu: int | None, *, workers: int = 1,
            redis_url: str | None = None) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "TANDEM_FREEZE_GC_ON_START": "true", "TANDEM_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
           # Cost analysis and the rate limiter stay on; a load test just gets a budget it cannot exhaust.
           "TANDEM_RATE_TIERS": UNLIMITED_TIERS}
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--workspace", str(workspace.directory),
               "--port", str(port), "--workers", str(workers)]
    if redis_url:
        command += ["--redis-url", redis_url]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})  # inherited by uvicorn's worker processes
    server = Server(kind, port, process)
    with supervised(process, server.url, kind):
        yield server


@contextlib.contextmanager
def supervised(process: subprocess.Popen[bytes], url: str, name: str) -> Iterator[None]:
    """Wait until the server at `url` answers `/healthz` (60 s at most), and stop it on the way out."""
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the {name} server exited during startup (code {process.returncode})")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code in (200, 404):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the {name} server did not start within 60 s")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Placement:
    """Where servers and the load generator run: one CPU each when there are two or more."""

    server_cpu: int | None
    load_cpu: int | None

    @classmethod
    def choose(cls, pin: bool) -> Placement:
        if pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[0]})  # this process: the load generator
            return cls(cpus[1], cpus[0])
        return cls(None, None)

    def describe(self) -> str:
        if self.server_cpu is None:
            return "no CPU pinning"
        return f"servers pinned to CPU {self.server_cpu}, load generator to CPU {self.load_cpu}"


# --- load -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Way:
    """One way of asking: a server, a URL, headers and a body (fixed, or made fresh per request)."""

    name: str
    server: Server
    url: str
    headers: dict[str, str]
    body: bytes | Callable[[], bytes]

    def next_body(self) -> bytes:
        return self.body() if callable(self.body) else self.body


@dataclass
class Tally:
    seconds: float = 0.0
    requests: int = 0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_seconds / self.requests * 1e6

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


class Answer:
    """What `RawClient.post` gives back: the parts of an HTTP response the benchmarks look at."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class RawClient:
    """HTTP/1.1 keep-alive POSTs over plain asyncio streams, one connection per concurrent worker.

    httpx spends ~1 ms of the load generator's CPU per request, so it cannot keep a fast server busy
    from one core (it topped out at ~750 `{ __typename }` requests/s); this sends pre-encoded
    requests and reads `Content-Length` bodies only, which is all our servers send.
    """

    def __init__(self) -> None:
        self._idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}

    async def post(self, url: str, content: bytes, headers: dict[str, str]) -> Answer:
        parts = urlsplit(url)
        head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(content)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + content
        idle = self._idle.setdefault(parts.netloc, [])
        if idle:
            connection = idle.pop()
            try:
                answer = await self._exchange(connection, request, url)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                connection[1].close()  # the server closed it while idle (keep-alive timeout): start over
            else:
                idle.append(connection)
                return answer
        connection = await asyncio.open_connection(parts.hostname, parts.port)
        answer = await self._exchange(connection, request, url)
        idle.append(connection)
        return answer

    @staticmethod
    async def _exchange(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes,
                        url: str) -> Answer:
        reader, writer = connection
        writer.write(request)
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        received = {}
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                received[name.strip().lower()] = value.strip()
        if "content-length" not in received:
            raise SystemExit(f"{url} answered without Content-Length, which this client does not read")
        body = await reader.readexactly(int(received["content-length"]))
        return Answer(int(status_line.split()[1]), received, body)

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


Check = Callable[[Answer], str | None]  # an error message, or None when the answer is right


def ok_without_errors(response: Answer) -> str | None:
    if response.status_code != 200 or b'"errors"' in response.content:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    return None


async def burst(client: RawClient, way: Way, requests: int, concurrency: int,
                check: Check = ok_without_errors) -> tuple[float, list[float]]:
    """`requests` POSTs over `concurrency` connections; returns wall seconds and per-request latencies."""
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.post(way.url, way.next_body(), way.headers)
            latencies.append(time.perf_counter() - started)
            problem = check(response)
            if problem:
                raise SystemExit(f"{way.name}: {problem}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def measure(ways: Sequence[Way], args: argparse.Namespace, *, concurrency: int | None = None,
                  check: Check = ok_without_errors, label: str = "req/s") -> dict[str, Tally]:
    """Warm up each way, then `args.rounds` rounds alternating their order; one `Tally` per way."""
    concurrency = concurrency or args.concurrency
    client = RawClient()
    try:
        for way in ways:  # connection pools, document caches, page cache
            await burst(client, way, args.warmup, concurrency, check)
        tallies = {way.name: Tally() for way in ways}
        for round_number in range(args.rounds):
            for way in ways if round_number % 2 == 0 else ways[::-1]:
                cpu_before = way.server.cpu_seconds()
                seconds, latencies = await burst(client, way, args.requests, concurrency, check)
                tally = tallies[way.name]
                tally.cpu_seconds += way.server.cpu_seconds() - cpu_before
                tally.seconds += seconds
                tally.requests += len(latencies)
                tally.latencies += latencies
                tally.round_rates.append(len(latencies) / seconds)
            rates = "  ".join(f"{way.name} {tallies[way.name].round_rates[-1]:6.0f}" for way in ways)
            print(f"round {round_number + 1}/{args.rounds} ({label}): {rates}")
    finally:
        await client.aclose()
    return tallies


def run(coroutine: Any) -> Any:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


# --- report ---------------------------------------------------------------------------------------


def table(tallies: dict[str, Tally], title: str = "way", extra: dict[str, str] | None = None,
          extra_title: str = "") -> None:
    print()
    print(f"{title:<16}{'req/s':>8}{'rounds min-max':>16}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}"
          + (f"  {extra_title}" if extra_title else ""))
    for name, tally in tallies.items():
        spread = f"{min(tally.round_rates):.0f}-{max(tally.round_rates):.0f}"
        line = (f"{name:<16}{tally.rate:>8.0f}{spread:>16}{tally.percentile(50):>9.1f}{tally.percentile(99):>9.1f}"
                f"{tally.cpu_per_request_us:>12.0f}")
        if extra and name in extra:
            line += f"  {extra[name]}"
        print(line)


def ratio(tallies: dict[str, Tally], a: str, b: str, what: str = "throughput") -> float:
    per_round = [x / y for x, y in zip(tallies[a].round_rates, tallies[b].round_rates, strict=True)]
    value = tallies[a].rate / tallies[b].rate
    print(f"{what} {a} / {b}: {value:.2f} (per round {min(per_round):.2f}-{max(per_round):.2f}, "
          f"median {statistics.median(per_round):.2f})")
    return value


def add_common_arguments(parser: argparse.ArgumentParser, *, requests: int, rounds: int = 6,
                         concurrency: int = 8, warmup: int = 100) -> None:
    parser.add_argument("--requests", type=int, default=requests, help=f"requests per way per round ({requests})")
    parser.add_argument("--rounds", type=int, default=rounds, help=f"interleaved rounds ({rounds})")
    parser.add_argument("--concurrency", type=int, default=concurrency,
                        help=f"concurrent connections ({concurrency})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"unmeasured requests per way first ({warmup})")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the servers to one CPU and the load generator to another")


def footer(args: argparse.Namespace, load_before: float, what: str = "way") -> None:
    print(f"concurrency {args.concurrency}, {args.rounds} rounds x {args.requests} requests per {what}, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average before/after {load_before:.2f}/{os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Server subprocess entry point for the benchmarks.")
    parser.add_argument("--serve", choices=["tandem", "hand-written", "fast", "hello", "hello-headers"], required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    serve(args.serve, Workspace(args.workspace), args.port, args.workers, args.redis_url)


if __name__ == "__main__":
    main()
