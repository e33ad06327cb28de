"""The `tandem` command: serve, migrate, seed, manage users, mint tokens, print the schema, persisted queries."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.settings import Settings

T = TypeVar("T")


def _with_sessions(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from db.engine import make_engine, make_sessions

    async def run() -> T:
        engine = make_engine(settings.database_url)
        try:
            return await work(make_sessions(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import token_service

    token_service(settings)  # create the first signing key once, before workers race to do it
    print(f"Tandem on http://{args.host}:{args.port}/graphql  (GraphiQL: open it in a browser)", flush=True)
    uvicorn.run(
        "app.main:app_from_environment", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level=settings.log_level.lower(), access_log=False,
        proxy_headers=True, server_header=False,
    )
    return 0


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    upgrade(settings.database_url)
    print("Database is up to date.")
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from app.seed import DEMO_EMAIL, DEMO_PASSWORD, seed

    _, created = _with_sessions(settings, seed)
    print("Demo data created." if created else "Demo data already present.")
    print(f"Sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}.")
    print(f"Get a token:  .venv/bin/tandem token --email {DEMO_EMAIL}")
    return 0


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    from auth.passwords import MIN_LENGTH, hash_password
    from resolvers.errors import BadUserInput
    from resolvers.users import create_user

    if len(args.password) < MIN_LENGTH:
        return _fail(f"The password must be at least {MIN_LENGTH} characters.", args.json)
    try:
        user = _with_sessions(settings, lambda sessions: create_user(
            sessions, email=args.email, name=args.name, password_hash=hash_password(args.password), admin=args.admin))
    except BadUserInput as exc:
        return _fail(exc.message, args.json)
    if args.json:
        print(json.dumps({"id": user.id, "email": user.email, "name": user.name, "role": user.role}))
    else:
        print(f"Created user {user.id}: {user.name} <{user.email}> ({user.role}).")
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from app.main import token_service
    from auth import scopes
    from resolvers.users import user_by_email

    user = _with_sessions(settings, lambda sessions: user_by_email(sessions, args.email))
    if user is None:
        return _fail(f"No user with email {args.email}. Create one with `tandem user create` or `tandem seed`.")
    wanted = set(args.scope or scopes.ALL)
    unknown = wanted - scopes.ALL
    if unknown:
        return _fail(f"Unknown scope(s): {', '.join(sorted(unknown))}. Known: {', '.join(sorted(scopes.ALL))}.")
    token = token_service(settings).issue_access_token(
        str(user.id), wanted, client_id="tandem-cli", ttl_seconds=args.ttl
    )
    print(token)
    return 0


def cmd_schema_print(settings: Settings, args: argparse.Namespace) -> int:
    from schema import build_schema

    sys.stdout.write(build_schema().as_str() + "\n")
    return 0


def _fail(message: str, as_json: bool = False) -> int:
    print(json.dumps({"error": message}) if as_json else f"error: {message}", file=sys.stderr)
    return 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tandem", description="Tandem GraphQL server.")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=cmd_serve)

    db = commands.add_parser("db", help="database tasks").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(run=cmd_db_upgrade)

    commands.add_parser("seed", help="create demo data (idempotent)").set_defaults(run=cmd_seed)

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create a user")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--admin", action="store_true")
    create.add_argument("--json", action="store_true", help="print the result as JSON")
    create.set_defaults(run=cmd_user_create)

    token = commands.add_parser("token", help="mint an access token for local development")
    token.add_argument("--email", required=True)
    token.add_argument("--scope", action="append", help="repeat for several; default: all scopes")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    token.set_defaults(run=cmd_token)

    schema_parser = commands.add_parser("schema", help="the GraphQL schema")
    schema = schema_parser.add_subparsers(dest="schema_command", required=True)
    schema.add_parser("print", help="print the SDL").set_defaults(run=cmd_schema_print)

    from app.pq_cli import register as register_pq

    register_pq(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    result: int = args.run(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
