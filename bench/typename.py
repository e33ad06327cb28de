"""`{ __typename }`: what the smallest query costs the server, in CPU per request.

Four ways over three servers, one at a time, each in its own uvicorn process pinned to one CPU (the
load generator on another), answering the same tiny JSON:

- **tandem, anonymous**: `POST /graphql {"query": "{ __typename }"}` without a token;
- **tandem, signed in**: the same with a bearer token (ES256 verification, the viewer's row);
- **bare ASGI**: an ASGI app that answers the same bytes without looking at the request, under stock
  uvicorn: what uvicorn's HTTP handling costs by itself (it writes a response's head and body apart);
- **bare, headers**: the same app answering with the header fields and body of Tandem's anonymous
  answer (security headers, `RateLimit`, request id, `extensions.cost`), under uvicorn as `tandem
  serve` runs it (one write per response, app/http_protocol.py): the floor under Tandem's figures.

Server CPU per request is the server process's user+system time over each measured burst divided by
its requests (`/proc`), so it is independent of how fast the load generator is.

Then **in-process**: the same app called as an ASGI callable in this process, one request at a time,
with no HTTP server or socket at all: what Tandem's own code costs (middleware, transport, limits,
execution, response), measured with `time.process_time()` over each round.

    .venv/bin/python bench/typename.py                 # about 40 s on 2 cores

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from harness import (
    Placement,
    Way,
    Workspace,
    add_common_arguments,
    bearer_headers,
    footer,
    issue_token,
    measure,
    orjson,
    run,
    running,
    seed,
    table,
    tandem_settings,
    workspace,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, requests=2000, warmup=500)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    placement = Placement.choose(pin=not args.no_pin)
    body = orjson.dumps({"query": "{ __typename }"})
    with workspace("tandem-bench-typename-") as place:
        token = issue_token(place, seed(place))
        with running("tandem", place, placement.server_cpu) as tandem, \
                running("hello", place, placement.server_cpu) as hello, \
                running("hello-headers", place, placement.server_cpu) as hello_headers:
            print(placement.describe())
            ways = [
                Way("anonymous", tandem, f"{tandem.url}/graphql", bearer_headers(None), body),
                Way("signed in", tandem, f"{tandem.url}/graphql", bearer_headers(token), body),
                Way("bare ASGI", hello, f"{hello.url}/graphql", bearer_headers(None), body),
                Way("bare, headers", hello_headers, f"{hello_headers.url}/graphql", bearer_headers(None), body),
            ]
            tallies = run(measure(ways, args))
    table(tallies, "{ __typename }")
    bare = tallies["bare ASGI"].cpu_per_request_us
    floor = tallies["bare, headers"].cpu_per_request_us
    print()
    for name in ("anonymous", "signed in"):
        cpu = tallies[name].cpu_per_request_us
        print(f"server CPU per request, {name}: {cpu:.0f} µs ({cpu - bare:.0f} µs above bare stock uvicorn, "
              f"{cpu - floor:.0f} µs above the bare app sending Tandem's header fields as `tandem serve` runs it)")
    footer(args, load_before)
    print()
    with workspace("tandem-bench-typename-") as place:
        token = issue_token(place, seed(place))
        rounds = {name: asyncio.run(_in_process(place, bearer, body, args)) for name, bearer in
                  (("anonymous", None), ("signed in", token))}
    for name, per_round in rounds.items():
        print(f"in-process CPU per request, {name}: median {statistics.median(per_round):.0f} µs "
              f"(rounds {min(per_round):.0f}-{max(per_round):.0f})")


async def _in_process(place: Workspace, token: str | None, body: bytes, args: argparse.Namespace) -> list[float]:
    """µs of CPU per request, per round, with the app's ASGI callable driven directly."""
    import gc

    from app.main import create_app

    app = create_app(tandem_settings(place))
    headers = [(name.lower().encode(), value.encode()) for name, value in bearer_headers(token).items()]
    headers.append((b"content-length", str(len(body)).encode()))
    answered: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    async def one() -> None:
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                   "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
                   "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
                   "server": ("127.0.0.1", 8000), "state": {}}, receive, send)

    per_round: list[float] = []
    async with app.router.lifespan_context(app):
        gc.collect()
        gc.freeze()  # as the server does after start-up
        for _ in range(args.warmup):
            await one()
        for _ in range(args.rounds):
            started = time.process_time()
            for _ in range(args.requests):
                await one()
            per_round.append((time.process_time() - started) / args.requests * 1e6)
    if set(answered) != {200}:
        raise SystemExit(f"in-process answers were not all 200: {sorted(set(answered))}")
    return per_round


if __name__ == "__main__":
    main()
