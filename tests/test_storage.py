"""Migrations run on SQLite and PostgreSQL; the audit chain detects any change."""

from sqlalchemy import inspect, text

from verification.security import audit
from verification.storage import session_scope, upgrade
from verification.storage.db import connect, current_revision

TABLES = {"partners", "feeds", "quarantined_rows", "households", "members", "authorisations",
          "batches", "runs", "assessments", "flags", "flag_reasons", "flag_evidence",
          "audit_events"}


def test_migrations_create_every_table_and_are_idempotent(database_url):
    upgrade(database_url)
    assert current_revision(database_url) is not None
    assert set(inspect(connect(database_url)).get_table_names()) >= TABLES


def test_audit_chain_verifies_and_reports_the_first_break(database_url):
    with session_scope(database_url) as session:
        for i in range(5):
            audit.record(session, "tester", "thing.done", f"thing:{i}", {"n": i})
    with session_scope(database_url) as session:
        check = audit.verify_chain(session)
        assert check.ok and check.events == 5
        third = session.execute(text("SELECT id FROM audit_events ORDER BY id")).all()[2][0]
        # The database refuses the change (tests/security/test_audit.py); a database owner could
        # drop the guard first, and the chain still tells.
        audit.drop_append_only_guard(session.connection())
        session.execute(text("UPDATE audit_events SET subject = 'thing:x' WHERE id = :i"),
                        {"i": third})
    with session_scope(database_url) as session:
        assert audit.verify_chain(session).first_break == third
