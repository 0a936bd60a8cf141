"""the roster's address and phone: households.address_enc, members.phone_enc

Revision ID: 0006_contact_fields
Revises: 0005_evidence_files
Create Date: 2026-12-02 12:00:00

The batch and roster file may give a household's address and each member's phone
(schemas/batch.json, optional). They are stored encrypted with the field cipher, bound to their
column like ``members.name`` (verification/security/fieldcrypt.py), and rotated by ``hedui keys
rotate``; ``people_for_matching`` decrypts them in memory and keys their parts for the matcher's
fallback. Encrypted rather than stored only as keyed parts: the parser's rules
(``ADDRESS_KEY_VERSION``) and the token key can change, and keyed parts could then only be
rebuilt from a file the centre may no longer hold. Rows loaded before this revision have neither
(NULL: no evidence either way).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_contact_fields"
down_revision = "0005_evidence_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("households") as households:
        households.add_column(sa.Column("address_enc", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("members") as members:
        members.add_column(sa.Column("phone_enc", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as members:
        members.drop_column("phone_enc")
    with op.batch_alter_table("households") as households:
        households.drop_column("address_enc")
