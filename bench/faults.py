"""Two Tandem instances under load while their Redis is stopped, restarted, hung (SIGSTOP) and woken.

Two `tandem` servers share the seeded SQLite file and a private `redis-server` this script starts on a
free port. Load from `--concurrency` connections spread over both: the dashboard query, a `createTask`
mutation with a fresh `Idempotency-Key`, and `POST /auth/ws-ticket`, in turn. The timeline, each phase
`--phase-seconds` long:

    normal -> Redis stopped -> restarted (empty) -> Redis hung (SIGSTOP) -> woken (SIGCONT)

Prints one line per second (answers by status, transport errors, p99 latency), then per phase the
answers by status and p99, and how long after each repair until a second looked like the first phase
again (no 5xx or lost request, p99 within twice the normal one).

    .venv/bin/python bench/faults.py                       # about 60 s
    .venv/bin/python bench/faults.py --phase-seconds 20 --concurrency 16

What to expect: queries keep answering 200 throughout (the limiter falls back to each instance's
share, revocation is checked in memory or the database); mutations too (Idempotency-Key needs no
Redis); tickets answer 503 with Retry-After while Redis is away. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from dashboard import QUERY
from harness import (
    HOST,
    RawClient,
    bearer_headers,
    free_port,
    issue_token,
    orjson,
    running,
    seed,
    workspace,
)

CREATE = "mutation($title: String!) { createTask(input: {title: $title}) { task { id } } }"
PHASES = ["normal", "redis stopped", "restarted", "redis hung", "woken"]
REQUEST_TIMEOUT = 10.0


def _p99_ms(latencies: list[float]) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


class PrivateRedis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, "--bind", HOST, "--port", str(self.port), "--save", "",
                                         "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                return
            time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def signal(self, number: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, number)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.signal(signal.SIGCONT)
        server.stop()


KINDS = ("query", "mutation", "ticket")


@dataclass
class Second:
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def p99_ms(self) -> float:
        return _p99_ms(self.latencies)

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.statuses.items() if status.startswith(("5", "lost")))


async def load(urls: list[str], token: str, concurrency: int, seconds: list[Second], started: float,
               stop: asyncio.Event, with_keys: bool) -> None:
    headers = bearer_headers(token)
    query = orjson.dumps({"query": QUERY})

    async def worker(number: int) -> None:
        client = RawClient()
        turn = number
        try:
            while not stop.is_set():
                turn += 1
                url = urls[turn % len(urls)]
                kind = turn % 3
                if kind == 0:
                    target, body, extra = f"{url}/graphql", query, {}
                elif kind == 1:
                    key = uuid.uuid4().hex
                    target, body = f"{url}/graphql", orjson.dumps({"query": CREATE, "variables": {"title": key}})
                    extra = {"Idempotency-Key": key} if with_keys else {}
                else:
                    target, body, extra = f"{url}/auth/ws-ticket", b"", {}
                began = time.perf_counter()
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        answer = await client.post(target, body, {**headers, **extra})
                    status = str(answer.status_code)
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                    status = f"lost ({type(exc).__name__})"
                    await client.aclose()
                    client = RawClient()
                took = time.perf_counter() - began
                second = seconds[min(len(seconds) - 1, int(time.monotonic() - started))]
                second.statuses[status] += 1
                second.latencies.append(took)
                second.by_kind[KINDS[kind]].append(took)
        finally:
            await client.aclose()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))


async def timeline(redis: PrivateRedis, phase_seconds: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(phase_seconds)
    redis.stop()  # "redis stopped"
    await asyncio.sleep(phase_seconds)
    redis.start()  # "restarted": on the same port, empty
    await asyncio.sleep(phase_seconds)
    redis.signal(signal.SIGSTOP)  # "redis hung"
    await asyncio.sleep(phase_seconds)
    redis.signal(signal.SIGCONT)  # "woken"
    await asyncio.sleep(phase_seconds)
    stop.set()


def report(seconds: list[Second], phase_seconds: float) -> None:
    phase_of = [PHASES[min(len(PHASES) - 1, int(t / phase_seconds))] for t in range(len(seconds))]
    print(f"{'t':>3}  {'phase':<14} {'answers':>7}  {'p99 ms':>8}  by status")
    for t, second in enumerate(seconds):
        if not second.statuses:
            continue
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(second.statuses.items()))
        print(f"{t:>3}  {phase_of[t]:<14} {sum(second.statuses.values()):>7}  {second.p99_ms:>8.1f}  {statuses}")
    print()
    merged: dict[str, Second] = defaultdict(Second)
    for t, second in enumerate(seconds):
        merged[phase_of[t]].statuses.update(second.statuses)
        merged[phase_of[t]].latencies += second.latencies
        for kind, latencies in second.by_kind.items():
            merged[phase_of[t]].by_kind[kind] += latencies
    for phase in PHASES:
        part = merged[phase]
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(part.statuses.items()))
        kinds = " ".join(f"{kind} {_p99_ms(part.by_kind[kind]):.0f}" for kind in KINDS)
        print(f"{phase:<14} p99 {part.p99_ms:8.1f} ms ({kinds})   {statuses}")
    normal_p99 = merged["normal"].p99_ms or 1.0
    for repaired in ("restarted", "woken"):
        start = PHASES.index(repaired) * int(phase_seconds)
        recovered = next((t - start for t in range(start, len(seconds)) if seconds[t].statuses
                          and seconds[t].failed == 0 and seconds[t].p99_ms <= 2 * normal_p99), None)
        when = f"{recovered} s" if recovered is not None else "not within the phase"
        print(f"back to normal after '{repaired}': {when}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--without-keys", action="store_true", help="mutations without Idempotency-Key")
    args = parser.parse_args()
    with workspace("tandem-bench-faults-") as place, private_redis() as redis:
        token = issue_token(place, seed(place))
        with running("tandem", place, None, redis_url=redis.url) as one, \
                running("tandem", place, None, redis_url=redis.url) as two:
            seconds = [Second() for _ in range(len(PHASES) * args.phase_seconds + 1)]
            stop = asyncio.Event()

            async def both() -> None:
                started = time.monotonic()
                await asyncio.gather(load([one.url, two.url], token, args.concurrency, seconds, started, stop,
                                          not args.without_keys),
                                     timeline(redis, args.phase_seconds, stop))

            asyncio.run(both())
    report(seconds, args.phase_seconds)
    print(f"\n{args.concurrency} connections over 2 instances, {args.phase_seconds} s per phase, "
          f"load average before {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
