"""Persisted queries: one operation sent as full text and as persisted, side by side in one run.

One Tandem server (uvicorn, one worker, the same setup as bench/dashboard.py) serves the shipped
`TaskList` operation (persisted_queries/mobile-app.json, 20 tasks with assignee and document) for a
signed-in viewer, requested four ways:

- **text, new**: the full text with a unique trailing comment each time, so every request is parsed
  and validated (what each request costs without a document cache);
- **text**: the same full text each time (the document cache finds it by the text's SHA-256);
- **APQ hash**: `extensions.persistedQuery` only, registered once before measuring;
- **documentId**: `sha256:<hex>` of the trusted manifest's document.

Rounds alternate the order of the four (A B C D, D C B A, ...) so drift hits all alike. Prints
requests/s, p50/p99 latency and the request body size per way, and the ratios.

    .venv/bin/python bench/persisted.py                  # about 40 s on 2 cores
    .venv/bin/python bench/persisted.py --operation TaskDetail --requests 500

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):  # run as `python bench/persisted.py` from a checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import httpx  # noqa: E402
import orjson  # noqa: E402
from dashboard import Tally, Workspace, issue_token, running, seed  # noqa: E402

MANIFEST = ROOT / "persisted_queries" / "mobile-app.json"


@dataclass(frozen=True)
class Way:
    name: str
    body: Callable[[], bytes]  # a fresh body per request (only "text, new" varies)


def operation(name: str) -> tuple[str, dict[str, object]]:
    """The manifest's text of `name` and variables for it against the seeded database."""
    body = next(op["body"] for op in json.loads(MANIFEST.read_text())["operations"] if op["name"] == name)
    if name == "TaskList":
        return body, {"first": 20}
    if name == "TaskDetail":
        return body, {"id": base64.urlsafe_b64encode(b"Task:1").decode().rstrip("=")}
    raise SystemExit(f"no variables known for {name}; use TaskList or TaskDetail")


def ways(query: str, variables: dict[str, object]) -> list[Way]:
    sha = hashlib.sha256(query.encode()).hexdigest()
    counter = itertools.count()
    text = orjson.dumps({"query": query, "variables": variables})
    apq = orjson.dumps({"variables": variables, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}})
    document_id = orjson.dumps({"documentId": f"sha256:{sha}", "variables": variables})
    return [
        Way("text, new", lambda: orjson.dumps({"query": f"{query}\n# {next(counter)}", "variables": variables})),
        Way("text", lambda: text),
        Way("APQ hash", lambda: apq),
        Way("documentId", lambda: document_id),
    ]


async def burst(client: httpx.AsyncClient, url: str, way: Way, requests: int, concurrency: int,
                headers: dict[str, str]) -> tuple[float, list[float]]:
    remaining = requests
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.post(url, content=way.body(), headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or b'"errors"' in response.content:
                raise SystemExit(f"{way.name}: HTTP {response.status_code}: {response.text[:500]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def measure(url: str, headers: dict[str, str], all_ways: list[Way], query: str,
                  args: argparse.Namespace) -> dict[str, Tally]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        # Register the APQ hash the way Apollo Client does on its first miss: hash + query.
        sha = hashlib.sha256(query.encode()).hexdigest()
        register = {"query": query, "variables": orjson.loads(all_ways[1].body())["variables"],
                    "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}}
        await client.post(url, content=orjson.dumps(register), headers=headers)
        answers = [(await client.post(url, content=way.body(), headers=headers)).json() for way in all_ways]
        if any(answer != answers[0] or "errors" in answer for answer in answers):
            raise SystemExit(f"the four ways disagree or fail: {str(answers)[:2000]}")
        print(f"all four ways give the same answer ({len(orjson.dumps(answers[0]))} bytes)")
        for way in all_ways:
            await burst(client, url, way, args.warmup, args.concurrency, headers)
        tallies = {way.name: Tally() for way in all_ways}
        for round_number in range(args.rounds):
            order = all_ways if round_number % 2 == 0 else all_ways[::-1]
            for way in order:
                seconds, latencies = await burst(client, url, way, args.requests, args.concurrency, headers)
                tally = tallies[way.name]
                tally.seconds += seconds
                tally.requests += len(latencies)
                tally.latencies += latencies
                tally.round_rates.append(len(latencies) / seconds)
            rates = "  ".join(f"{w.name} {tallies[w.name].round_rates[-1]:5.0f}" for w in all_ways)
            print(f"round {round_number + 1}/{args.rounds} (req/s): {rates}")
    return tallies


def report(tallies: dict[str, Tally], all_ways: list[Way], args: argparse.Namespace) -> None:
    print()
    print(f"{'sent as':<12}{'req/s':>8}{'rounds min-max':>16}{'p50 ms':>9}{'p99 ms':>9}{'body bytes':>12}")
    for way in all_ways:
        tally = tallies[way.name]
        spread = f"{min(tally.round_rates):.0f}-{max(tally.round_rates):.0f}"
        print(f"{way.name:<12}{tally.rate:>8.0f}{spread:>16}{tally.percentile(50):>9.1f}"
              f"{tally.percentile(99):>9.1f}{len(way.body()):>12}")
    print()
    for base in ("text, new", "text"):
        for way in ("APQ hash", "documentId"):
            ratios = [a / b for a, b in zip(tallies[way].round_rates, tallies[base].round_rates, strict=True)]
            print(f"throughput {way} / {base}: {tallies[way].rate / tallies[base].rate:.2f} "
                  f"(per round {min(ratios):.2f}-{max(ratios):.2f}, median {statistics.median(ratios):.2f})")
    print(f"operation {args.operation}, concurrency {args.concurrency}, {args.rounds} rounds x {args.requests} "
          f"requests per way, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average before/after {args.load_before:.2f}/{os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operation", default="TaskList", choices=["TaskList", "TaskDetail"])
    parser.add_argument("--requests", type=int, default=200, help="requests per way per round (200)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent connections (8)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests per way first (50)")
    parser.add_argument("--no-pin", action="store_true", help="leave CPU placement to the scheduler")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    query, variables = operation(args.operation)
    all_ways = ways(query, variables)

    pin = not args.no_pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    cpus = sorted(os.sched_getaffinity(0)) if pin else []
    workspace = Workspace(Path(tempfile.mkdtemp(prefix="tandem-bench-pq-")))
    try:
        viewer_id = seed(workspace)
        token = issue_token(workspace, viewer_id)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
        if pin:
            os.sched_setaffinity(0, {cpus[0]})
        with running("tandem", workspace, cpus[1] if pin else None) as tandem:
            print(f"server pinned to CPU {cpus[1]}, load generator to CPU {cpus[0]}" if pin else "no CPU pinning")
            import uvloop

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                tallies = runner.run(measure(f"{tandem.url}/graphql", headers, all_ways, query, args))
        report(tallies, all_ways, args)
    finally:
        shutil.rmtree(workspace.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
