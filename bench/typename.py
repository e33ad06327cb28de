"""`{ __typename }`: what the smallest query costs the server, in CPU per request.

Four ways over three servers, one at a time, each in its own uvicorn process pinned to one CPU (the
load generator on another), answering the same tiny JSON:

- **tandem, anonymous**: `POST /graphql {"query": "{ __typename }"}` without a token;
- **tandem, signed in**: the same with a bearer token (ES256 verification, the viewer's row);
- **bare ASGI**: an ASGI app that answers the same bytes without looking at the request: what
  uvicorn's HTTP handling costs by itself, included in both figures above;
- **bare, headers**: the same, answering with the header fields and body of Tandem's anonymous answer
  (security headers, `RateLimit`, request id, `extensions.cost`): uvicorn validates and encodes every
  header field, so this is the floor under Tandem's own figure.

Server CPU per request is the server process's user+system time over each measured burst divided by
its requests (`/proc`), so it is independent of how fast the load generator is.

    .venv/bin/python bench/typename.py                 # about 40 s on 2 cores

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
    issue_token,
    measure,
    orjson,
    run,
    running,
    seed,
    table,
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
        print(f"server CPU per request, {name}: {cpu:.0f} µs ({cpu - bare:.0f} µs above bare uvicorn, "
              f"{cpu - floor:.0f} µs above uvicorn sending Tandem's header fields)")
    footer(args, load_before)


if __name__ == "__main__":
    main()
