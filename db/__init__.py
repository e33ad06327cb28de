"""The data layer: typed SQLAlchemy models, engine and session setup, Alembic migrations.

Imports nothing else of ours. `from db import models` gives the tables; `db.engine` builds engines.
"""
