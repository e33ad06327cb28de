"""Dashboard: Tandem's GraphQL endpoint against two hand-written endpoints, side by side.

All three serve the same "dashboard" (the viewer's 50 tasks with assignee and document) from one
database, each in its own uvicorn process (one worker unless `--workers`, pinned to the same CPU; the
load generator on another):

- tandem: `POST /graphql`, with Redis when `--redis URL` is given (the production shape);
- hand-written: SQLAlchemy Core on the same async driver (bench/handwritten.py);
- fast: written for speed, the driver directly: sqlite3 on the event loop, or an asyncpg pool with
  prepared statements (bench/handwritten_fast.py).

After checking that all answer the same JSON, the load generator alternates between them for several
rounds so that drift hits all alike: first at `--concurrency` connections (throughput), then at one
connection (latency). Prints requests/s, p50/p99 latency, server CPU per request, and the ratios.

    .venv/bin/python bench/dashboard.py                                  # SQLite, about 2 minutes
    .venv/bin/python bench/dashboard.py --database postgres --redis redis://127.0.0.1:6379/8
    .venv/bin/python bench/dashboard.py --database postgres --redis redis://127.0.0.1:6379/8 --workers 2

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import os

from harness import (
    Placement,
    Way,
    add_common_arguments,
    bearer_headers,
    footer,
    httpx,
    issue_token,
    measure,
    orjson,
    ratio,
    run,
    running,
    seed,
    table,
    workspace,
)

QUERY = (
    "{ viewer { tasks(first: 50) { edges { node { id title status "
    "assignee { id name } document { id title } } } } } }"
)


async def same_answers(ways: list[Way]) -> None:
    answers = []
    async with httpx.AsyncClient(timeout=30) as client:
        for way in ways:
            response = await client.post(way.url, content=way.next_body(), headers=way.headers)
            body = response.json()
            if response.status_code != 200 or "errors" in body:
                raise SystemExit(f"{way.name} answered {response.status_code}: {response.text[:1000]}")
            answers.append(body["data"])
    if any(answer != answers[0] for answer in answers):
        shown = "\n".join(orjson.dumps(answer).decode()[:2000] for answer in answers)
        raise SystemExit(f"the endpoints disagree:\n{shown}")
    edges = answers[0]["viewer"]["tasks"]["edges"]
    print(f"responses are equal JSON ({len(edges)} tasks, {len(orjson.dumps(answers[0]))} bytes of data)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, requests=250)
    parser.add_argument("--latency-requests", type=int, default=150,
                        help="requests per endpoint per round at one connection (150; 0: skip)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis", metavar="URL", help="Tandem shares its state through this Redis")
    parser.add_argument("--workers", type=int, default=1, help="Tandem's uvicorn workers (unpinned when > 1)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine skews both sides, not the ratio
    placement = Placement.choose(pin=not args.no_pin and args.workers == 1)
    with workspace("tandem-bench-", args.database) as place:
        viewer_id = seed(place)
        headers = bearer_headers(issue_token(place, viewer_id))
        body = orjson.dumps({"query": QUERY})
        with running("tandem", place, placement.server_cpu, workers=args.workers, redis_url=args.redis) as tandem, \
                running("hand-written", place, placement.server_cpu) as hand, \
                running("fast", place, placement.server_cpu) as fast:
            ways = [Way("tandem", tandem, f"{tandem.url}/graphql", headers, body),
                    Way("hand-written", hand, f"{hand.url}/dashboard", headers, body),
                    Way("fast", fast, f"{fast.url}/dashboard", headers, body)]
            print(f"seeded {args.database}; tandem with {args.workers} worker(s), "
                  f"{'Redis ' + args.redis if args.redis else 'no Redis'}; {placement.describe()}")
            run(same_answers(ways))
            tallies = run(measure(ways, args))
            latency = None
            if args.latency_requests:
                one = argparse.Namespace(**{**vars(args), "requests": args.latency_requests, "warmup": 20})
                latency = run(measure(ways, one, concurrency=1, label="req/s at one connection"))
    table(tallies, "endpoint")
    print()
    for a, b in (("tandem", "fast"), ("tandem", "hand-written"), ("hand-written", "fast")):
        ratio(tallies, a, b)
    for a, b in (("tandem", "fast"), ("tandem", "hand-written")):
        print(f"server CPU per request {a} / {b}: "
              f"{tallies[a].cpu_per_request_us / tallies[b].cpu_per_request_us:.2f}")
    footer(args, load_before, "endpoint")
    if latency is not None:
        print("\nat one connection:")
        table(latency, "endpoint")
        for a, b in (("tandem", "fast"), ("tandem", "hand-written")):
            print(f"p50 / p99 latency at one connection {a} / {b}: "
                  f"{latency[a].percentile(50) / latency[b].percentile(50):.2f} / "
                  f"{latency[a].percentile(99) / latency[b].percentile(99):.2f}")


if __name__ == "__main__":
    main()
