"""A mutation: the shipped `UpdateTaskStatus` against the `TaskDetail` query of the same task.

One Tandem server (uvicorn, one worker, pinned; same setup as bench/dashboard.py) and a signed-in
viewer. Two ways, interleaved round by round:

- **updateTask**: `UpdateTaskStatus` (persisted_queries/mobile-app.json) by `documentId`, each request
  moving one of the viewer's tasks to the next status, so every request really writes (the task is
  read for the permission check, updated with its labels in one transaction, and read back);
- **task query**: `TaskDetail` by `documentId` for the same tasks (a read of similar size).

Mutations run their root fields serially and always through graphql-core's executor (not the
batched one); SQLite serialises the writes. Prints requests/s, latency and server CPU per request.

    .venv/bin/python bench/mutation.py                   # about 40 s on 2 cores

Not a test: nothing here asserts a timing. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os

from harness import (
    TASKS_PER_VIEWER,
    Placement,
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

STATUSES = ("TODO", "IN_PROGRESS", "DONE")


def document_id(name: str) -> str:
    return f"sha256:{hashlib.sha256(shipped_operation(name).encode()).hexdigest()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, requests=300, warmup=50)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    placement = Placement.choose(pin=not args.no_pin)
    update, detail = document_id("UpdateTaskStatus"), document_id("TaskDetail")
    # The seeded viewer owns tasks 1..50; each request takes the next one and the next status.
    turns = itertools.count()

    def update_body() -> bytes:
        turn = next(turns)
        variables = {"id": task_global_id(1 + turn % TASKS_PER_VIEWER),
                     "status": STATUSES[turn // TASKS_PER_VIEWER % 3]}
        return orjson.dumps({"documentId": update, "variables": variables})

    reads = itertools.count()

    def detail_body() -> bytes:
        task = task_global_id(1 + next(reads) % TASKS_PER_VIEWER)
        return orjson.dumps({"documentId": detail, "variables": {"id": task}})

    with workspace("tandem-bench-mutation-") as place:
        headers = bearer_headers(issue_token(place, seed(place)))
        with running("tandem", place, placement.server_cpu) as tandem:
            print(placement.describe())
            ways = [Way("updateTask", tandem, f"{tandem.url}/graphql", headers, update_body),
                    Way("task query", tandem, f"{tandem.url}/graphql", headers, detail_body)]
            tallies = run(measure(ways, args))
    table(tallies)
    print()
    ratio(tallies, "updateTask", "task query")
    footer(args, load_before)


if __name__ == "__main__":
    main()
