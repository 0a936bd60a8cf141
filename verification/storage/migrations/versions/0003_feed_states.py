"""intake states and audit anchors: feeds.receipt_sent_at, runs.audit_head

Revision ID: 0003_feed_states
Revises: 0002
Create Date: 2026-12-01 22:00:00

``feeds.receipt_sent_at``: intake is a resumable state machine (received → accepted | rejected,
then the receipt); a feed whose receipt never reached the partner (a crash, the partner down)
is found by this column and its receipt sent by the next pull. Existing feeds were acknowledged
when they were taken in, so they get their ``processed_at``.

``runs.audit_head``: the audit chain's head each run ended on, the anchor ``hedui audit verify``
checks the chain against (a cut-off tail no longer holds the anchored head).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_feed_states"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as feeds:
        feeds.add_column(sa.Column("receipt_sent_at", sa.DateTime(), nullable=True))
    op.execute("UPDATE feeds SET receipt_sent_at = processed_at WHERE status <> 'received'")
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("audit_head", sa.String(128), nullable=False,
                                  server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("audit_head")
    with op.batch_alter_table("feeds") as feeds:
        feeds.drop_column("receipt_sent_at")
