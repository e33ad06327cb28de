"""`tandem pq check | add | list`: trusted documents for operators and CI.

- `check` validates every manifest against the current schema (and the schema lock) and exits 1
  naming each operation a schema change would break; `make test` runs it.
- `add FILE` reviews a client's manifest (operations, depth, estimated cost), refuses it if any
  operation does not run on the current schema, and copies it into the manifest directory.
- `list` shows every trusted operation with its estimated cost and when it was last used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphql import GraphQLSchema
from redis.exceptions import RedisError

from app import redis_client
from app.persisted import manifest_directory
from app.settings import Settings
from persisted_queries.check import CheckReport, check_directory, check_operations, write_lock
from persisted_queries.manifest import ManifestError, TrustedOperation, load_manifest
from persisted_queries.review import OperationSummary, summarize
from persisted_queries.trusted import LOCK_FILE, TrustedDocuments
from persisted_queries.usage import RedisUsageLog, usage_key


def _schema() -> tuple[GraphQLSchema, str]:
    from schema import build_schema

    built = build_schema()
    return built._schema, built.as_str() + "\n"


def _summary(settings: Settings, schema: GraphQLSchema, operation: TrustedOperation) -> OperationSummary:
    return summarize(schema, operation.document, default_page_size=settings.default_page_size,
                     max_page_size=settings.max_page_size)


def cmd_pq_check(settings: Settings, args: argparse.Namespace) -> int:
    directory = manifest_directory(settings)
    schema, sdl = _schema()
    report = check_directory(directory, schema)
    _print_check(report, directory, write_lock_next=args.write_lock)
    if not report.ok:
        return 1
    if args.write_lock:
        write_lock(directory, sdl)
        print(f"Wrote {directory / LOCK_FILE}.")
    return 0


def _print_check(report: CheckReport, directory: Path, *, write_lock_next: bool) -> None:
    for name, problems in sorted(report.manifest_errors.items()):
        for problem in problems:
            print(f"error: {name}: {problem}", file=sys.stderr)
    for breakage in report.breakages:
        print(f"breaking: {breakage}", file=sys.stderr)
    manifests = sorted({operation.manifest for operation in report.operations})
    broken = {breakage.operation.id for breakage in report.breakages}
    print(f"{len(report.operations)} trusted operations in {len(manifests)} manifests ({directory}); "
          f"{len(broken)} broken by the current schema.")
    if not report.locked and not write_lock_next:
        print(f"note: no {LOCK_FILE}: only validation was checked, not changed field types. "
              "`tandem pq check --write-lock` records the current schema.")


def cmd_pq_add(settings: Settings, args: argparse.Namespace) -> int:
    source = Path(args.file)
    directory = manifest_directory(settings)
    target = directory / f"{args.name or source.stem}.json"
    try:
        operations = load_manifest(source)
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {source.name}: {problem}", file=sys.stderr)
        return 1
    existing = TrustedDocuments(directory)
    existing.load()
    known = {op.id: op for op in existing.operations if op.manifest != target.name or not args.replace}
    conflicts = [op for op in operations if op.id in known and known[op.id].body != op.body]
    for op in conflicts:
        print(f"error: {op.label}: id {op.id!r} is already trusted in {known[op.id].manifest} with another body",
              file=sys.stderr)
    schema, sdl = _schema()
    breakages = check_operations(operations, schema, None)
    for breakage in breakages:
        print(f"error: {breakage}", file=sys.stderr)
    _print_review(settings, schema, operations, known)
    if conflicts or breakages:
        print(f"Not added: {len(conflicts) + len(breakages)} problems above.", file=sys.stderr)
        return 1
    if target.exists() and not args.replace:
        print(f"error: {target} exists; pass --replace to replace it, or --name to add it under another name.",
              file=sys.stderr)
        return 1
    if args.dry_run:
        print("Dry run: nothing written.")
        return 0
    temporary = target.with_suffix(".tmp")  # not *.json, so a running server never reads half a file
    temporary.write_bytes(source.read_bytes())
    temporary.replace(target)
    print(f"Added {target} ({len(operations)} operations). Running servers load it within "
          f"{settings.persisted_queries_reload_seconds:g} s.")
    report = check_directory(directory, schema)
    if report.ok:
        write_lock(directory, sdl)
        print(f"Updated {directory / LOCK_FILE}.")
    else:
        print(f"warning: {LOCK_FILE} not updated: `tandem pq check` fails for existing manifests.", file=sys.stderr)
    return 0


def _print_review(
    settings: Settings, schema: GraphQLSchema, operations: Sequence[TrustedOperation],
    known: dict[str, TrustedOperation],
) -> None:
    rows = []
    for operation in operations:
        summary = _summary(settings, schema, operation)
        status = "already trusted" if operation.id in known else "new"
        rows.append([operation.name or "(anonymous)", operation.type, str(summary.fields), str(summary.depth),
                     str(summary.cost), status])
    _table(["operation", "type", "fields", "depth", "cost", "status"], rows)
    total = sum(int(row[4]) for row in rows)
    print(f"{len(rows)} operations, {sum(row[5] == 'new' for row in rows)} new; estimated cost "
          f"{total} in all, at most {max((int(row[4]) for row in rows), default=0)} for one.")


def cmd_pq_list(settings: Settings, args: argparse.Namespace) -> int:
    directory = manifest_directory(settings)
    trusted = TrustedDocuments(directory)
    trusted.load()
    schema, _ = _schema()
    last_used, note = _last_used(settings)
    entries: list[dict[str, Any]] = []
    for operation in trusted.operations:
        summary = _summary(settings, schema, operation)
        used = last_used.get(operation.sha256)
        entries.append({
            "manifest": operation.manifest, "name": operation.name, "type": operation.type, "id": operation.id,
            "cost": summary.cost, "depth": summary.depth,
            "lastUsed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(used)) if used else None,
        })
    if args.json:
        print(json.dumps({"operations": entries, "errors": trusted.errors}, indent=2))
        return 0
    _table(["manifest", "operation", "type", "id", "cost", "last use"], [
        [e["manifest"], e["name"] or "(anonymous)", e["type"], _short(e["id"]), str(e["cost"]), e["lastUsed"] or "-"]
        for e in entries
    ])
    for name, problems in sorted(trusted.errors.items()):
        print(f"error: {name}: {'; '.join(problems)}", file=sys.stderr)
    if note:
        print(f"note: {note}")
    return 0


def _last_used(settings: Settings) -> tuple[dict[str, float], str | None]:
    if not settings.redis_url:
        return {}, "last use is recorded in Redis; without TANDEM_REDIS_URL each server keeps it in memory only."

    async def read(url: str) -> dict[str, float]:
        redis = redis_client.connect(url, cluster=settings.redis_cluster, socket_connect_timeout=3)
        try:
            return await RedisUsageLog(redis, key=usage_key(settings.redis_prefix)).last_used()
        finally:
            await redis.aclose()

    try:
        return asyncio.run(read(settings.redis_url)), None
    except (RedisError, OSError) as exc:
        return {}, f"last use unavailable: Redis did not answer ({exc})."


def _short(identifier: str) -> str:
    return identifier if len(identifier) <= 16 else identifier[:12] + "…"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `tandem pq …` to the CLI's parser."""
    pq = commands.add_parser("pq", help="persisted queries: trusted documents").add_subparsers(
        dest="pq_command", required=True)
    check = pq.add_parser("check", help="check every manifest against the current schema")
    check.add_argument("--write-lock", action="store_true", help=f"if all pass, record the schema in {LOCK_FILE}")
    check.set_defaults(run=cmd_pq_check)
    add = pq.add_parser("add", help="review a client's manifest and trust it")
    add.add_argument("file", help="Apollo persisted query manifest, or a {hash: document} map")
    add.add_argument("--name", help="file name in the manifest directory (default: the file's own)")
    add.add_argument("--replace", action="store_true", help="replace a manifest of the same name")
    add.add_argument("--dry-run", action="store_true", help="review only; write nothing")
    add.set_defaults(run=cmd_pq_add)
    listing = pq.add_parser("list", help="trusted operations with cost and last use")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_pq_list)
