"""Batch files as people type them: the contract's Chinese titles as headers (家庭编号 …) and the
Chinese labels of coded values (在保, 低保, 城镇) are read as the field names and codes."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

from connectors.decoding import DecodeError
from schemas import load_contract
from verification import codes
from verification.intake.roster import CODED_FIELDS, load_roster, validate_roster
from verification.storage import session_scope
from verification.storage.models import Household


def _chinese(roster: pd.DataFrame) -> pd.DataFrame:
    titles = {f["name"]: f["title"] for f in load_contract("batch")["fields"]}
    typed = roster.copy()
    for field, section in CODED_FIELDS.items():
        typed[field] = typed[field].map(lambda v, s=section: codes.label(s, v) if v else v)
    return typed.rename(columns=titles)


def test_chinese_titles_and_labels_in_an_xlsx_are_accepted_like_the_codes(settings,
                                                                         district_dir,
                                                                         tmp_path):
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    typed = _chinese(roster)
    assert "家庭编号" in typed.columns and "在保" in set(typed["家庭状态"])
    path = tmp_path / "按中文表头填写.xlsx"
    typed.to_excel(path, index=False)
    checked = validate_roster(path)
    assert checked.received == len(roster) and checked.quarantine.empty
    plain = validate_roster(district_dir / "roster.csv").accepted
    assert list(checked.accepted["status"]) == list(plain["status"])
    assert list(checked.accepted["category"]) == list(plain["category"])
    loaded = load_roster(settings, path)
    assert loaded.households == plain["household_code"].nunique()
    with session_scope(settings.database_url) as session:
        statuses = set(session.scalars(select(Household.status)))
    assert statuses <= {"recipient", "applicant", "monitored"}


def test_a_label_that_is_no_code_s_is_still_refused(district_dir, tmp_path):
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    typed = _chinese(roster)
    typed.loc[0, "家庭状态"] = "在册"  # not a label of any household status
    path = tmp_path / "batch.csv"
    typed.to_csv(path, index=False, encoding="utf-8-sig")
    checked = validate_roster(path)
    refused = checked.quarantine[checked.quarantine["line"] == 2]
    assert list(refused["field"]) == ["status"] and list(refused["reason"]) == ["NOT_ALLOWED"]


def test_a_column_given_by_name_and_by_title_is_a_repeated_header(district_dir, tmp_path):
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    roster["家庭编号"] = roster["household_code"]
    path = tmp_path / "twice.csv"
    roster.to_csv(path, index=False, encoding="utf-8-sig")
    with pytest.raises(DecodeError, match="appears twice in the header"):
        validate_roster(path)
