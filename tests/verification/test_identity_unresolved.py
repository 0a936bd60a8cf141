"""Partner rows whose ID number is unusable: accepted at intake as *identity unresolved* (token
<NA>, keyed name forms and birth date kept, nothing raw staged), matched by the fallback in the
review, and the household goes to REVIEW with MATCH_UNCERTAIN — never to REMOVE."""

import datetime as dt
import json

import pandas as pd
from sqlalchemy import select

from schemas import contract_for
from tests.conftest import flags_by_household, pull_everything, review_in_process
from verification.intake import feeds as intake
from verification.intake.identifiers import canonical_id, is_valid_id, make_id
from verification.intake.roster import load_roster
from verification.intake.validate import identity_hints, validate_frame
from verification.matching.names import NAME_KEY_COLUMNS
from verification.storage import session_scope
from verification.storage.evidence_files import run_evidence
from verification.storage.models import AuditEvent, Feed, Flag, Household
from verification.synthetic.exchange import ensure_test_keys, publish_district
from verification.synthetic.generator import mistyped_check

AS_OF = dt.date(2026, 11, 1)


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = {"record_id": "", "id_number": "", "name": "", "plate_no": "辽A12345",
            "vehicle_type": "car", "registered_on": "2020-01-01", "status": "active"}
    frame = pd.DataFrame([{**base, **row} for row in rows]).astype("string")
    frame.insert(0, "_line", range(2, len(rows) + 2))
    return frame


def test_only_rows_whose_sole_fault_is_the_id_are_accepted_unresolved():
    good = make_id("210112", dt.date(1980, 5, 17), 123)
    frame = _frame([
        {"record_id": "V1", "id_number": good, "name": "王伟"},
        {"record_id": "V2", "id_number": mistyped_check(good), "name": "王伟"},  # ID_CHECK
        {"record_id": "V3", "id_number": "", "name": "李娜"},  # missing
        {"record_id": "V4", "id_number": "2101121980051", "name": "张敏"},  # ID_LENGTH
        {"record_id": "V5", "id_number": mistyped_check(good), "name": ""},  # and no name
        {"record_id": "V6", "id_number": mistyped_check(good), "name": "赵强",
         "registered_on": "2020-13-01"},  # and a bad date
    ])
    checked = validate_frame(frame, contract_for("vehicles"), identity_unresolved=True)
    assert checked.counts == {"received": 6, "accepted": 4, "quarantined": 2}
    assert checked.unresolved == 3
    accepted = checked.accepted.set_index("record_id")
    assert accepted["id_number"].isna().tolist() == [False, True, True, True]
    # birth date and gender from the canonical ID, or hints from a mistyped one; none guessed
    assert accepted["birth_date"].tolist()[:2] == [pd.Timestamp("1980-05-17")] * 2
    assert accepted["gender"].tolist()[:2] == ["M", "M"]
    assert accepted.loc[["V3", "V4"], "birth_date"].isna().all()
    assert set(checked.warnings["line"]) == {3, 4, 5}  # the ID problems are kept, as warnings
    assert set(checked.quarantine["line"]) == {6, 7}
    # without the option (batch files, the roster) every such row stays quarantined
    strict = validate_frame(frame, contract_for("vehicles"))
    assert strict.counts == {"received": 6, "accepted": 1, "quarantined": 5}
    assert strict.unresolved == 0 and "birth_date_from_id" not in strict.accepted


def test_the_records_own_birth_date_and_gender_are_preferred_and_flagged():
    good = make_id("210112", dt.date(1980, 5, 17), 123)  # a man born 1980-05-17
    frame = _frame([
        {"record_id": "V1", "id_number": good, "name": "王伟", "birth_date": "1981-02-03",
         "gender": "女"},
        {"record_id": "V2", "id_number": mistyped_check(good), "name": "王伟",
         "birth_date": "19800517", "gender": "1"},
        {"record_id": "V3", "id_number": good, "name": "王伟"},  # sends neither
        {"record_id": "V4", "id_number": good, "name": "王伟", "birth_date": "1980-02-30",
         "gender": "?", "phone": "+86 138-0000-0000", "address": "某某街道"},
    ])
    checked = validate_frame(frame, contract_for("vehicles"), identity_unresolved=True)
    assert checked.counts == {"received": 4, "accepted": 4, "quarantined": 0}
    accepted = checked.accepted.set_index("record_id")
    assert accepted["birth_date"].tolist() == [pd.Timestamp("1981-02-03"),
                                               *[pd.Timestamp("1980-05-17")] * 3]
    assert accepted["gender"].tolist() == ["F", "M", "M", "M"]
    assert accepted["birth_date_from_id"].tolist() == [False, False, True, True]
    assert accepted["gender_from_id"].tolist() == [False, False, True, True]
    # a bad birth date or gender costs the row nothing but that field: a warning
    bad = checked.warnings[checked.warnings["line"] == 5]
    assert set(bad["field"]) == {"birth_date", "gender"}
    assert set(bad["reason"]) == {"BAD_DATE", "BAD_GENDER"}


def test_intake_stages_keyed_address_and_phone_parts_only_for_rows_without_usable_id(settings):
    from verification.intake.tokens import TokenKey, person_tokens
    from verification.matching.address import (
        ADDRESS_KEY_COLUMNS,
        PHONE_KEY_COLUMNS,
        address_keys,
        phone_keys,
    )

    good = make_id("210112", dt.date(1980, 5, 17), 123)
    address, phone = "辽宁省沈阳市浑南区五三街道白塔堡社区富民小区3号楼2单元501室", "13800001234"
    frame = _frame([
        {"record_id": "V1", "id_number": good, "name": "王伟", "address": address,
         "phone": phone},  # a valid ID: matched on its token, no contact keys
        {"record_id": "V2", "id_number": "", "name": "王伟", "address": address,
         "phone": phone},
        {"record_id": "V3", "id_number": mistyped_check(good), "name": "王伟",
         "address": "富民小区3-2-501", "phone": ""},
        {"record_id": "V4", "id_number": "", "name": "王伟"},  # sends neither
    ])
    checked = validate_frame(frame, contract_for("vehicles"), identity_unresolved=True)
    key = TokenKey.from_settings(settings)
    staged = intake._staged_rows(settings, checked.accepted, "id_number",
                                 lambda ids: person_tokens(key, ids))
    assert not {"address", "phone", "name", "id_number"} & set(staged.columns)
    keyed = [*ADDRESS_KEY_COLUMNS, *PHONE_KEY_COLUMNS]
    assert set(keyed) <= set(staged.columns)
    text = staged.astype(str).to_csv()
    for raw in ("白塔堡", "富民", "501", phone, phone[-8:], good):
        assert raw not in text  # nothing raw, not even a part of it
    assert staged.loc[0, keyed].isna().all()  # the valid ID's row
    assert staged.loc[3, keyed].isna().all()  # nothing sent
    expected = pd.concat([address_keys(pd.Series([address]), key),
                          phone_keys(pd.Series([phone]), key)], axis=1).iloc[0]
    assert staged.loc[1, keyed].tolist() == expected.tolist()
    # the same flat written another way shares the room key; no phone sent, no phone key
    assert set(staged.loc[2, "address_rooms"].split()) & set(expected["address_rooms"].split())
    assert staged.loc[2, list(PHONE_KEY_COLUMNS)].isna().all()


def test_identity_hints_read_only_real_dates():
    raw = pd.Series(["２１０１１２１９８００５１７１２３０", "210112198013171230",
                     "210112800517123", None, "21011219800517"], dtype="string")
    canonical = pd.Series([None] * 5, dtype="string")
    born, gender = identity_hints(raw, canonical, today=dt.date(2026, 11, 1))
    assert born.tolist()[0] == pd.Timestamp("1980-05-17")  # full-width digits folded
    assert pd.isna(born.iloc[1])  # month 13: no hint
    assert born.iloc[2] == pd.Timestamp("1980-05-17")  # legacy 15-digit number
    assert born.iloc[3:].isna().all()
    assert gender.tolist()[:3] == ["M", "M", "M"] and gender.iloc[3:].isna().all()


def _process(settings, district_dir, kind: str, partner: str):
    catalogue = publish_district(settings, district_dir)
    feed = next(f for f in catalogue._feeds.values() if f.kind == kind)
    target = settings.feeds_dir / partner / f"{kind}-{feed.sequence}.hedui"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(feed.path.read_bytes())
    feed_id = intake.register_feed(settings, partner, kind, feed.period, feed.sequence, target)
    centre = ensure_test_keys(settings)
    return intake.process_feed(settings, feed_id, centre.keyring, centre.trusted)


def test_intake_stages_unresolved_rows_without_raw_ids_or_names(settings, district_dir):
    result = _process(settings, district_dir, "vehicles", "police")
    raw = pd.read_csv(district_dir / "feeds" / "vehicles.csv", dtype=str)
    unusable = raw[~raw["id_number"].map(is_valid_id)]
    assert len(unusable) >= 1  # the vehicle_id_mistyped household's car
    assert result.status == "accepted" and result.quarantined == 0
    assert result.received == result.accepted + result.quarantined == len(raw)
    assert result.identity_unresolved == len(unusable)
    assert result.receipt()["identity_unresolved"] == len(unusable)
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, result.feed_id)
        assert feed.rows_identity_unresolved == len(unusable)
        staged_path = feed.staged_path
        details = [e.detail for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "feed.accepted"))]
    assert details[-1]["identity_unresolved"] == len(unusable)
    assert intake.process_feed(settings, result.feed_id, None, None) == result  # from the row

    staged = pd.read_parquet(staged_path)
    assert {"id_number", "name"}.isdisjoint(staged.columns)
    assert {*NAME_KEY_COLUMNS, "birth_date", "gender"} <= set(staged.columns)
    unresolved = staged[staged["person_token"].isna()]
    assert sorted(unresolved["record_id"]) == sorted(unusable["record_id"])
    assert unresolved["birth_date"].notna().all()  # mistyped check: the birth date is right
    assert staged[list(NAME_KEY_COLUMNS)].notna().all().all()
    data = open(staged_path, "rb").read()  # noqa: SIM115
    for number, name in zip(raw["id_number"], raw["name"], strict=True):
        assert number.strip().encode() not in data
        if is_valid_id(number):
            assert canonical_id(number).encode() not in data
        assert name.encode() not in data


def test_mistyped_id_gives_review_with_the_candidate_never_remove(settings, district_dir):
    assert {r.status for r in pull_everything(settings, district_dir)} == {"accepted"}
    load_roster(settings, district_dir / "roster.csv")
    run_id = review_in_process(settings, AS_OF, run_key="identity-unresolved")
    truth = pd.read_csv(district_dir / "truth.csv", dtype=str)
    mistyped = truth.loc[truth["scenario"] == "vehicle_id_mistyped", "household_code"]
    assert len(mistyped) >= 1
    got = flags_by_household(settings, run_id).set_index("household_code")
    for code in mistyped:
        assert got.loc[code, "kind"] == "REVIEW"
        assert "MATCH_UNCERTAIN" in got.loc[code, "code"]
        assert "VEHICLE_OWNED" not in got.loc[code, "code"]  # the car decides nothing
    with session_scope(settings.database_url) as session:
        households = pd.DataFrame(session.execute(
            select(Flag.id, Household.household_code)
            .join(Household, Household.id == Flag.household_id)
            .where(Flag.run_id == run_id)).all(), columns=["flag_id", "household_code"])
        shown = households.merge(run_evidence(session, settings.home, run_id), on="flag_id")
    uncertain = shown[shown["match_grade"] != "certain"]
    assert set(uncertain["household_code"]) == set(mistyped)  # shown to the officer
    assert set(uncertain["source_kind"]) == {"vehicles"}
    assert set(uncertain["match_grade"]) <= {"probable", "possible"}

    # the junk rows planted for outsiders (bad check character) reach no household
    wages = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str)
    junk = set(wages.loc[~wages["id_number"].map(is_valid_id), "record_id"])
    assert junk
    evidence = pd.read_parquet(settings.runs_dir / f"run-{run_id}" / "evidence.parquet")
    assert junk.isdisjoint(set(evidence["record_ref"]))
    # the candidates the officer sees: the mistyped car's best candidate is its owner's household
    candidates = pd.read_parquet(settings.runs_dir / f"run-{run_id}" / "candidates.parquet")
    raw_cars = pd.read_csv(district_dir / "feeds" / "vehicles.csv", dtype=str)
    cars = raw_cars.loc[~raw_cars["id_number"].map(is_valid_id), "record_id"]
    best = candidates[candidates["rank"] == 1]
    assert sorted(best["record_ref"]) == sorted(cars)
    with session_scope(settings.database_url) as session:
        codes = dict(session.execute(select(Household.id, Household.household_code)).all())
    assert set(best["household_id"].map(codes)) == set(mistyped)
    assert (best["level_name"] == "exact").all() and (best["level_birth_date"] == "exact").all()
    assert {"id_number", "name"}.isdisjoint(candidates.columns)
    log = json.loads((settings.runs_dir / f"run-{run_id}" / "matching.json").read_text())
    assert log["counts"]["possible"] + log["counts"]["probable"] == len(mistyped)
    assert "name_key_version" in log and log["rows"] > log["identities"]


def test_unmatched_evidence_leaves_out_rows_only_the_matcher_can_place():
    from verification.assessment.evidence import evidence_from_staged

    staged = pd.DataFrame({
        "person_token": pd.array([7, pd.NA], dtype="Int64"), "record_id": ["V1", "V2"],
        "plate_no": ["辽A1", "辽A2"], "vehicle_type": ["car", "car"],
        "registered_on": pd.to_datetime(["2020-01-01", "2021-01-01"]),
        "status": ["active", "active"]})
    evidence = evidence_from_staged(staged, contract_for("vehicles"), 3)
    assert evidence["record_ref"].tolist() == ["V1"] and evidence["person_token"].tolist() == [7]


def test_batch_check_places_the_mistyped_id_as_reviews_do(settings, district_dir, tmp_path):
    from verification.batches import check as batches

    assert {r.status for r in pull_everything(settings, district_dir)} == {"accepted"}
    truth = pd.read_csv(district_dir / "truth.csv", dtype=str)
    mistyped = set(truth.loc[truth["scenario"] == "vehicle_id_mistyped", "household_code"])
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "batch.csv"
    roster[roster["household_code"].isin(mistyped)].to_csv(path, index=False,
                                                           encoding="utf-8-sig")
    status = batches.run_batch_locally(settings, path, as_of=AS_OF)
    assert status["status"] == "done"
    got = flags_by_household(settings, status["run_id"]).set_index("household_code")
    for code in mistyped:  # the car reaches the household through the fallback: REVIEW
        assert got.loc[code, "kind"] == "REVIEW"
        assert "MATCH_UNCERTAIN" in got.loc[code, "code"]


def test_a_mistyped_id_is_staged_as_the_tokens_of_the_numbers_it_may_have_meant(settings):
    from verification.intake.tokens import TokenKey, person_tokens

    good = make_id("210112", dt.date(1980, 5, 17), 123)
    digit = good[:9] + str((int(good[9]) + 4) % 10) + good[10:]  # one digit wrong
    frame = _frame([{"record_id": "V1", "id_number": good, "name": "王伟"},
                    {"record_id": "V2", "id_number": digit, "name": "王伟"},
                    {"record_id": "V3", "id_number": mistyped_check(good), "name": "王伟"},
                    {"record_id": "V4", "id_number": "", "name": "王伟"}])
    checked = validate_frame(frame, contract_for("vehicles"), identity_unresolved=True)
    key = TokenKey.from_settings(settings)
    staged = intake._staged_rows(settings, checked.accepted, "id_number",
                                 lambda ids: person_tokens(key, ids))
    owner = str(person_tokens(key, pd.Series([good])).iloc[0])
    near = staged["id_near"]
    assert near.isna().tolist() == [True, False, False, True]  # a valid or missing ID: none
    assert all(owner in near.iloc[i].split(" ") for i in (1, 2))
    assert good not in " ".join(near.dropna())  # tokens, not the numbers
    assert "_id_near_numbers" not in staged  # the raw numbers never reach staging
