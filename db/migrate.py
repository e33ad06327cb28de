"""Run Alembic migrations from code (`tandem db upgrade`, test fixtures) without an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the database at `database_url` up to `revision`. Must run outside an event loop."""
    command.upgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    """Autogenerate a new migration from the models (developer tool)."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
