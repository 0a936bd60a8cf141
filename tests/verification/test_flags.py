"""Flags from assessment and status, with the safety rules that protect families."""

import datetime as dt

import pandas as pd
import pytest

from verification.evidence import empty_evidence
from verification.flags import FlagFrames, FlagInvariantError, check_invariants, decide_flags

AS_OF = dt.date(2026, 11, 1)


def _case(status: str, decision: str, reasons: list[tuple[str, bool]], evidence=None):
    households = pd.DataFrame({"status": [status], "street_code": ["210112001"],
                               "community_code": ["210112001001"]},
                              index=pd.Index([1], name="household_id"))
    results = pd.DataFrame({"decision": [decision]}, index=households.index)
    rows = pd.DataFrame([{"household_id": 1, "code": code, "passed": passed, "value": 1.0,
                          "limit": 0.0, "parameter": "p", "reference": "ref",
                          "evidence_refs": "wages:1:WA1"} for code, passed in reasons])
    ev = evidence if evidence is not None else _evidence("wage", "certain")
    return decide_flags(households, results, rows, ev, AS_OF)


def _evidence(item: str, grade: str) -> pd.DataFrame:
    ev = empty_evidence()
    ev.loc[0] = [7, "wages" if item == "wage" else "deaths", 1, "WA1" if item == "wage" else "DE1",
                 item, 3000.0, pd.Timestamp("2026-10-01"), pd.Timestamp("2026-10-31")]
    return ev.assign(household_id=1, match_grade=grade)


@pytest.mark.parametrize(("status", "decision", "codes", "expected", "reason"), [
    ("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], "KEEP", "ELIGIBLE_DIBAO"),
    ("recipient", "not_eligible", [("INCOME_OVER_STANDARD", False)], "REMOVE",
     "INCOME_OVER_STANDARD"),
    ("applicant", "eligible", [("ELIGIBLE_DIBAO", True)], "ADD", "ELIGIBLE_DIBAO"),
    ("applicant", "not_eligible", [("INCOME_OVER_STANDARD", False)], "REJECT",
     "INCOME_OVER_STANDARD"),
    ("monitored", "eligible", [("ELIGIBLE_EDGE", True)], "ADD", "ELIGIBLE_EDGE"),
    ("monitored", "not_eligible", [("INCOME_OVER_STANDARD", False)], "KEEP",
     "INCOME_OVER_STANDARD"),
    ("recipient", "undetermined", [("SOURCE_UNAVAILABLE", False)], "REVIEW",
     "SOURCE_UNAVAILABLE"),
])
def test_flag_kind_and_reason(status, decision, codes, expected, reason):
    frames = _case(status, decision, codes)
    assert frames.flags["kind"].tolist() == [expected]
    assert reason in set(frames.reasons["code"])


def test_missing_data_never_removes_or_adds():
    for status in ("recipient", "applicant", "monitored"):
        frames = _case(status, "undetermined", [("SOURCE_UNAVAILABLE", False)])
        assert frames.flags["kind"].tolist() == ["REVIEW"]


def test_uncertain_match_gives_review_with_the_candidate_evidence():
    frames = _case("recipient", "not_eligible", [("VEHICLE_OWNED", False),
                                                 ("MATCH_UNCERTAIN", True)],
                   evidence=_evidence("wage", "probable"))
    assert frames.flags["kind"].tolist() == ["REVIEW"]
    assert set(frames.reasons["code"]) == {"MATCH_UNCERTAIN"}
    assert frames.evidence["match_grade"].tolist() == ["probable"]


def test_death_of_a_member_gives_review_not_removal():
    ev = _evidence("death", "certain")
    frames = _case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], evidence=ev)
    assert frames.flags["kind"].tolist() == ["REVIEW"]
    assert "MEMBER_DECEASED" in set(frames.reasons["code"])


def test_category_specific_tests_do_not_explain_a_keep():
    frames = _case("recipient", "eligible", [("ELIGIBLE_DIBAO", True),
                                             ("TEKUN_LABOUR_CAPACITY", False)])
    assert set(frames.reasons["code"]) == {"ELIGIBLE_DIBAO"}


def test_due_dates_come_from_the_flag_kind():
    assert _case("recipient", "not_eligible", [("VEHICLE_OWNED", False)]).flags[
        "due_date"].tolist() == [dt.date(2026, 12, 1)]
    assert _case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)]).flags[
        "due_date"].isna().all()


def test_same_evidence_gives_the_same_digest_and_new_evidence_a_new_one():
    one = _case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    two = _case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    other = _case("recipient", "not_eligible", [("BUSINESS_REGISTERED", False)])
    assert one.flags["evidence_digest"].tolist() == two.flags["evidence_digest"].tolist()
    assert one.flags["evidence_digest"].tolist() != other.flags["evidence_digest"].tolist()


def test_invariants_refuse_a_removal_without_certain_evidence():
    frames = _case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    weakened = FlagFrames(frames.flags, frames.reasons,
                          frames.evidence.assign(match_grade="possible"))
    results = pd.DataFrame({"decision": ["not_eligible"]}, index=pd.Index([1]))
    with pytest.raises(FlagInvariantError, match="certain"):
        check_invariants(weakened, results, weakened.evidence)


def test_invariants_refuse_a_flag_without_reason():
    frames = _case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)])
    results = pd.DataFrame({"decision": ["eligible"]}, index=pd.Index([1]))
    with pytest.raises(FlagInvariantError, match="no reason"):
        check_invariants(FlagFrames(frames.flags, frames.reasons.iloc[0:0], frames.evidence),
                         results, frames.evidence)
