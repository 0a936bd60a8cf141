"""The audit trail: append-only in the database, hash-chained, first break reported by
`hedui audit verify`, data accesses recorded by token, never a raw ID number."""

from __future__ import annotations

import pytest
from sqlalchemy import select as sa_select
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from verification.cli.security import app
from verification.security import audit
from verification.storage import session_scope, upgrade

RAW_ID = "11010519491231002X"


def _events(url: str, n: int = 5) -> list[int]:
    with session_scope(url) as session:
        ids = [audit.record(session, "tester", "thing.done", f"thing:{i}", {"n": i}).id
               for i in range(n)]
    return ids


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor = 'mallory'",
                                       "DELETE FROM audit_events",
                                       "UPDATE audit_subjects SET person_token = 1",
                                       "DELETE FROM audit_subjects"])
def test_the_database_refuses_to_change_or_delete_audit_rows(database_url, statement):
    _events(database_url)
    with session_scope(database_url) as session:
        audit.record_access(session, "tester", "hrss", "run:1", [1, 2, 3])
    with pytest.raises(DatabaseError, match="append-only"), session_scope(database_url) as s:
        s.execute(text(statement))
    with session_scope(database_url) as session:
        check = audit.verify_chain(session)
        assert check.ok and check.events == 6


def test_postgresql_also_refuses_truncate(postgres_url):
    import uuid

    import sqlalchemy as sa

    from verification.storage.db import dispose

    schema = f"hedui_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        _events(url)
        with pytest.raises(DatabaseError, match="append-only"), session_scope(url) as session:
            session.execute(text("TRUNCATE audit_events CASCADE"))
    finally:
        dispose(url)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_the_guard_survives_repeated_upgrades(database_url):
    upgrade(database_url)
    upgrade(database_url)
    _events(database_url, 1)
    with pytest.raises(DatabaseError), session_scope(database_url) as session:
        session.execute(text("DELETE FROM audit_events"))


def _tamper(url: str, statement: str, **params: object) -> None:
    """What only a database owner could do: drop the guard, then change rows."""
    with session_scope(url) as session:
        audit.drop_append_only_guard(session.connection())
        session.execute(text(statement), params)


@pytest.mark.parametrize("statement, reason", [
    ("UPDATE audit_events SET detail = '{\"n\": 99}' WHERE id = :i", "altered"),
    ("UPDATE audit_events SET actor = 'mallory' WHERE id = :i", "altered"),
    ("DELETE FROM audit_events WHERE id = :i", "deleted or inserted"),
])
def test_verify_reports_the_first_break_and_why(database_url, statement, reason):
    ids = _events(database_url)
    _tamper(database_url, statement, i=ids[2])
    with session_scope(database_url) as session:
        check = audit.verify_chain(session)
    expected = ids[3] if "DELETE" in statement else ids[2]
    assert not check.ok and check.first_break == expected and reason in check.reason


def test_changing_the_persons_of_an_access_breaks_the_chain(database_url):
    with session_scope(database_url) as session:
        event = audit.record_access(session, "officer_wusan", "hrss", "batch:B1", [5, 7, 7, 9])
        assert event.detail["subjects"] == 3
    _events(database_url, 2)
    with session_scope(database_url) as session:
        assert audit.verify_chain(session).ok
        # Adding a row is allowed by the database (append-only), but the chain notices.
        session.execute(text("INSERT INTO audit_subjects (event_id, person_token) "
                             "VALUES (:e, 11)"), {"e": event.id})
    with session_scope(database_url) as session:
        check = audit.verify_chain(session)
    assert check.first_break == event.id and "persons" in check.reason


@pytest.mark.parametrize("detail, subject", [
    ({"id_number": RAW_ID}, ""),
    ({"nested": [{"note": f"checked {RAW_ID.lower()} today"}]}, ""),
    ({}, f"person:{RAW_ID}"),
    ({"legacy": "350303900203307"}, ""),
    ({RAW_ID: 1}, ""),
])
def test_a_raw_id_number_is_refused_and_nothing_is_written(sqlite_settings, detail, subject):
    url = sqlite_settings.database_url
    with pytest.raises(audit.AuditPersonalData, match="person token"), \
            session_scope(url) as session:
        audit.record(session, "tester", "thing.done", subject, detail)
    with session_scope(url) as session:
        assert audit.verify_chain(session).events == 0


def test_tokens_counts_and_masked_ids_are_fine(sqlite_settings):
    with session_scope(sqlite_settings.database_url) as session:
        audit.record(session, "tester", "thing.done", "person:token",
                     {"token": 110105194912310021, "masked": "110105********002X",
                      "digest": "0" * 64, "line": 123456789012345678})
        assert audit.verify_chain(session).ok


def test_a_digest_that_holds_an_id_shaped_run_of_digits_is_not_personal_data(sqlite_settings):
    # a SHA-256 whose hex happens to contain a checksum-valid ID (one in a few thousand
    # digests does): the review that recorded it failed at random
    digest = "ab" + "110105194912311006" + "c" * 44  # a valid ID, all digits, inside hex
    assert len(digest) == 64 and audit.holds_resident_id(digest)
    with session_scope(sqlite_settings.database_url) as session:
        audit.record(session, "pipeline", "feed.accepted", "feed:1", {"sha256": digest})
        assert audit.verify_chain(session).ok
    with pytest.raises(audit.AuditPersonalData), \
            session_scope(sqlite_settings.database_url) as session:  # not a digest: refused
        audit.record(session, "pipeline", "feed.accepted", "feed:1", {"note": digest[:40]})


def _invoke(*args: str, env: dict[str, str] | None = None):  # noqa: ANN202
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def cli_db(sqlite_settings, monkeypatch):
    monkeypatch.setenv("HEDUI_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", sqlite_settings.database_url)
    return sqlite_settings


def test_cli_audit_verify_passes_then_names_the_break(cli_db):
    ids = _events(cli_db.database_url)
    ok = _invoke("audit", "verify", "--user", "admin")
    assert ok.exit_code == 0 and "intact: 5 events" in ok.output
    _tamper(cli_db.database_url, "UPDATE audit_events SET subject = 'x' WHERE id = :i", i=ids[1])
    broken = _invoke("audit", "verify", "--user", "admin")
    assert broken.exit_code == 1
    assert f"BROKEN at event {ids[1]}" in broken.output and "altered" in broken.output


@pytest.mark.parametrize("user", ["officer_wusan", "hedui_staff", "partner_hrss", "nobody"])
def test_cli_audit_verify_needs_the_permission(cli_db, user):
    result = _invoke("audit", "verify", "--user", user)
    assert result.exit_code == 1 and "refused" in result.output
    assert "Traceback" not in result.output


def test_the_user_comes_from_hedui_user(cli_db):
    _events(cli_db.database_url, 1)
    assert _invoke("audit", "verify", env={"HEDUI_USER": "admin"}).exit_code == 0
    assert _invoke("audit", "verify", env={"HEDUI_USER": "officer_wusan"}).exit_code == 1


def test_the_chain_can_switch_to_sm3_without_rewriting_history(database_url, monkeypatch):
    from cryptography.hazmat.primitives import hashes

    _events(database_url, 2)
    monkeypatch.setenv("HEDUI_AUDIT_HASH", "SM3")
    ids = _events(database_url, 2)
    with session_scope(database_url) as session:
        rows = session.execute(text("SELECT hash_alg, hash FROM audit_events ORDER BY id")).all()
        assert [r[0] for r in rows] == ["sha256", "sha256", "sm3", "sm3"]
        assert audit.verify_chain(session).ok
        event = session.get(audit.AuditEvent, ids[0])
        body = audit._digest(event.prev_hash, event.at.isoformat(), event.actor, event.action,
                             event.subject, event.detail, "sha256")
        assert body != event.hash  # an SM3 event does not verify as SHA-256
    sm3 = hashes.Hash(hashes.SM3())
    sm3.update(b"abc")
    assert audit.HASH_ALGORITHMS["sm3"](b"abc") == sm3.finalize().hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")  # GB/T 32905 A.1
    _tamper(database_url, "UPDATE audit_events SET hash_alg = 'sha256' WHERE id = :i", i=ids[0])
    with session_scope(database_url) as session:
        assert audit.verify_chain(session).first_break == ids[0]
    monkeypatch.setenv("HEDUI_AUDIT_HASH", "md5")
    with pytest.raises(ValueError, match="HEDUI_AUDIT_HASH"), \
            session_scope(database_url) as session:
        audit.record(session, "tester", "thing.done")


def test_a_recorded_head_exposes_a_cut_tail_or_a_rewritten_chain(database_url):
    ids = _events(database_url, 4)
    with session_scope(database_url) as session:
        head = audit.verify_chain(session).head
        assert audit.verify_chain(session, expect_head=head).ok
    _tamper(database_url, "DELETE FROM audit_events WHERE id = :i", i=ids[-1])
    with session_scope(database_url) as session:
        plain = audit.verify_chain(session)
        anchored = audit.verify_chain(session, expect_head=head)
    assert plain.ok  # a cut tail leaves a consistent chain...
    assert anchored.first_break == 0 and "no longer in the chain" in anchored.reason  # ...but


def test_cli_audit_verify_with_a_recorded_head(cli_db):
    _events(cli_db.database_url, 3)
    first = _invoke("audit", "verify", "--user", "admin")
    head = first.output.split("head ")[1].split()[0]
    assert _invoke("audit", "verify", "--user", "admin", "--expect-head", head).exit_code == 0
    lost = _invoke("audit", "verify", "--user", "admin", "--expect-head", "0" * 64)
    assert lost.exit_code == 1 and "BROKEN after 3 events" in lost.output


AUDIT_KEY = "k1:" + "42" * 32


def _recompute(url: str, from_id: int, algorithm: str, key: bytes | None = None) -> None:
    """An attacker with the database but not the key: alter an event, recompute the rest."""
    with session_scope(url) as session:
        audit.drop_append_only_guard(session.connection())
        events = session.scalars(sa_select(audit.AuditEvent).order_by(audit.AuditEvent.id)).all()
        prev = ""
        for event in events:
            if event.id >= from_id:
                if event.id == from_id:
                    event.detail = {"n": 999}
                event.prev_hash, event.hash_alg = prev, algorithm
                event.hash_key_id = "k1" if key else ""
                event.hash = audit._digest(prev, event.at.isoformat(), event.actor, event.action,
                                           event.subject, event.detail, algorithm, key)
            prev = event.hash


@pytest.mark.parametrize("base", ["sha256", "sm3"])
def test_a_keyed_chain_cannot_be_recomputed_without_the_key(database_url, monkeypatch, base):
    monkeypatch.setenv("HEDUI_AUDIT_KEYS", AUDIT_KEY)
    monkeypatch.setenv("HEDUI_AUDIT_HASH", base)
    ids = _events(database_url, 4)
    with session_scope(database_url) as session:
        assert audit.verify_chain(session).ok
        algs = {e.hash_alg for e in session.scalars(sa_select(audit.AuditEvent))}
    assert algs == {f"hmac-{base}"}
    _recompute(database_url, ids[1], base)  # plain hashes: a downgrade
    with session_scope(database_url) as session:
        check = audit.verify_chain(session)
    assert check.first_break == ids[1] and "without the audit key" in check.reason
    _recompute(database_url, ids[1], f"hmac-{base}", bytes(32))  # a guessed key
    with session_scope(database_url) as session:
        assert audit.verify_chain(session).first_break == ids[1]


def test_a_keyed_chain_needs_its_key_to_verify(database_url, monkeypatch):
    plain = _events(database_url, 2)
    monkeypatch.setenv("HEDUI_AUDIT_KEYS", AUDIT_KEY)
    monkeypatch.setenv("HEDUI_AUDIT_KEYED_FROM", str(plain[-1] + 1))  # keyed from here on
    keyed = _events(database_url, 2)
    with session_scope(database_url) as session:
        assert audit.verify_chain(session).ok
    monkeypatch.delenv("HEDUI_AUDIT_KEYS")
    with session_scope(database_url) as session:
        check = audit.verify_chain(session)
    assert check.first_break == keyed[0] and "set HEDUI_AUDIT_KEYS" in check.reason
    monkeypatch.setenv("HEDUI_AUDIT_KEYS", "k0:" + "11" * 32 + "," + AUDIT_KEY.replace("k1", "k2"))
    with session_scope(database_url) as session:
        assert "'k1', which is not configured" in audit.verify_chain(session).reason


@pytest.mark.parametrize("spec, message", [("k1:zz", "not hexadecimal"),
                                           ("k1:" + "00" * 8, "at least 16 bytes"),
                                           ("bad id:" + "00" * 16, "needs an id")])
def test_bad_audit_keys_are_refused(monkeypatch, spec, message):
    monkeypatch.setenv("HEDUI_AUDIT_KEYS", spec)
    with pytest.raises(ValueError, match=message):
        audit.audit_keys()


def test_each_run_anchors_its_head_and_verify_checks_it_without_flags(cli_db):
    import datetime as dt

    from verification import pipeline
    from verification.storage.models import Run

    _events(cli_db.database_url, 3)
    run_id = pipeline.start_review(cli_db, "anchor-test", dt.date(2026, 11, 1))
    pipeline.finish_review(cli_db, run_id, [])
    with session_scope(cli_db.database_url) as session:
        head = session.get(Run, run_id).audit_head
        assert head and head == audit.chain_head(session)
    assert f'"head": "{head}"' in cli_db.audit_anchor_file.read_text("utf-8")
    ok = _invoke("audit", "verify", "--user", "admin")
    assert ok.exit_code == 0 and f"run {run_id}" in ok.output, ok.output
    _events(cli_db.database_url, 2)  # events after the anchor may come and (if cut) go
    with session_scope(cli_db.database_url) as session:
        last = session.scalar(sa_select(audit.AuditEvent.id).order_by(
            audit.AuditEvent.id.desc()).limit(1))
    _tamper(cli_db.database_url, "DELETE FROM audit_events WHERE id >= :i", i=last - 2)
    cut = _invoke("audit", "verify", "--user", "admin")
    assert cut.exit_code == 1 and "no longer in the chain" in cut.output, cut.output
    assert f"run {run_id}" in cut.output


def test_the_anchor_file_alone_exposes_a_tail_cut_with_the_runs_row(cli_db):
    _events(cli_db.database_url, 3)
    with session_scope(cli_db.database_url) as session:
        head = audit.chain_head(session)
    audit.append_anchor(cli_db.audit_anchor_file, audit.Anchor(head, "run 7"), 7)
    _tamper(cli_db.database_url, "DELETE FROM audit_events WHERE hash = :h", h=head)
    cut = _invoke("audit", "verify", "--user", "admin")
    assert cut.exit_code == 1 and "anchors.jsonl (run 7)" in cut.output, cut.output
