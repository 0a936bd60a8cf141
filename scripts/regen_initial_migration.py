"""Regenerate the initial Alembic migration from the models.

Only while no release has shipped (a database created by an earlier 0001 would not be migrated):
after the first release, add a new revision with `alembic revision --autogenerate` instead.
"""

import tempfile
from pathlib import Path

from alembic import command

from verification.storage.db import alembic_config

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = ROOT / "verification" / "storage" / "migrations" / "versions"

for old in VERSIONS.glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    config = alembic_config(f"sqlite:///{tmp}/empty.db")
    command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
print("regenerated", next(VERSIONS.glob("0001_*.py")))
