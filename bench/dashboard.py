"""Dashboard: Tandem's GraphQL endpoint against a hand-written Starlette endpoint, side by side.

Both serve the same "dashboard" (the viewer's 50 tasks with assignee and document) from one SQLite
file, each in its own uvicorn process (one worker, pinned to the same CPU; the load generator on
another). After checking that both answer the same JSON, the load generator alternates between them
for several rounds (A B, B A, ...) so that drift hits both alike: first at `--concurrency`
connections (throughput), then at one connection (latency). Prints requests/s, p50/p99 latency,
server CPU per request, and the ratios Tandem / hand-written.

    .venv/bin/python bench/dashboard.py                      # about 80 s on 2 cores
    .venv/bin/python bench/dashboard.py --requests 500 --rounds 8 --concurrency 16

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
        raise SystemExit(f"the two endpoints disagree:\n{shown}")
    edges = answers[0]["viewer"]["tasks"]["edges"]
    print(f"responses are equal JSON ({len(edges)} tasks, {len(orjson.dumps(answers[0]))} bytes of data)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, requests=250)
    parser.add_argument("--latency-requests", type=int, default=150,
                        help="requests per endpoint per round at one connection (150; 0: skip)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine skews both sides, not the ratio
    placement = Placement.choose(pin=not args.no_pin)
    with workspace("tandem-bench-") as place:
        viewer_id = seed(place)
        headers = bearer_headers(issue_token(place, viewer_id))
        body = orjson.dumps({"query": QUERY})
        with running("tandem", place, placement.server_cpu) as tandem, \
                running("hand-written", place, placement.server_cpu) as hand:
            ways = [Way("tandem", tandem, f"{tandem.url}/graphql", headers, body),
                    Way("hand-written", hand, f"{hand.url}/dashboard", headers, body)]
            print(f"seeded {place.db_path}; {placement.describe()}")
            run(same_answers(ways))
            tallies = run(measure(ways, args))
            latency = None
            if args.latency_requests:
                one = argparse.Namespace(**{**vars(args), "requests": args.latency_requests, "warmup": 20})
                latency = run(measure(ways, one, concurrency=1, label="req/s at one connection"))
    table(tallies, "endpoint")
    print()
    ratio(tallies, "tandem", "hand-written")
    print(f"p50 latency ratio tandem / hand-written: "
          f"{tallies['tandem'].percentile(50) / tallies['hand-written'].percentile(50):.2f}")
    print(f"server CPU per request ratio tandem / hand-written: "
          f"{tallies['tandem'].cpu_per_request_us / tallies['hand-written'].cpu_per_request_us:.2f}")
    footer(args, load_before, "endpoint")
    if latency is not None:
        print("\nat one connection:")
        table(latency, "endpoint")
        print(f"\np50 latency at one connection tandem / hand-written: "
              f"{latency['tandem'].percentile(50) / latency['hand-written'].percentile(50):.2f}")
        print(f"p99 latency at one connection tandem / hand-written: "
              f"{latency['tandem'].percentile(99) / latency['hand-written'].percentile(99):.2f}")


if __name__ == "__main__":
    main()
