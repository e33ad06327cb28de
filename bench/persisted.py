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
requests/s, p50/p99 latency, server CPU per request and the request body size per way, and the ratios.

    .venv/bin/python bench/persisted.py                  # about 40 s on 2 cores
    .venv/bin/python bench/persisted.py --operation TaskDetail --requests 500

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os

from harness import (
    Placement,
    RawClient,
    Server,
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
    shipped_operation,
    table,
    task_global_id,
    workspace,
)


def operation(name: str) -> tuple[str, dict[str, object]]:
    """The manifest's text of `name` and variables for it against the seeded database."""
    body = shipped_operation(name)
    if name == "TaskList":
        return body, {"first": 20}
    if name == "TaskDetail":
        return body, {"id": task_global_id(1)}
    raise SystemExit(f"no variables known for {name}; use TaskList or TaskDetail")


def ways(server: Server, headers: dict[str, str], query: str, variables: dict[str, object]) -> list[Way]:
    url = f"{server.url}/graphql"
    sha = hashlib.sha256(query.encode()).hexdigest()
    counter = itertools.count()
    text = orjson.dumps({"query": query, "variables": variables})
    apq = orjson.dumps({"variables": variables, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}})
    document_id = orjson.dumps({"documentId": f"sha256:{sha}", "variables": variables})
    return [
        Way("text, new", server, url, headers,
            lambda: orjson.dumps({"query": f"{query}\n# {next(counter)}", "variables": variables})),
        Way("text", server, url, headers, text),
        Way("APQ hash", server, url, headers, apq),
        Way("documentId", server, url, headers, document_id),
    ]


async def register_and_compare(all_ways: list[Way], query: str, variables: dict[str, object]) -> None:
    """Register the APQ hash as Apollo Client does on its first miss (hash + query); check all agree."""
    client = RawClient()
    try:
        first = all_ways[0]
        sha = hashlib.sha256(query.encode()).hexdigest()
        register = {"query": query, "variables": variables,
                    "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}}
        await client.post(first.url, orjson.dumps(register), first.headers)
        answers = [(await client.post(way.url, way.next_body(), way.headers)).json() for way in all_ways]
    finally:
        await client.aclose()
    if any(answer != answers[0] or "errors" in answer for answer in answers):
        raise SystemExit(f"the four ways disagree or fail: {str(answers)[:2000]}")
    print(f"all four ways give the same answer ({len(orjson.dumps(answers[0]))} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operation", default="TaskList", choices=["TaskList", "TaskDetail"])
    add_common_arguments(parser, requests=200, warmup=50)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    query, variables = operation(args.operation)
    placement = Placement.choose(pin=not args.no_pin)
    with workspace("tandem-bench-pq-") as place:
        headers = bearer_headers(issue_token(place, seed(place)))
        with running("tandem", place, placement.server_cpu) as tandem:
            print(placement.describe())
            all_ways = ways(tandem, headers, query, variables)
            run(register_and_compare(all_ways, query, variables))
            tallies = run(measure(all_ways, args))
    table(tallies, "sent as", {way.name: f"{len(way.next_body()):>10}" for way in all_ways}, "body bytes")
    print()
    for base in ("text, new", "text"):
        for way in ("APQ hash", "documentId"):
            ratio(tallies, way, base)
    print(f"operation {args.operation}")
    footer(args, load_before)


if __name__ == "__main__":
    main()
