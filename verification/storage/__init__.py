"""Application database: SQLAlchemy 2 models, engine/session helpers and Alembic migrations."""

from verification.storage.db import connect, session_scope, upgrade

__all__ = ["connect", "session_scope", "upgrade"]
