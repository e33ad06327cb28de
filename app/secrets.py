"""The secret box from settings: `TANDEM_SECRET_KEY`, required in production.

Development without it gets a key of its own, created once in the keys directory (owner-only), so
`make run` needs no setup and its webhook secrets are still not stored in the clear.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.settings import Settings
from db.secret_box import SecretBox, SecretKeyError, new_key, parse_keys

DEVELOPMENT_KEY_FILE = "secret.key"


class SecretKeyRefused(SystemExit):
    """Production without TANDEM_SECRET_KEY, or a key that is not 32 bytes of base64: the server does
    not start (secrets would be sealed with nothing, or with what the operator did not mean)."""


def secret_box(settings: Settings) -> SecretBox:
    configured = settings.secret_key.get_secret_value().strip() if settings.secret_key is not None else ""
    if configured:
        try:
            return SecretBox(parse_keys(configured))
        except SecretKeyError as exc:
            raise SecretKeyRefused(f"{exc}. Generate one with `tandem secrets new-key`.") from None
    if settings.production:
        raise SecretKeyRefused(
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
