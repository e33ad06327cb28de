"""What the query limits and the rate limiter cost per request: the same server, limits off and on.

Three uvicorn subprocesses serve one SQLite file with the real `create_app` (one worker each):

- **off**: `TANDEM_LIMITS_ENABLED=false` (Strawberry's validation cache, nothing else);
- **memory**: limits on, in-process buckets (no Redis configured);
- **redis**: limits on, buckets in a private `redis-server` that this script starts on a free port,
  so its command counters see this server's commands only.

The buckets are made too large to ever refuse, so every request takes the full path: static
limits, pricing, one charge, execution, actual cost and a refund (`first: 50` over 20 tasks asks
for 52 points and uses 22). After a check that all three answer the same data, rounds alternate
the order (A B C, C B A, ...) so drift hits all alike. Printed: requests/s, p50/p99 latency, the
server time each request costs over "off" (at saturation, one worker: 1/rate_on - 1/rate_off), and
the Redis commands per request, an upper bound on round trips (a pipeline is several commands in one).
The load is signed in, so every request also checks the revocation list: from the server's in-memory
copy (auth/revocation_replica.py), not in Redis; the copy's own traffic (its heartbeat PINGs, and the
SUBSCRIBE/SCAN of start-up) does not grow with the load and is reported apart.

    .venv/bin/python bench/limits.py                      # about a minute on 2 cores
    .venv/bin/python bench/limits.py --requests 400 --rounds 8 --concurrency 8

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
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
if str(ROOT) not in sys.path:  # run as `python bench/limits.py` from a checkout
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from harness import UNLIMITED_TIERS, free_port, supervised  # noqa: E402

HOST = "127.0.0.1"
QUERY = "{ viewer { tasks(first: 50) { nodes { id title status } } } }"
TASKS = 20
SCRIPT_INNER = {"time", "hmget", "hset", "pexpire"}  # what limits/redis_buckets.py's script calls
REPLICA = {"ping", "subscribe", "scan", "pttl"}  # the revocation list's copy keeping in sync, not requests


def seed(directory: Path) -> tuple[str, str]:
    """A migrated SQLite file with one user and their tasks; returns (database URL, bearer token)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.main import token_service
    from app.settings import Settings
    from db.migrate import upgrade
    from db.models import Task, User

    url = f"sqlite+aiosqlite:///{directory / 'limits.db'}"
    upgrade(url)
    engine = create_engine(f"sqlite:///{directory / 'limits.db'}")
    with Session(engine) as session, session.begin():
        user = User(email="bench@bench.test", name="Bench", password_hash=None, role="member")
        session.add(user)
        session.flush()
        session.add_all(Task(title=f"Task {i}", description="", status="TODO", priority=2, owner_id=user.id)
                        for i in range(TASKS))
        user_id = user.id
    engine.dispose()
    settings = Settings(database_url=url, keys_dir=directory / "keys", _env_file=None)  # type: ignore[call-arg]
    token = token_service(settings).issue_access_token(str(user_id), {"tasks:read"}, client_id="bench",
                                                       ttl_seconds=3600)
    return url, token


@contextlib.contextmanager
def redis_server(cpu: int | None) -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not found: the redis case is left out")
        yield None
        return
    port = free_port()
    process = subprocess.Popen([binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def running(name: str, env_overrides: dict[str, str], directory: Path, database_url: str,
            cpu: int | None) -> Iterator[Server]:
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env = {**inherited, "TANDEM_DATABASE_URL": database_url, "TANDEM_KEYS_DIR": str(directory / "keys"),
           "TANDEM_RATE_TIERS": UNLIMITED_TIERS, "TANDEM_LOG_LEVEL": "WARNING", "TANDEM_FREEZE_GC_ON_START": "true",
           **env_overrides}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app_from_environment", "--factory", "--host", HOST,
         "--port", str(port), "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    if cpu is not None:
        os.sched_setaffinity(process.pid, {cpu})
    server = Server(name, f"http://{HOST}:{port}", process)
    with supervised(process, server.url, name):
        yield server


@dataclass
class Tally:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def burst(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                requests: int, concurrency: int) -> tuple[float, list[float]]:
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:500]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def redis_commands(url: str) -> dict[str, int]:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def measure(servers: list[Server], token: str, args: argparse.Namespace, redis_url: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Accept": "application/graphql-response+json"}
    body = orjson.dumps({"query": QUERY})
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    clients = {s.name: httpx.AsyncClient(limits=limits, timeout=30) for s in servers}
    try:
        answers = {}
        for server in servers:
            response = (await clients[server.name].post(f"{server.url}/graphql", content=body, headers=headers)).json()
            if "errors" in response:
                raise SystemExit(f"{server.name}: {response}")
            answers[server.name] = response
        if len({orjson.dumps(a["data"]) for a in answers.values()}) != 1:
            raise SystemExit("the servers disagree")
        for server in servers:
            print(f"{server.name:>7}: extensions {orjson.dumps(answers[server.name].get('extensions')).decode()}")
        for server in servers:
            await burst(clients[server.name], f"{server.url}/graphql", body, headers, args.warmup, args.concurrency)

        before = await redis_commands(redis_url) if redis_url else {}
        tallies = {s.name: Tally() for s in servers}
        for number in range(args.rounds):
            for server in servers if number % 2 == 0 else servers[::-1]:
                seconds, latencies = await burst(clients[server.name], f"{server.url}/graphql", body, headers,
                                                 args.requests, args.concurrency)
                tally = tallies[server.name]
                tally.seconds += seconds
                tally.latencies += latencies
                tally.round_rates.append(len(latencies) / seconds)
            print(f"round {number + 1}/{args.rounds}: "
                  + "  ".join(f"{s.name} {tallies[s.name].round_rates[-1]:6.0f} req/s" for s in servers))
        after = await redis_commands(redis_url) if redis_url else {}
    finally:
        for client in clients.values():
            await client.aclose()

    off = tallies["off"]
    print(f"\n{'limits':<9}{'req/s':>8}{'rounds min-max':>17}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'vs off':>9}{'µs/request':>12}")
    for name, tally in tallies.items():
        extra = (1 / tally.rate - 1 / off.rate) * 1e6
        print(f"{name:<9}{tally.rate:8.0f}{min(tally.round_rates):9.0f}-{max(tally.round_rates):<7.0f}"
              f"{tally.percentile(50):9.2f}{tally.percentile(99):9.2f}{tally.rate / off.rate:9.3f}{extra:12.0f}")
    for name, tally in tallies.items():
        if name != "off":
            ratios = [on / base for on, base in zip(tally.round_rates, off.round_rates, strict=True)]
            print(f"throughput {name} / off per round: {min(ratios):.3f}-{max(ratios):.3f}, "
                  f"median {statistics.median(ratios):.3f}")
    if redis_url:
        served = len(tallies["redis"].latencies)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        # Commands the Lua script runs inside Redis are counted too; they are not round trips.
        sent = {k: v for k, v in delta.items() if v and k not in SCRIPT_INNER | REPLICA and k != "info"}
        background = {k: v for k, v in delta.items() if v and k in REPLICA}
        total = sum(sent.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(sent.items()))
        print(f"redis: {total} commands sent for {served} requests = {total / served:.3f} per request ({detail})")
        print("redis, the revocation list's copy keeping in sync (whatever the load): "
              + (", ".join(f"{k} {v}" for k, v in sorted(background.items())) or "nothing"))
    print(f"concurrency {args.concurrency}, {args.rounds} rounds x {args.requests} requests per server, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the scheduler")
    args = parser.parse_args()

    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    server_cpu, load_cpu = (0, 1) if pin else (None, None)
    if load_cpu is not None:
        os.sched_setaffinity(0, {load_cpu})
    directory = Path(tempfile.mkdtemp(prefix="tandem-bench-limits-"))
    try:
        database_url, token = seed(directory)
        with contextlib.ExitStack() as stack:
            redis_url = stack.enter_context(redis_server(load_cpu))
            configs = {"off": {"TANDEM_LIMITS_ENABLED": "false"}, "memory": {}}
            if redis_url:
                configs["redis"] = {"TANDEM_REDIS_URL": redis_url}
            servers = [stack.enter_context(running(name, env, directory, database_url, server_cpu))
                       for name, env in configs.items()]
            asyncio.run(measure(servers, token, args, redis_url))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
