"""The secret box from settings: `TANDEM_SECRET_KEY`, required in production.

Development without it gets a key of its own, created once in the keys directory (owner-only), so
`make run` needs no setup and its webhook secrets are still not stored in the clear.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings
from db.secret_box import SecretBox, new_key, parse_keys

DEVELOPMENT_KEY_FILE = "secret.key"


class MissingSecretKey(SystemExit):
    """Production refuses to start without TANDEM_SECRET_KEY (secrets would be sealed with nothing)."""


def secret_box(settings: Settings) -> SecretBox:
    if settings.secret_key is not None:
        return SecretBox(parse_keys(settings.secret_key.get_secret_value()))
    if settings.production:
        raise MissingSecretKey(
            "TANDEM_SECRET_KEY is required in production: it encrypts webhook signing secrets at rest. "
            "Generate one with `tandem secrets new-key`."
        )
    return SecretBox(parse_keys(_development_key(settings.keys_dir / DEVELOPMENT_KEY_FILE)))


def _development_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(new_key())
        try:
            os.link(partial, path)  # the first process to get here wins; the others read its key
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return path.read_text().strip()
