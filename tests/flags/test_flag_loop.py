"""Officers close the loop: a resolved flag is not raised again on the same evidence, and is on
new evidence; reruns keep what officers did. Two review runs through the real pipeline."""

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from tests.conftest import pull_everything, review_in_process
from verification import pipeline
from verification.flags.actions import list_flags, resolve_flag
from verification.intake.roster import load_roster
from verification.security.access import principal
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Flag, Household, Member

AS_OF = dt.date(2026, 11, 1)


def _review_with_new_car(settings, run_key: str, household_code: str) -> int:
    """A review in which the vehicle registry also shows a car newly registered to a member of
    ``household_code`` (as a later vehicles feed would)."""
    run_id = pipeline.start_review(settings, run_key, AS_OF)
    plan = pipeline.prepare_evidence(settings, run_id)
    path = settings.runs_dir / f"run-{run_id}" / "evidence.parquet"
    evidence = pd.read_parquet(path)
    with session_scope(settings.database_url) as session:
        household_id, token = session.execute(
            select(Household.id, Member.person_token).join(Member)
            .where(Household.household_code == household_code)).first()
    vehicles_feed = evidence.loc[evidence["source_kind"] == "vehicles", "feed_id"].iloc[0]
    car = evidence.iloc[[0]].copy()
    car[["household_id", "person_token", "source_kind", "feed_id", "record_ref", "item",
         "amount", "match_grade"]] = [household_id, token, "vehicles", vehicles_feed,
                                      "VE-NEW-0001", "car", 0.0, "certain"]
    car["period_start"] = car["period_end"] = pd.Timestamp(AS_OF - dt.timedelta(days=20))
    pd.concat([evidence, car], ignore_index=True).to_parquet(path, index=False)
    dirs = [pipeline.review_shard(settings, run_id, shard) for shard in plan.shards]
    pipeline.finish_review(settings, run_id, dirs)
    return run_id


@pytest.fixture
def reviewed(settings, district_dir):
    pull_everything(settings, district_dir)
    load_roster(settings, district_dir / "roster.csv")
    return settings, review_in_process(settings, AS_OF, run_key="month-1")


def test_resolution_carries_on_same_evidence_and_new_evidence_reopens(reviewed):
    settings, first = reviewed
    admin = principal("admin")
    removals = [f for f in list_flags(settings, admin, run_id=first) if f["kind"] == "REMOVE"]
    same, changed = removals[0], removals[1]
    resolve_flag(settings, admin, same["id"], "overridden", "入户核实：车辆已过户")
    resolve_flag(settings, admin, changed["id"], "confirmed")

    second = _review_with_new_car(settings, "month-2", changed["household_code"])
    now = {f["household_code"]: f for f in list_flags(settings, admin, run_id=second)}
    assert len(now) == len(list_flags(settings, admin, run_id=first))  # one row per household
    carried = now[same["household_code"]]
    assert (carried["status"], carried["resolution"], carried["resolved_by"]) == (
        "resolved", "overridden", "admin")
    assert carried["carried_from_id"] == same["id"]
    assert f"run {first}" in carried["resolution_note"] and "车辆已过户" in carried[
        "resolution_note"]
    reopened = now[changed["household_code"]]
    assert (reopened["kind"], reopened["status"], reopened["resolution"]) == (
        "REMOVE", "open", "")
    assert {"VEHICLE_OWNED", "NEW_VEHICLE"} <= {r["code"] for r in reopened["reasons"]}
    assert reopened["evidence_digest"] != changed["evidence_digest"]
    others = [f for code, f in now.items()
              if code not in (same["household_code"], changed["household_code"])]
    assert {f["status"] for f in others} == {"open"}

    # a third run on the same evidence as the second: the one carried before is carried again,
    # pointing at the flag the officer acted on
    third = _review_with_new_car(settings, "month-3", changed["household_code"])
    again = {f["household_code"]: f for f in list_flags(settings, admin, run_id=third)}
    assert again[same["household_code"]]["carried_from_id"] == same["id"]
    assert again[changed["household_code"]]["status"] == "open"
    with session_scope(settings.database_url) as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert actions.count("flag.carried_forward") == 2


def test_rerunning_a_run_keeps_the_resolutions_made_on_it(reviewed):
    settings, first = reviewed
    admin = principal("admin")
    flag = next(f for f in list_flags(settings, admin, run_id=first) if f["kind"] == "REMOVE")
    resolve_flag(settings, admin, flag["id"], "home_visit", "转入户核查")
    assert review_in_process(settings, AS_OF, run_key="month-1") == first
    rerun = {f["household_code"]: f for f in list_flags(settings, admin, run_id=first)}
    kept = rerun[flag["household_code"]]
    assert (kept["status"], kept["resolution"], kept["resolution_note"]) == (
        "resolved", "home_visit", "转入户核查")
    assert kept["carried_from_id"] is None
    assert sum(f["status"] == "resolved" for f in rerun.values()) == 1


def test_a_flag_raised_again_keeps_the_due_date_it_was_first_given(settings, district_dir,
                                                                   monkeypatch):
    """Month 1 raises flags on 1 Dec; month 2 (20 days later) raises most of them again while
    nobody has resolved them: they keep month 1's due dates, so they can become overdue. One
    resolved in between and raised again on new evidence starts afresh."""
    pull_everything(settings, district_dir)
    load_roster(settings, district_dir / "roster.csv")
    raised = dt.date(2026, 12, 1)
    monkeypatch.setattr(pipeline, "local_today", lambda: raised)
    first = review_in_process(settings, AS_OF, run_key="month-1")
    admin = principal("admin")
    before = {f["household_code"]: f for f in list_flags(settings, admin, run_id=first)
              if f["kind"] != "KEEP" and f["due_date"]}
    changed = next(f for f in before.values() if f["kind"] == "REMOVE")
    resolve_flag(settings, admin, changed["id"], "confirmed")

    monkeypatch.setattr(pipeline, "local_today", lambda: raised + dt.timedelta(days=20))
    second = _review_with_new_car(settings, "month-2", changed["household_code"])
    after = {f["household_code"]: f for f in list_flags(settings, admin, run_id=second)}
    kept = [code for code, f in before.items() if code != changed["household_code"]
            and after[code]["kind"] == f["kind"]]
    assert len(kept) >= 3
    for code in kept:
        assert after[code]["due_date"] == before[code]["due_date"], code
    with session_scope(settings.database_url) as session:  # the code the inbox sorts by
        codes = session.execute(select(Household.household_code, Flag.household_code)
                                .join(Flag, Flag.household_id == Household.id)
                                .where(Flag.run_id == second)).all()
    assert codes and all(mine == on_flag for mine, on_flag in codes)
    # a fresh date for the flag resolved in between: 20 days later than month 1 gave it
    fresh = after[changed["household_code"]]
    assert fresh["status"] == "open"
    assert (dt.date.fromisoformat(fresh["due_date"])
            - dt.date.fromisoformat(changed["due_date"])).days == 20
