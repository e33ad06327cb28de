"""The `tandem` command: serve, migrate, seed, manage users, mint tokens, print the schema, persisted queries."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
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


def _metrics_across_workers() -> None:
    """prometheus_client's multiprocess mode: the workers write their values to one directory and a
    scrape, whichever worker serves it, adds them up (app/metrics.py). Emptied at start: values of an
    earlier run would count again."""
    import tempfile
    from pathlib import Path

    from app.metrics import MULTIPROCESS_DIR

    directory = os.environ.get(MULTIPROCESS_DIR) or tempfile.mkdtemp(prefix="tandem-metrics-")
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = directory


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from app import preflight
    from app.http_protocol import CoalescingHttpToolsProtocol
    from app.logging import configure_logging, uvicorn_log_config
    from app.main import token_service
    from app.secrets import secret_box

    if args.single_instance:
        os.environ["TANDEM_SINGLE_INSTANCE"] = "true"  # the workers build their settings from it
        settings = settings.model_copy(update={"single_instance": True})
    if args.workers > 1:
        if "TANDEM_INSTANCES" not in os.environ:
            os.environ["TANDEM_INSTANCES"] = str(args.workers)  # each worker's share while Redis is down
        _metrics_across_workers()
    preflight.check(settings, workers=args.workers)  # unsafe production stops here, saying why
    secret_box(settings)  # and production without TANDEM_SECRET_KEY
    if (hint := preflight.issuer_hint(settings, args.host, args.port)) is not None:
        configure_logging(settings.log_level, settings.log_json)  # the hint in the format of every other line
        logging.getLogger("tandem.cli").warning(hint)
    token_service(settings)  # create the first signing key once, before workers race to do it
    print(f"Tandem on http://{args.host}:{args.port}/graphql  (GraphiQL: open it in a browser)", flush=True)
    config = uvicorn.Config(
        "app.main:app_from_environment", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level=settings.log_level.lower(), access_log=False,  # ours: app/access_log.py
        log_config=uvicorn_log_config(settings.log_level, settings.log_json),
        # Forwarded header fields only from the proxies named in TANDEM_FORWARDED_ALLOW_IPS (uvicorn's
        # default would believe anything on 127.0.0.1).
        proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or "",
        server_header=False,
        http=CoalescingHttpToolsProtocol,  # one write per response (app/http_protocol.py)
    )
    if args.workers > 1:
        from app.workers import Workers

        Workers(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()
    return 0


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    upgrade(settings.database_url)
    print("Database is up to date.")
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from app.seed import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_client, seed

    _, created = _with_sessions(settings, seed)
    _with_sessions(settings, lambda s: ensure_demo_client(s, settings.issuer, settings.graphiql_client_id))
    print("Demo data created." if created else "Demo data already present.")
    graphiql = f"{settings.issuer.rstrip('/')}/graphql"
    print(f"Open {graphiql}, press \"Sign in\" and sign in as {DEMO_EMAIL} / {DEMO_PASSWORD}.")
    print(f"Or mint a token:  .venv/bin/tandem token --email {DEMO_EMAIL}")
    return 0


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    from auth.keys import RS256, KeyStore, add_key, retire_keys
    from auth.tokens import LEEWAY_SECONDS

    directory = settings.keys_dir / RS256.lower() if args.alg == RS256 else settings.keys_dir
    KeyStore.load_or_create(directory, args.alg)  # a first key to rotate from, on a fresh install
    key = add_key(directory, args.alg)
    # Tokens (access and ID) live access_token_ttl_seconds; twice that, plus clock leeway, is safe.
    retired = retire_keys(directory, older_than_seconds=2 * settings.access_token_ttl_seconds + LEEWAY_SECONDS)
    if args.json:
        print(json.dumps({"kid": key.kid, "retired": retired}))
    else:
        print(f"New signing key {key.kid}; running servers sign with it from their next token on.")
        for kid in retired:
            print(f"Retired key {kid}: every token it signed has expired.")
    return 0


def cmd_client_create(settings: Settings, args: argparse.Namespace) -> int:
    from app.persisted import manifest_directory
    from auth import scopes
    from auth.oauth.data import create_client
    from auth.oauth.models import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, GRANT_TYPES, REFRESH_TOKEN, TOKEN_EXCHANGE

    wanted = set(args.scope or [])
    unknown = wanted - scopes.ALL
    if unknown:
        return _fail(f"Unknown scope(s): {', '.join(sorted(unknown))}. Known: {', '.join(sorted(scopes.ALL))}.",
                     args.json)
    redirect_uris = args.redirect_uri or []
    bad = [uri for uri in redirect_uris if not uri.startswith(("https://", "http://")) and ":/" not in uri]
    if bad or any("#" in uri for uri in redirect_uris):
        return _fail("Redirect URIs must be absolute, without a fragment.", args.json)
    grant_types = args.grant_type or (
        ([AUTHORIZATION_CODE, REFRESH_TOKEN] if redirect_uris else [])
        + ([CLIENT_CREDENTIALS, TOKEN_EXCHANGE] if args.confidential else [])
    )
    if set(grant_types) - set(GRANT_TYPES):
        return _fail(f"Grant types are {', '.join(GRANT_TYPES)}.", args.json)
    if AUTHORIZATION_CODE in grant_types and not redirect_uris:
        return _fail("The authorization code grant needs at least one --redirect-uri.", args.json)
    if CLIENT_CREDENTIALS in grant_types and not args.confidential:
        return _fail("Only --confidential clients may use client credentials.", args.json)
    manifests = args.manifest or []
    if args.trusted_documents_only and not manifests:
        return _fail("A --trusted-documents-only client needs the --manifest(s) it ships.", args.json)
    if manifests and not args.trusted_documents_only:
        return _fail("--manifest binds a --trusted-documents-only client; add that flag.", args.json)
    known = {path.name for path in manifest_directory(settings).glob("*.json")}
    if missing := sorted(set(manifests) - known):
        return _fail(f"No such manifest: {', '.join(missing)}. Known: {', '.join(sorted(known)) or 'none'}.",
                     args.json)
    if args.resource_server is not None and not args.confidential:
        return _fail("A --resource-server must be --confidential (it authenticates to introspect).", args.json)
    client, secret = _with_sessions(settings, lambda sessions: create_client(
        sessions, name=args.name, redirect_uris=redirect_uris, scope=sorted(wanted), grant_types=grant_types,
        confidential=args.confidential, trusted_documents_only=args.trusted_documents_only, manifests=manifests,
        resource_audience=args.resource_server, may_delegate=args.may_delegate, id_token_alg=args.id_token_alg,
    ))
    result = {"client_id": client.client_id, "client_secret": secret, "name": client.name,
              "redirect_uris": redirect_uris, "grant_types": grant_types, "scope": client.scope,
              "trusted_documents_only": client.trusted_documents_only, "manifests": client.manifests,
              "resource_audience": client.resource_audience, "may_delegate": client.may_delegate,
              "id_token_alg": client.id_token_alg}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Created {'confidential' if args.confidential else 'public'} client {client.name}.")
        print(f"client_id:     {client.client_id}")
        if secret:
            print(f"client_secret: {secret}   (shown once: only its hash is stored)")
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
    serve.add_argument("--single-instance", action="store_true",
                       help="production without Redis: this is the only process on the only host")
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

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(dest="keys_command", required=True)
    rotate = keys.add_parser("rotate", help="add a new signing key and retire keys whose tokens have all expired")
    rotate.add_argument("--json", action="store_true", help="print the result as JSON")
    rotate.add_argument("--alg", choices=["ES256", "RS256"], default="ES256",
                        help="ES256: access and ID tokens (default); RS256: ID tokens of RS256 clients")
    rotate.set_defaults(run=cmd_keys_rotate)

    client = commands.add_parser("client", help="OAuth clients").add_subparsers(dest="client_command", required=True)
    client_create = client.add_parser("create", help="register an OAuth client")
    client_create.add_argument("--name", required=True)
    client_create.add_argument("--redirect-uri", action="append", help="repeat for several; matched exactly")
    kind = client_create.add_mutually_exclusive_group(required=True)
    kind.add_argument("--public", action="store_false", dest="confidential",
                      help="a browser or mobile app: no secret, PKCE only")
    kind.add_argument("--confidential", action="store_true", dest="confidential",
                      help="a server or service: gets a secret")
    client_create.add_argument("--scope", action="append", help="the most the client may ask for; repeat for several")
    client_create.add_argument("--grant-type", action="append", help="default: by kind and redirect URIs")
    client_create.add_argument("--trusted-documents-only", action="store_true",
                               help="the client may only send trusted (persisted) documents")
    client_create.add_argument("--manifest", action="append",
                               help="a manifest (file name in the manifests folder) whose documents a "
                                    "--trusted-documents-only client ships; repeat for several")
    client_create.add_argument("--resource-server", metavar="AUDIENCE",
                               help="may introspect access tokens whose audience includes AUDIENCE (confidential)")
    client_create.add_argument("--may-delegate", action="store_true",
                               help="may exchange tokens issued to other clients (RFC 8693 delegation)")
    client_create.add_argument("--id-token-alg", choices=["ES256", "RS256"], default="ES256",
                               help="how its ID tokens are signed (default ES256)")
    client_create.add_argument("--json", action="store_true", help="print the result as JSON")
    client_create.set_defaults(run=cmd_client_create)

    schema_parser = commands.add_parser("schema", help="the GraphQL schema")
    schema = schema_parser.add_subparsers(dest="schema_command", required=True)
    schema.add_parser("print", help="print the SDL").set_defaults(run=cmd_schema_print)

    from app.pq_cli import register as register_pq
    from app.secrets_cli import register as register_secrets

    register_pq(commands)
    register_secrets(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    result: int = args.run(settings, args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
