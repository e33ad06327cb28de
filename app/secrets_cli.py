"""`tandem secrets`: make a key for TANDEM_SECRET_KEY, and re-seal stored secrets with the newest key.

Rotating the key: put a new key in front (`TANDEM_SECRET_KEY=<new>,<old>`), restart, run
`tandem secrets reseal`, then drop the old key. Secrets stored before encryption was configured are
sealed by the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from sqlalchemy import select, update

from app.secrets import secret_box
from app.settings import Settings
from db.engine import make_engine, make_sessions
from db.secret_box import UndecryptableSecret, new_key
from db.webhooks import SECRET_CONTEXT, WebhookEndpoint


def cmd_new_key(settings: Settings, args: argparse.Namespace) -> int:
    print(new_key())
    return 0


def cmd_reseal(settings: Settings, args: argparse.Namespace) -> int:
    box = secret_box(settings)

    async def reseal() -> dict[str, Any]:
        engine = make_engine(settings.database_url)
        sessions = make_sessions(engine)
        resealed, unreadable = 0, []
        try:
            async with sessions.begin() as session:
                rows = (await session.execute(
                    select(WebhookEndpoint.id, WebhookEndpoint.secret, WebhookEndpoint.previous_secret))).all()
                for endpoint_id, secret, previous in rows:
                    values: dict[str, str] = {}
                    for column, stored in (("secret", secret), ("previous_secret", previous)):
                        if stored is None or box.is_current(stored):
                            continue
                        try:
                            values[column] = box.seal(box.open(stored, context=SECRET_CONTEXT), context=SECRET_CONTEXT)
                        except UndecryptableSecret:
                            unreadable.append(endpoint_id)
                    if values:
                        await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
                                              .values(**values))
                        resealed += 1
        finally:
            await engine.dispose()
        return {"resealed": resealed, "unreadable": sorted(set(unreadable))}

    result = asyncio.run(reseal())
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Re-sealed the secrets of {result['resealed']} webhook endpoint(s) with the newest key.")
        if result["unreadable"]:
            print(f"Could not open the secrets of endpoint(s) {result['unreadable']}: sealed with a key no longer "
                  "in TANDEM_SECRET_KEY; their owners rotate them (rotateWebhookSecret).")
    return 1 if result["unreadable"] else 0


def register(commands: Any) -> None:
    secrets = commands.add_parser("secrets", help="the key that seals secrets at rest (TANDEM_SECRET_KEY)")
    verbs = secrets.add_subparsers(dest="secrets_command", required=True)
    verbs.add_parser("new-key", help="print a new key for TANDEM_SECRET_KEY").set_defaults(run=cmd_new_key)
    reseal = verbs.add_parser("reseal", help="re-seal stored secrets with the newest key")
    reseal.add_argument("--json", action="store_true", help="print the result as JSON")
    reseal.set_defaults(run=cmd_reseal)
