"""授权书: no valid authorisation for every member, no check and no query; refusals name the
members (masked) and say why; authorisations are recorded with their batch; a query names the
authorisation it relies on and is audited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import delete, select, update

from verification.intake.roster import load_roster, validate_roster
from verification.security import audit
from verification.security.authorisation import (
    NotAuthorised,
    query_references,
    require_authorised,
    scope_covers,
)
from verification.storage import session_scope
from verification.storage.models import (
    AuditEvent,
    AuditSubject,
    Authorisation,
    Batch,
    Household,
    Member,
    Run,
)

AS_OF = dt.date(2026, 11, 1)


def _roster(district_dir: Path, tmp_path: Path, households: int = 3, **columns: str) -> Path:
    frame = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    frame = frame[frame["household_code"].isin(frame["household_code"].unique()[:households])]
    for name, value in columns.items():
        frame[name] = value
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    return path


def _load(settings, path: Path, batch_code: str = "B-1") -> tuple[list[int], pd.DataFrame]:
    with session_scope(settings.database_url) as session:
        batch = Batch(batch_code=batch_code)
        session.add(batch)
        session.flush()
        batch_id = batch.id
    loaded = load_roster(settings, path, batch_id=batch_id)
    return loaded.household_ids, pd.read_csv(path, dtype=str, keep_default_na=False)


def test_every_member_authorised_gives_each_reference_and_records_the_batch(settings,
                                                                             district_dir,
                                                                             tmp_path):
    households, frame = _load(settings, _roster(district_dir, tmp_path))
    refs = require_authorised(settings, households, AS_OF)
    assert sorted(refs.values()) == sorted(frame["authorisation_ref"])
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Authorisation)).all()
        batch_id = session.scalar(select(Batch.id).where(Batch.batch_code == "B-1"))
    assert len(rows) == len(frame) and {r.batch_id for r in rows} == {batch_id}
    assert {r.scope for r in rows} == {"all"} and {r.expires_on for r in rows} == {None}


def _one_member(settings) -> Member:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(Member).order_by(Member.id)).first()


@pytest.mark.parametrize("change, why", [
    ({"expires_on": dt.date(2026, 10, 31)}, "expired on 2026-10-31"),
    ({"signed_on": dt.date(2026, 11, 2)}, "is dated 2026-11-02, after 2026-11-01"),
    ({"scope": "realestate"}, "does not cover hrss / wages"),
])
def test_a_check_is_refused_naming_the_member_masked_and_why(settings, district_dir, tmp_path,
                                                             change, why):
    households, frame = _load(settings, _roster(district_dir, tmp_path))
    member = _one_member(settings)
    with session_scope(settings.database_url) as session:
        session.execute(update(Authorisation).where(Authorisation.member_id == member.id)
                        .values(**change))
    with pytest.raises(NotAuthorised) as refused:
        require_authorised(settings, households, AS_OF, what="batch B-1", partner="hrss",
                           feed_kind="wages")
    message = str(refused.value)
    assert message.startswith("batch B-1 refused: 1 member(s)")
    assert why in message and member.name_masked in message and member.id_masked in message
    assert [m.member_id for m in refused.value.members] == [member.id]
    raw = frame[frame["id_number"].str.startswith(member.id_masked[:6])]
    assert not any(i in message for i in raw["id_number"])
    assert not any(n in message for n in frame["name"] if len(n) > 1)


def test_several_asks_read_the_members_once_and_the_first_uncovered_one_refuses(
        settings, district_dir, tmp_path):
    households, _ = _load(settings, _roster(district_dir, tmp_path))
    member = _one_member(settings)
    with session_scope(settings.database_url) as session:
        session.execute(update(Authorisation).where(Authorisation.member_id == member.id)
                        .values(scope="hrss"))
    covered = require_authorised(settings, households, AS_OF,
                                 asks=[("hrss", "wages"), ("hrss", "pensions")])
    assert len(covered) == len(set(covered)) and member.id in covered
    assert require_authorised(settings, households, AS_OF, asks=[]) == {}  # nothing asked
    with pytest.raises(NotAuthorised) as refused:
        require_authorised(settings, households, AS_OF, what="batch B-1",
                           asks=[("hrss", "wages"), ("finance", "deposits")])
    assert [m.member_id for m in refused.value.members] == [member.id]
    assert "does not cover finance / deposits" in str(refused.value)


def test_a_member_without_any_authorisation_is_named(settings, district_dir, tmp_path):
    households, _ = _load(settings, _roster(district_dir, tmp_path))
    member = _one_member(settings)
    with session_scope(settings.database_url) as session:
        session.execute(delete(Authorisation).where(Authorisation.member_id == member.id))
    with pytest.raises(NotAuthorised, match="no authorisation on file"):
        require_authorised(settings, households, AS_OF)


def test_open_ended_authorisations_lapse_when_the_household_leaves(settings, district_dir,
                                                                   tmp_path):
    households, _ = _load(settings, _roster(district_dir, tmp_path, households=1))
    with session_scope(settings.database_url) as session:
        session.execute(update(Household).values(status="closed"))
    with pytest.raises(NotAuthorised, match="valid while the household was assisted"):
        require_authorised(settings, households, AS_OF)


def test_an_expiry_date_keeps_it_valid_whatever_the_status(settings, district_dir, tmp_path):
    path = _roster(district_dir, tmp_path, households=1, authorisation_expires_on="2027-04-30")
    households, _ = _load(settings, path)
    with session_scope(settings.database_url) as session:
        session.execute(update(Household).values(status="closed"))
    assert require_authorised(settings, households, AS_OF)
    with pytest.raises(NotAuthorised, match="expired on 2027-04-30"):
        require_authorised(settings, households, dt.date(2027, 5, 1))


def test_scope_from_the_batch_file_limits_the_partners(settings, district_dir, tmp_path):
    path = _roster(district_dir, tmp_path, households=2, authorisation_scope="hrss；deposits")
    households, _ = _load(settings, path)
    assert require_authorised(settings, households, AS_OF, partner="hrss", feed_kind="wages")
    assert require_authorised(settings, households, AS_OF, partner="finance",
                              feed_kind="deposits")
    with pytest.raises(NotAuthorised, match="does not cover police / vehicles"):
        require_authorised(settings, households, AS_OF, partner="police", feed_kind="vehicles")


@pytest.mark.parametrize("scope, partner, kind, covered", [
    ("all", "hrss", "wages", True), ("ALL", None, None, True), ("*", "x", None, True),
    ("hrss", "hrss", None, True), ("hrss, police", "police", "vehicles", True),
    ("wages", "hrss", "wages", True), ("hrss", "police", "vehicles", False),
    ("", "hrss", "wages", False), ("hrss", None, None, False),
])
def test_scope_covers(scope, partner, kind, covered):
    assert scope_covers(scope, partner, kind) is covered


@pytest.mark.parametrize("column, value, reason", [
    ("authorisation_scope", "hrss;;", "BAD_FORMAT"),
    ("authorisation_scope", "=cmd|'/c calc'!A1", "BAD_FORMAT"),
    ("authorisation_expires_on", "2026-02-30", "BAD_DATE"),
    ("authorisation_ref", "", "REQUIRED"),
    ("authorisation_signed_on", "someday", "BAD_DATE"),
])
def test_bad_authorisation_fields_are_quarantined_with_the_reason(district_dir, tmp_path, column,
                                                                  value, reason):
    path = _roster(district_dir, tmp_path, households=1, **{column: value})
    checked = validate_roster(path)
    assert checked.counts["accepted"] == 0
    assert set(checked.quarantine.loc[checked.quarantine["field"] == column, "reason"]) == {reason}


def _tokens(settings, households: list[int]) -> list[int]:
    with session_scope(settings.database_url) as session:
        return list(session.scalars(select(Member.person_token)
                                    .where(Member.household_id.in_(households))))


def test_a_query_names_each_persons_authorisation_and_is_audited(settings, district_dir,
                                                                 tmp_path):
    households, frame = _load(settings, _roster(district_dir, tmp_path))
    tokens = _tokens(settings, households)
    refs = query_references(settings, "hrss", "wages", tokens, AS_OF, purpose="batch:B-1",
                            actor="hedui_staff")
    assert set(refs) == set(tokens) and set(refs.values()) == set(frame["authorisation_ref"])
    with session_scope(settings.database_url) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "data.access"))
        subjects = set(session.scalars(select(AuditSubject.person_token)
                                       .where(AuditSubject.event_id == event.id)))
        assert audit.verify_chain(session).ok
    assert (event.actor, event.subject, event.detail["partner"]) == ("hedui_staff", "batch:B-1",
                                                                     "hrss")
    assert subjects == set(tokens) and event.detail["subjects"] == len(tokens)


def test_a_query_about_an_unauthorised_or_unknown_person_is_refused_unaudited(settings,
                                                                              district_dir,
                                                                              tmp_path):
    households, _ = _load(settings, _roster(district_dir, tmp_path))
    tokens = _tokens(settings, households)
    with pytest.raises(NotAuthorised, match="not a member of any household on file"):
        query_references(settings, "hrss", "wages", [*tokens, 12345], AS_OF, purpose="run:1",
                         actor="pipeline")
    with session_scope(settings.database_url) as session:
        session.execute(update(Authorisation).values(scope="police"))
    with pytest.raises(NotAuthorised, match=f"{len(tokens)} member"):
        query_references(settings, "hrss", "wages", tokens, AS_OF, purpose="run:1",
                         actor="pipeline")
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "data.access")) \
            is None


# ---- the batch check (in process): refused before any partner data is used ----------------------
@pytest.fixture
def fed(sqlite_settings, district_dir):
    from tests.conftest import pull_everything

    pull_everything(sqlite_settings, district_dir)
    return sqlite_settings


def _submitted(settings, district_dir: Path, tmp_path: Path) -> int:
    from verification.batches import check as batches

    path = _roster(district_dir, tmp_path, households=4)
    ref = batches.register_batch(settings, path, requester="hedui_staff")
    batches.validate_batch(settings, ref.id)
    batches.load_batch(settings, ref.id)
    return ref.id


def test_a_batch_check_names_the_partner_data_it_used_by_token(fed, district_dir, tmp_path):
    from verification.batches import check as batches

    batch_id = _submitted(fed, district_dir, tmp_path)
    run_id = batches.collect_evidence(fed, batch_id, AS_OF)
    with session_scope(fed.database_url) as session:
        code = session.get(Batch, batch_id).batch_code
        assert {a.batch_id for a in session.scalars(select(Authorisation))} == {batch_id}
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "data.access")
                                 ).all()
        members = set(session.scalars(select(Member.person_token)))
        assert events and {e.subject for e in events} == {f"batch:{code}"}
        assert {e.actor for e in events} == {"hedui_staff"}
        for event in events:
            tokens = set(session.scalars(select(AuditSubject.person_token)
                                         .where(AuditSubject.event_id == event.id)))
            assert tokens and tokens <= members
        assert audit.verify_chain(session).ok
        assert session.get(Run, run_id).status == "running"


def test_a_batch_check_without_every_authorisation_is_refused_and_audited(fed, district_dir,
                                                                         tmp_path):
    from verification.batches import check as batches

    batch_id = _submitted(fed, district_dir, tmp_path)
    member = _one_member(fed)
    with session_scope(fed.database_url) as session:
        session.execute(update(Authorisation).where(Authorisation.member_id == member.id)
                        .values(expires_on=dt.date(2026, 6, 30)))
    with pytest.raises(NotAuthorised, match="expired on 2026-06-30") as refused:
        batches.collect_evidence(fed, batch_id, AS_OF)
    assert member.id_masked in str(refused.value)
    with session_scope(fed.database_url) as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "data.access")) \
            is None
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "batch.refused"))
        assert event.detail["member_ids"] == [member.id]
        assert session.scalar(select(Run).where(Run.kind == "batch")).status == "refused"
