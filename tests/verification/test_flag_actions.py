"""Officers act on flags only within their jurisdiction; every action is audited."""

import datetime as dt

import pytest
from sqlalchemy import select

from tests.conftest import pull_everything, review_in_process
from verification.flags.actions import (
    FlagActionError,
    acknowledge_flag,
    get_flag,
    list_flags,
    resolve_flag,
)
from verification.intake.roster import load_roster
from verification.security.access import AccessDenied, principal
from verification.storage import session_scope
from verification.storage.models import AuditEvent


@pytest.fixture
def reviewed(sqlite_settings, district_dir):
    pull_everything(sqlite_settings, district_dir)
    load_roster(sqlite_settings, district_dir / "roster.csv")
    review_in_process(sqlite_settings, dt.date(2026, 11, 1))
    return sqlite_settings


def test_officer_sees_only_their_street_and_is_refused_elsewhere(reviewed):
    officer = principal("officer_wusan")
    mine = list_flags(reviewed, officer)
    assert mine and {f["street_code"] for f in mine} == {"210112001"}
    everything = list_flags(reviewed, principal("admin"))
    other = next(f for f in everything if f["street_code"] != "210112001")
    with pytest.raises(AccessDenied, match="outside that jurisdiction"):
        get_flag(reviewed, officer, other["id"])
    with pytest.raises(AccessDenied):
        resolve_flag(reviewed, officer, other["id"], "confirmed")


def test_resolution_is_recorded_audited_and_final(reviewed):
    officer = principal("officer_wusan")
    flag = next(f for f in list_flags(reviewed, officer) if f["kind"] == "REMOVE")
    acknowledge_flag(reviewed, officer, flag["id"])
    with pytest.raises(FlagActionError, match="written reason"):
        resolve_flag(reviewed, officer, flag["id"], "overridden", " ")
    resolve_flag(reviewed, officer, flag["id"], "home_visit", "入户核查车辆情况")
    shown = get_flag(reviewed, officer, flag["id"])
    assert (shown["status"], shown["resolution"], shown["resolved_by"]) == (
        "resolved", "home_visit", "officer_wusan")
    assert shown["evidence"] and shown["reasons"]
    assert all("*" in shown[k] for k in ("head_id", "head_name"))
    with pytest.raises(FlagActionError, match="already resolved"):
        resolve_flag(reviewed, officer, flag["id"], "confirmed")
    with session_scope(reviewed.database_url) as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert {"flag.acknowledged", "flag.resolved", "flag.viewed"} <= set(actions)


def test_partner_accounts_cannot_read_flags(reviewed):
    with pytest.raises(AccessDenied, match="may not flags.read"):
        list_flags(reviewed, principal("partner_hrss"))
