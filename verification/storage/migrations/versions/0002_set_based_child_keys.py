"""bulk child tables: foreign keys checked once per statement on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 03:10:00

A review writes millions of ``flag_evidence`` rows (about nineteen per household), and
``flag_reasons`` and ``audit_subjects`` rows by the hundred thousand, with one COPY each. A
declared foreign key makes PostgreSQL run one referential-integrity query per row (``SELECT 1
FROM flags WHERE id = $1 FOR KEY SHARE``): measured here, it doubled the cost of writing
``flag_evidence`` (docs/performance.md, "Database writes").

On PostgreSQL these three foreign keys become statement-level triggers that do the same checks
once per statement, on the statement's transition table:

- inserting or updating child rows whose parent does not exist fails with SQLSTATE 23503
  (foreign_key_violation), the error the declared key gave, so callers see the same
  IntegrityError;
- deleting parents deletes their ``flag_reasons``/``flag_evidence`` (ON DELETE CASCADE, as
  before), and deleting an audit event that still has subjects fails (NO ACTION, as before).

What a per-row key also gave and this does not: a KEY SHARE lock on the parent row. The parents
here are written in the same transaction as their children (a run's flags and their reasons and
evidence in ``finish_review``; an audit event and its subjects in ``record_access``), so no
other transaction can see them, let alone delete them, before the children are committed.
Changing a parent's ``id`` is not supported (ids are never updated).

SQLite keeps its declared foreign keys: its checks are cheap and run in the same process.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# child table, column, parent table, what deleting a parent does
CHILD_KEYS = (
    ("flag_reasons", "flag_id", "flags", "CASCADE"),
    ("flag_evidence", "flag_id", "flags", "CASCADE"),
    ("audit_subjects", "event_id", "audit_events", "NO ACTION"),
)


def _foreign_key_name(child: str, column: str) -> str | None:
    for key in sa.inspect(op.get_bind()).get_foreign_keys(child):
        if key["constrained_columns"] == [column]:
            return key["name"]
    return None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for child, column, parent, on_delete in CHILD_KEYS:
        name = _foreign_key_name(child, column)
        if name:
            op.drop_constraint(name, child, type_="foreignkey")
        check = f"hedui_{child}_{column}_exists"
        op.execute(f"""
            CREATE FUNCTION {check}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM new_rows n
                           WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = n.{column}))
                THEN
                    RAISE EXCEPTION 'insert or update on table "{child}" violates foreign key '
                                    '"{column}" → {parent}.id: no such {parent} row'
                        USING ERRCODE = 'foreign_key_violation';
                END IF;
                RETURN NULL;
            END $$""")
        for event in ("INSERT", "UPDATE"):
            op.execute(f"""
                CREATE TRIGGER {check}_{event.lower()} AFTER {event} ON {child}
                REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {check}()""")
        on_parent = f"hedui_{parent}_delete_{child}"
        action = (f"DELETE FROM {child} c USING old_rows o WHERE c.{column} = o.id;"
                  if on_delete == "CASCADE" else
                  f"""IF EXISTS (SELECT 1 FROM {child} c JOIN old_rows o ON c.{column} = o.id)
                      THEN RAISE EXCEPTION 'delete on table "{parent}" violates foreign key '
                                           '"{column}" of table "{child}"'
                          USING ERRCODE = 'foreign_key_violation';
                      END IF;""")
        op.execute(f"""
            CREATE FUNCTION {on_parent}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {action}
                RETURN NULL;
            END $$""")
        op.execute(f"""
            CREATE TRIGGER {on_parent} AFTER DELETE ON {parent}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {on_parent}()""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for child, column, parent, on_delete in CHILD_KEYS:
        check = f"hedui_{child}_{column}_exists"
        on_parent = f"hedui_{parent}_delete_{child}"
        op.execute(f"DROP TRIGGER IF EXISTS {on_parent} ON {parent}")
        op.execute(f"DROP FUNCTION IF EXISTS {on_parent}()")
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {check}_{event} ON {child}")
        op.execute(f"DROP FUNCTION IF EXISTS {check}()")
        op.create_foreign_key(None, child, parent, [column], ["id"],
                              ondelete=None if on_delete == "NO ACTION" else on_delete)
