"""Bulk writes (verification/storage/bulk.py) store exactly what the ORM would, on SQLite and
PostgreSQL:
the same values read back, NULL kept apart from the empty string, awkward text intact, column
defaults applied, and nothing left behind when the caller's transaction rolls back."""

import datetime as dt
import json
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func, insert, select

from verification.storage import bulk, session_scope
from verification.storage.models import Flag, FlagEvidence, FlagReason, Household, Run

AWKWARD = ["plain", "", 'with "quotes"', "comma, and\nnewline", "\\N", "中文 ，全角", "tab\there",
           "NULL", " padded "]


def _household_and_runs(url: str) -> tuple[list[int], int, int]:
    with session_scope(url) as session:
        households = [Household(household_code=f"H{i}", area_code="210112",
                                street_code="210112001", community_code="210112001001",
                                status="recipient") for i in range(len(AWKWARD))]
        runs = [Run(run_key=key, as_of=dt.date(2026, 11, 1), region="210112")
                for key in ("bulk", "orm")]
        session.add_all(households + runs)
        session.flush()
        return [h.id for h in households], runs[0].id, runs[1].id


def _flag_rows(households: list[int], run_id: int) -> pd.DataFrame:
    n = len(households)
    return pd.DataFrame({
        "run_id": run_id, "household_id": households, "kind": "REVIEW",
        "street_code": "210112001", "community_code": "210112001001",
        "due_date": [dt.date(2026, 12, 1) if i % 2 else None for i in range(n)],
        "evidence_digest": AWKWARD, "policy_version": "v1",
    })


def _read_flags(url: str, run_id: int) -> list[tuple]:
    with session_scope(url) as session:
        return [(f.household_id, f.kind, f.due_date, f.evidence_digest, f.status, f.resolution,
                 f.resolved_at) for f in session.scalars(
                    select(Flag).where(Flag.run_id == run_id).order_by(Flag.household_id))]


def test_bulk_rows_read_back_as_the_orm_writes_them(database_url):
    households, bulk_run, orm_run = _household_and_runs(database_url)
    with session_scope(database_url) as session:
        written = bulk.insert_frame(session.connection(), Flag.__table__,
                                    _flag_rows(households, bulk_run))
        rows = _flag_rows(households, orm_run).to_dict("records")
        session.execute(insert(Flag), [{**r, "due_date": r["due_date"] or None} for r in rows])
    assert written == len(households)
    assert _read_flags(database_url, bulk_run) == _read_flags(database_url, orm_run)
    by_household = {r[0]: r for r in _read_flags(database_url, bulk_run)}
    assert [by_household[h][3] for h in households] == AWKWARD  # "" stays "", not NULL
    assert by_household[households[0]][2] is None and by_household[households[1]][2] == dt.date(
        2026, 12, 1)
    assert {r[4] for r in by_household.values()} == {"open"}  # column default applied


def test_evidence_and_json_columns_round_trip(database_url):
    households, run_id, _ = _household_and_runs(database_url)
    with session_scope(database_url) as session:
        bulk.insert_frame(session.connection(), Flag.__table__, _flag_rows(households, run_id))
        hh, ids = bulk.fetch_pairs(session.connection(), select(Flag.household_id, Flag.id)
                                   .where(Flag.run_id == run_id))
        assert sorted(hh.tolist()) == sorted(households) and ids.dtype == np.int64
        flag_id = int(ids[0])
        evidence = pd.DataFrame({
            "flag_id": flag_id, "source_kind": "wages", "feed_id": 3, "record_ref": AWKWARD,
            "item": pd.Categorical(["wage"] * len(AWKWARD)),
            "amount": np.linspace(0.1, 99999.99, len(AWKWARD)),
            "period_start": pd.Timestamp("2026-10-01"),
            "period_end": [pd.NaT] + [pd.Timestamp("2026-10-31")] * (len(AWKWARD) - 1),
            "match_grade": "certain"})
        bulk.insert_frame(session.connection(), FlagEvidence.__table__, evidence)
        details = pd.DataFrame({"value": [1.5, np.nan], "limit": [3.0, 1e20],
                                "parameter": ["dibao.standard", None],
                                "reference": ['民政部 "2021"', ""],
                                "evidence_refs": ["wages:3:a;wages:3:b", None]})
        bulk.insert_frame(session.connection(), FlagReason.__table__, pd.DataFrame({
            "flag_id": flag_id, "code": ["INCOME_OVER_STANDARD", "X"],
            "detail": bulk.json_objects(details)}))
    with session_scope(database_url) as session:
        stored = session.scalars(select(FlagEvidence).order_by(FlagEvidence.id)).all()
        reasons = session.scalars(select(FlagReason).order_by(FlagReason.id)).all()
    assert [e.record_ref for e in stored] == AWKWARD
    assert [e.amount for e in stored] == pytest.approx(evidence["amount"].tolist())
    assert stored[0].period_end is None and stored[1].period_end == dt.date(2026, 10, 31)
    assert stored[0].period_start == dt.date(2026, 10, 1) and stored[0].item == "wage"
    assert reasons[0].detail == {"value": 1.5, "limit": 3.0, "parameter": "dibao.standard",
                                 "reference": '民政部 "2021"',
                                 "evidence_refs": "wages:3:a;wages:3:b"}
    assert reasons[1].detail == {"value": None, "limit": 1e20, "parameter": None,
                                 "reference": "", "evidence_refs": None}


def test_a_rolled_back_transaction_leaves_no_rows(database_url):
    households, run_id, _ = _household_and_runs(database_url)
    with pytest.raises(RuntimeError), session_scope(database_url) as session:
        bulk.insert_frame(session.connection(), Flag.__table__, _flag_rows(households, run_id))
        raise RuntimeError("the rest of the run failed")
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count(Flag.id))) == 0


def test_batches_cover_every_row(database_url):
    households, run_id, _ = _household_and_runs(database_url)
    with session_scope(database_url) as session:
        bulk.insert_frame(session.connection(), Flag.__table__, _flag_rows(households, run_id),
                          batch_rows=2)
    assert len(_read_flags(database_url, run_id)) == len(households)


def test_unknown_columns_are_refused(database_url):
    with session_scope(database_url) as session, pytest.raises(ValueError, match="no column"):
        bulk.insert_frame(session.connection(), Flag.__table__, pd.DataFrame({"nope": [1]}))


def test_json_objects_equal_json_dumps_of_each_row():
    frame = pd.DataFrame({
        "float": [1.0, 0.1 + 0.2, np.nan, np.inf, -1e-7, 123456789.125],
        "int": np.arange(6, dtype=np.int64), "bool": [True, False] * 3,
        "text": ["a", None, '引号"\\', "", "x", "wages,pensions"],
        "cat": pd.Categorical(["dibao", "edge", None, "dibao", "none", "edge"]),
    })
    expected = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, float) and np.isnan(value):
                value = None
            row[key] = value
        expected.append(row)
    got = [json.loads(text) for text in bulk.json_objects(frame)]
    assert got == expected
    assert bulk.json_objects(frame.iloc[:1])[0] == json.dumps(expected[0])


@pytest.mark.parametrize("dtype", [object, "string", pd.StringDtype("pyarrow")])
def test_text_is_written_exactly_as_json_dumps_writes_it(dtype):
    values = ["wages:3:R1;wages:3:R2", 'a"b', "a\\b", "tab\there", "王小明", "", None,
              "x\x7f", "~!#[]{}", "\u2028", "wages:3:R1;wages:3:R2", "\x00"]
    column = pd.Series(values, dtype=dtype)
    got = bulk.json_objects(pd.DataFrame({"refs": column}))
    assert got.tolist() == [json.dumps({"refs": v}) for v in values]


def _evidence_rows(flag_id: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"flag_id": flag_id, "source_kind": "wages", "feed_id": 1,
                         "record_ref": [f"W{i}" for i in range(n)], "item": "wage",
                         "amount": 100.0, "period_start": dt.date(2026, 10, 1),
                         "period_end": dt.date(2026, 10, 31), "match_grade": "certain"})


def test_flag_children_need_their_flag_and_go_with_it(database_url):
    """On PostgreSQL the reasons' and evidence's keys are checked once per statement (revision
    0002), not per row: a bulk write citing a flag that does not exist still fails as a foreign
    key violation, and deleting flags still deletes their reasons and evidence."""
    from sqlalchemy import delete

    households, run_id, _ = _household_and_runs(database_url)
    with session_scope(database_url) as session:
        bulk.insert_frame(session.connection(), Flag.__table__, _flag_rows(households, run_id))
        flag_id = session.scalar(select(func.min(Flag.id)))
        bulk.insert_frame(session.connection(), FlagEvidence.__table__,
                          _evidence_rows(flag_id, 3))
        session.add(FlagReason(flag_id=flag_id, code="INCOME_OVER_STANDARD", detail={}))
    for model, rows in ((FlagEvidence, _evidence_rows(flag_id + 10_000, 2)),
                        (FlagReason, pd.DataFrame({"flag_id": [flag_id, flag_id + 10_000],
                                                   "code": "X", "detail": [{}, {}]}))):
        # the driver's IntegrityError (bulk writes go through the DBAPI cursor)
        with pytest.raises(Exception, match="(?i)foreign key"), session_scope(
                database_url) as session:
            bulk.insert_frame(session.connection(), model.__table__, rows)
    with session_scope(database_url) as session:  # nothing of the failed writes is left
        assert session.scalar(select(func.count()).select_from(FlagEvidence)) == 3
        assert session.scalar(select(func.count()).select_from(FlagReason)) == 1
        session.execute(delete(Flag).where(Flag.run_id == run_id))
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(FlagEvidence)) == 0
        assert session.scalar(select(func.count()).select_from(FlagReason)) == 0


def test_audit_subjects_need_their_event(database_url):
    from verification.storage.models import AuditSubject

    with pytest.raises(Exception, match="(?i)foreign key"), session_scope(
            database_url) as session:
        bulk.insert_frame(session.connection(), AuditSubject.__table__,
                          pd.DataFrame({"event_id": [987_654], "person_token": [1]}))


def test_more_households_than_sqlite_takes_parameters_are_read_in_chunks(sqlite_settings):
    """A re-check or a batch may name more households than SQLite's 32,766 parameters."""
    from verification import pipeline
    from verification.intake.tokens import TokenKey
    from verification.matching.run import people_for_matching
    from verification.security.fieldcrypt import load_field_cipher
    from verification.storage.models import Member

    n = 33_000
    ids = np.arange(1, n + 1)
    households = pd.DataFrame({
        "id": ids, "household_code": [f"H{i:06d}" for i in ids], "area_code": "210112",
        "street_code": "210112001", "community_code": "210112001001", "status": "recipient",
        "category": "dibao", "urban_rural": "urban", "current_benefit": 0.0})
    cipher = load_field_cipher()
    name = cipher.encrypt("张三", "members.name")
    members = pd.DataFrame({
        "household_id": ids, "person_token": ids * 7919, "birth_date": dt.date(1970, 1, 1),
        "gender": "M", "relation": "head", "token_key_id": sqlite_settings.token_key_id,
        "id_number_enc": [cipher.encrypt(f"{i:018d}", "members.id_number") for i in ids],
        "name_enc": [name] * n, "id_masked": "2101**********0011", "name_masked": "张*",
        "exclusion": "", "disability_grade": 0, "disability_type": "", "labour_capacity": True})
    with session_scope(sqlite_settings.database_url) as session:
        bulk.insert_frame(session.connection(), Household.__table__, households)
        bulk.insert_frame(session.connection(), Member.__table__, members)
    # as SQLite is built by default (this build allows more): 32,766 parameters a statement
    from sqlalchemy import event

    from verification.storage.db import connect, dispose

    dispose(sqlite_settings.database_url)
    engine = connect(sqlite_settings.database_url)

    @event.listens_for(engine, "connect")
    def _default_limit(dbapi_connection, _record):  # noqa: ANN001, ANN202
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)

    wanted = ids[::-1][:n - 10]  # all but ten, in another order
    assert len(pipeline.load_households(sqlite_settings, household_ids=wanted)) == n - 10
    loaded = pipeline.load_members(sqlite_settings, pd.Index(wanted))
    assert sorted(loaded["household_id"]) == sorted(wanted.tolist())
    people = people_for_matching(sqlite_settings, TokenKey.from_settings(sqlite_settings),
                                 wanted.tolist())
    assert len(people) == n - 10 and set(people["household_id"]) == set(wanted.tolist())
    assert [len(c) for c in bulk.in_chunks([])] == [0]
    assert [len(c) for c in bulk.in_chunks(range(12_001))] == [5_000, 5_000, 2_001]


def test_read_frame_gives_the_values_the_driver_gives(database_url):
    """On PostgreSQL ``read_frame`` goes through COPY and Arrow's CSV reader: NULL and the empty
    string, awkward text, codes made of digits, dates, booleans and numbers come back as the
    driver's rows have them (on SQLite it is the driver's rows)."""
    households, bulk_run, _ = _household_and_runs(database_url)
    with session_scope(database_url) as session:
        bulk.insert_frame(session.connection(), Flag.__table__, _flag_rows(households, bulk_run))
    query = (select(Flag.household_id, Flag.kind, Flag.street_code, Flag.due_date,
                    Flag.evidence_digest, Flag.resolution, Household.current_benefit)
             .join(Household, Household.id == Flag.household_id)
             .where(Flag.run_id == bulk_run, Flag.street_code == "210112001")
             .order_by(Flag.household_id))
    with session_scope(database_url) as session:
        got = bulk.read_frame(session.connection(), query)
        rows = session.execute(query).all()
    expected = pd.DataFrame(rows, columns=list(got.columns))
    assert got.to_dict("records") == expected.to_dict("records")
    assert got["street_code"].tolist() == ["210112001"] * len(AWKWARD)  # text, not a number
    assert got["evidence_digest"].tolist() == AWKWARD
    assert got["due_date"].iloc[1] == dt.date(2026, 12, 1)
    assert got["due_date"].iloc[0] is None  # NULL, not NaT or ''
    assert got["resolution"].tolist() == [""] * len(AWKWARD)  # '' and NULL kept apart
    with session_scope(database_url) as session:
        none = bulk.read_frame(session.connection(), query.where(Flag.run_id == -1))
    assert none.empty and list(none.columns) == list(got.columns)


def test_read_frame_reads_binary_as_the_driver_gives_it(database_url):
    """Binary columns (the roster's ciphertexts) come through COPY as hex and are decoded on
    arrays: the same bytes as the driver's, NULL as None, an empty value as b''; two selected
    columns of one name (``id`` of both tables) stay apart."""
    blobs = [bytes(range(256)), None, b"", b"\x00", b"\\x41,\"\n"]
    with session_scope(database_url) as session:
        households = [Household(household_code=f"B{i}", area_code="210112",
                                street_code="210112001", community_code="210112001001",
                                status="recipient", address_enc=blob)
                      for i, blob in enumerate(blobs)]
        session.add_all(households)
        session.flush()
        ids = [h.id for h in households]
    other = Household.__table__.alias("other")
    query = (select(Household.id, Household.address_enc, Household.household_code, other.c.id)
             .join(other, other.c.id == Household.id)
             .where(Household.id.in_(ids)).order_by(Household.id))
    with session_scope(database_url) as session:
        got = bulk.read_frame(session.connection(), query)
        rows = session.execute(query).all()
    assert got.iloc[:, 1].tolist() == blobs
    assert [None if r[1] is None else bytes(r[1]) for r in rows] == blobs
    assert got.iloc[:, 0].tolist() == got.iloc[:, 3].tolist() == ids
    assert got.iloc[:, 2].tolist() == [f"B{i}" for i in range(len(blobs))]


def test_unhex_refuses_what_is_not_hex():
    assert bulk.unhex(pa.array(["00ff", None, "", "DEADbeef"])).to_pylist() == [
        b"\x00\xff", None, b"", b"\xde\xad\xbe\xef"]
    for bad in (["0g"], ["abc"]):
        with pytest.raises(ValueError, match="not hex"):
            bulk.unhex(pa.array(bad))
