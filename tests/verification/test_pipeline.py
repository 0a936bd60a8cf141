"""The flow in-process on both databases: flags equal the generator's truth, reruns duplicate
nothing, and a missing partner feed leads to review — never to a removal or an addition."""

import datetime as dt

import pandas as pd
from sqlalchemy import func, select

from tests.conftest import flags_by_household, pull_everything, review_in_process
from verification.intake.roster import load_roster
from verification.storage import session_scope
from verification.storage.evidence_files import run_evidence, verify
from verification.storage.models import (
    Assessment,
    Feed,
    Flag,
    FlagReason,
    Household,
    Run,
)

AS_OF = dt.date(2026, 11, 1)


def _truth(district_dir) -> pd.DataFrame:
    return pd.read_csv(district_dir / "truth.csv", dtype=str)


def test_flags_equal_ground_truth_and_rerun_changes_nothing(settings, district_dir):
    results = pull_everything(settings, district_dir)
    assert {r.status for r in results} == {"accepted"}
    load_roster(settings, district_dir / "roster.csv")
    run_id = review_in_process(settings, AS_OF)
    got = flags_by_household(settings, run_id)
    both = _truth(district_dir).merge(got, on="household_code", how="left")
    wrong = both[both["expected_flag"] != both["kind"]]
    assert wrong.empty, wrong
    for expected, codes in zip(both["expected_reasons"], both["code"], strict=True):
        assert set(expected.split(";")) <= codes

    def counts():
        with session_scope(settings.database_url) as session:
            rows = [session.scalar(select(func.count(m.id)))
                    for m in (Run, Flag, FlagReason, Assessment)]
            run = session.get(Run, run_id)
            # the file is rewritten with the new flags' ids (PostgreSQL does not reuse them):
            # the same evidence, and the file the run records
            assert not verify(settings.home / run.evidence_file, run.evidence_digest)
            evidence = run_evidence(session, settings.home, run_id).drop(columns="flag_id")
            return [*rows, run.evidence_rows, evidence.to_dict("records")]

    before = counts()
    assert pull_everything(settings, district_dir) == []  # nothing new to pull
    assert review_in_process(settings, AS_OF) == run_id
    assert counts() == before
    assert flags_by_household(settings, run_id).equals(got)


def test_missing_partner_feed_means_review_for_everyone_it_could_change(settings,
                                                                        district_dir):
    """Without the banks' feed no support starts, stops or changes: every recipient and every
    household that would pass waits (REVIEW); only an applicant or monitored household failing
    on a certain record (income, a car, a home — no deposit could undo it) is decided."""
    pull_everything(settings, district_dir)
    load_roster(settings, district_dir / "roster.csv")
    with session_scope(settings.database_url) as session:  # the banks never delivered
        session.execute(Feed.__table__.update().where(Feed.kind == "deposits")
                        .values(status="rejected", reason="test: never delivered"))
    run_id = review_in_process(settings, AS_OF, run_key="without-banks")
    got = flags_by_household(settings, run_id)
    with session_scope(settings.database_url) as session:
        status = dict(session.execute(select(Household.household_code, Household.status)).all())
    got["status"] = got["household_code"].map(status)
    assert set(got["kind"]) <= {"REVIEW", "REJECT", "KEEP"}  # nothing starts, stops, changes
    waiting = got[got["kind"].eq("REVIEW")]
    assert len(waiting) > len(got) / 2
    assert all("SOURCE_UNAVAILABLE" in codes or "MEMBER_DECEASED" in codes
               for codes in waiting["code"])
    assert got.loc[got["status"].eq("recipient"), "kind"].eq("REVIEW").all()
    decided = got[~got["kind"].eq("REVIEW")]
    assert len(decided) and decided["status"].ne("recipient").all()
    assert not any("SOURCE_UNAVAILABLE" in codes for codes in decided["code"])
    with session_scope(settings.database_url) as session:
        run = session.scalar(select(Run).where(Run.id == run_id))
        assert run.feed_versions["deposits"]["feed_id"] is None
        assert run.policy_version
