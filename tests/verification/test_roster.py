"""The caseload file: validated first, loaded whole or not at all, personal fields encrypted."""

import datetime as dt
import shutil

import pytest
from sqlalchemy import func, select, text

from verification.intake.roster import RosterInvalid, load_roster, validate_roster
from verification.security.fieldcrypt import load_field_cipher
from verification.storage import session_scope
from verification.storage.models import Authorisation, Household, Member


def test_load_is_idempotent_and_stores_no_plain_personal_data(settings, district_dir):
    roster = district_dir / "roster.csv"
    first = load_roster(settings, roster)
    again = load_roster(settings, roster)
    assert (first.households, first.members) == (again.households, again.members) == (60,
                                                                                      first.members)
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count(Household.id))) == 60
        assert session.scalar(select(func.count(Member.id))) == first.members
        assert session.scalar(select(func.count(Authorisation.id))) == first.members
        member = session.scalars(select(Member).limit(1)).one()
        plain = load_field_cipher().decrypt(member.id_number_enc, "members.id_number")
        assert member.id_masked == plain[:6] + "********" + plain[14:]
        dump = " ".join(str(v) for row in session.execute(text(
            "SELECT id_masked, name_masked, relation FROM members")).all() for v in row)
    assert plain not in dump


def test_a_loaded_roster_has_fresh_planner_statistics(settings, district_dir):
    # before: the statistics of the empty tables stood until autovacuum came, and the planner
    # joined members to households by nested loops (minutes for a quarter of a million members)
    load_roster(settings, district_dir / "roster.csv")
    with session_scope(settings.database_url) as session:
        if session.bind.dialect.name != "postgresql":
            assert session.scalar(select(func.count(Member.id))) > 0
            return
        analysed = session.execute(text(
            "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname IN "
            "('households', 'members', 'authorisations')")).all()
    assert sorted(analysed) == [("authorisations", True), ("households", True),
                                ("members", True)]


def test_a_file_with_bad_rows_loads_nothing_and_lists_every_error(settings, district_dir,
                                                                  tmp_path):
    lines = (district_dir / "roster.csv").read_text("utf-8").splitlines()
    cells = lines[3].split(",")
    cells[8] = cells[8][:17] + ("1" if cells[8][17] != "1" else "2")  # wrong check character
    lines[3] = ",".join(cells)
    target = next(i for i in range(6, len(lines)) if ",recipient," in lines[i])
    lines[target] = lines[target].replace(",recipient,", ",somebody,")
    bad = tmp_path / "roster.csv"
    bad.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(RosterInvalid) as caught:
        load_roster(settings, bad)
    errors = caught.value.errors
    assert {4, target + 1} <= set(errors["line"])
    assert set(errors["reason"]) >= {"ID_CHECK", "NOT_ALLOWED"}
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count(Household.id))) == 0


def test_household_rows_must_agree_and_have_one_head(tmp_path, district_dir):
    lines = (district_dir / "roster.csv").read_text("utf-8").splitlines()
    header, first = lines[0], lines[1]
    second_of_same = next(line for line in lines[2:] if line.split(",")[0] == first.split(",")[0])
    conflicting = second_of_same.replace(",urban,", ",rural,") if ",urban," in second_of_same \
        else second_of_same.replace(",rural,", ",urban,")
    path = tmp_path / "batch.csv"
    path.write_text("\n".join([header, first, conflicting]) + "\n", "utf-8")
    checked = validate_roster(path)
    assert "HOUSEHOLD_INCONSISTENT" in set(checked.quarantine["reason"])
    shutil.copy(path, tmp_path / "again.csv")


def test_every_optional_field_empty_loads_as_its_documented_default(settings, tmp_path):
    """schemas/batch.json: current_benefit, exclusion, disability_grade, disability_type,
    authorisation_scope and authorisation_expires_on are optional; empty, they load as 0, not
    excluded, no disability, scope all and no expiry — never as a database error."""
    from schemas import field_names
    from verification.intake.identifiers import make_id

    columns = field_names("batch")
    row = {"household_code": "HN-OPT-1", "area_code": "210112", "street_code": "210112001",
           "community_code": "210112001001", "status": "applicant", "category": "dibao",
           "urban_rural": "urban", "id_number": make_id("210112", dt.date(1970, 5, 6), 11),
           "name": "张伟明", "relation": "户主", "authorisation_ref": "SQ-OPT-1",
           "authorisation_signed_on": "2026-04-15"}
    path = tmp_path / "optional-empty.csv"
    path.write_text(",".join(columns) + "\n" + ",".join(row.get(c, "") for c in columns) + "\n",
                    encoding="utf-8")
    loaded = load_roster(settings, path)
    with session_scope(settings.database_url) as session:
        household = session.get(Household, loaded.household_ids[0])
        member = session.scalars(select(Member)).one()
        authorisation = session.scalars(select(Authorisation)).one()
        assert household.current_benefit == 0.0 and household.category == "dibao"
        assert (member.exclusion, member.disability_grade, member.disability_type) == ("", 0, "")
        assert (authorisation.scope, authorisation.expires_on) == ("all", None)


def test_a_person_already_in_another_household_is_refused_with_both_households(
        settings, district_dir, tmp_path):
    """One person in two households would have their income counted in both: the load is
    refused, naming the household they are in; both households' new rows load together."""
    import pandas as pd

    from verification.intake.roster import RosterConflict

    load_roster(settings, district_dir / "roster.csv")
    rows = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    codes = rows["household_code"].unique()
    first, second = rows[rows["household_code"].eq(codes[0])], rows[rows["household_code"].eq(
        codes[1])]
    from verification.intake.roster import HOUSEHOLD_FIELDS

    mover = first[first["relation"].ne("户主")].head(1).assign(
        household_code=codes[1], relation="其他",
        **{f: second[f].iloc[0] for f in HOUSEHOLD_FIELDS if f in second})
    assert len(mover)
    moved = tmp_path / "moved.csv"
    pd.concat([second, mover]).to_csv(moved, index=False)
    with pytest.raises(RosterConflict, match=codes[0]) as refused:
        load_roster(settings, moved)
    assert mover["id_number"].iloc[0] not in str(refused.value)  # masked
    with session_scope(settings.database_url) as session:  # nothing loaded
        assert session.scalar(select(func.count(Member.id)).join(Household).where(
            Household.household_code == codes[1])) == len(second)
    both = tmp_path / "both.csv"
    pd.concat([first.drop(mover.index), second, mover]).to_csv(both, index=False)
    assert load_roster(settings, both).households == 2
