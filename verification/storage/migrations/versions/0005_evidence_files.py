"""a run's flag evidence in one Parquet file: runs.evidence_file, evidence_digest, evidence_rows

Revision ID: 0005_evidence_files
Revises: 0004_flag_counts
Create Date: 2026-12-02 06:00:00

From this revision ``finish_review`` writes the evidence of a run's flags to one Parquet file
(verification/storage/evidence_files.py) instead of ``flag_evidence`` rows: the run records the
file (relative to ``$HEDUI_HOME``), its SHA-256 and row count. The ``flag_evidence`` table stays:
runs finished before this revision keep their evidence there and are read from it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_evidence_files"
down_revision = "0004_flag_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("evidence_file", sa.Text(), nullable=False, server_default=""))
        runs.add_column(sa.Column("evidence_digest", sa.String(64), nullable=False,
                                  server_default=""))
        runs.add_column(sa.Column("evidence_rows", sa.Integer(), nullable=False,
                                  server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("evidence_rows")
        runs.drop_column("evidence_digest")
        runs.drop_column("evidence_file")
