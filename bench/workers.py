"""One worker against two: `tandem serve --workers N` scaling across cores, with state in Redis.

Two Tandem servers on the same seeded SQLite file and the same Redis (rate limits, the revocation
list's pub/sub and the other shared state go through it, as in production): one with one uvicorn
worker, one with two. Nothing is pinned: the workers may use every core, and so may the load
generator, which needs one core's share itself. Rounds alternate between the two servers; each
serves the dashboard query of bench/dashboard.py. Prints requests/s, latency, server CPU per request
(all workers together) and the throughput ratio two / one worker.

    .venv/bin/python bench/workers.py                    # about 60 s on 2 cores
    .venv/bin/python bench/workers.py --redis-url redis://127.0.0.1:6379/8 --concurrency 16

On a machine with two cores the load generator takes part of one, so perfect scaling would show
less than 2x; the CPU per request says whether a request got more expensive with two workers.

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import os

from dashboard import QUERY
from harness import (
    Way,
    add_common_arguments,
    bearer_headers,
    footer,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, requests=300, concurrency=16)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="shared state (database 8)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with workspace("tandem-bench-workers-") as place:
        headers = bearer_headers(issue_token(place, seed(place)))
        body = orjson.dumps({"query": QUERY})
        with running("tandem", place, None, workers=1, redis_url=args.redis_url) as one, \
                running("tandem", place, None, workers=2, redis_url=args.redis_url) as two:
            ways = [Way("1 worker", one, f"{one.url}/graphql", headers, body),
                    Way("2 workers", two, f"{two.url}/graphql", headers, body)]
            tallies = run(measure(ways, args))
    table(tallies, "server")
    print()
    ratio(tallies, "2 workers", "1 worker")
    print(f"server CPU per request 2 workers / 1 worker: "
          f"{tallies['2 workers'].cpu_per_request_us / tallies['1 worker'].cpu_per_request_us:.2f}")
    footer(args, load_before, "server")


if __name__ == "__main__":
    main()
