"""Flags from assessment, status and change signals, with the safety rules that protect families.

Each case is one household built by hand: its status and current benefit, the assessment's
decision and reason rows, and the partner records matched to it.
"""

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from verification.assessment.evidence import empty_evidence
from verification.assessment.policy import load_parameters
from verification.flags.decide import FlagFrames, FlagInvariantError, check_invariants, decide_flags

AS_OF = dt.date(2026, 11, 1)
POLICY = load_parameters().at("210112", AS_OF)
STANDARD = 950.0  # 210112 urban standard on AS_OF (parameters/210112/dibao.yaml)


def with_margin(policy, margin: float):  # noqa: ANN001, ANN201
    """The policy as a region that turns the near-boundary check on (the national default is 0)."""
    resolved = policy.values["dynamic.near_boundary_margin"]
    values = {**policy.values,
              "dynamic.near_boundary_margin": dataclasses.replace(resolved, value=margin)}
    return dataclasses.replace(policy, values=values)


MARGIN_POLICY = with_margin(POLICY, 0.05)


def ev(item: str, ref: str, *, start: str = "2026-10-01", end: str | None = None,
       amount: float = 0.0, grade: str = "certain", token: int = 7,
       source: str | None = None, feed: int = 1) -> dict:
    source = source or {"wage": "wages", "si_contribution": "wages", "death": "deaths",
                        "car": "vehicles", "home": "real_estate", "marriage": "marriages",
                        "divorce": "marriages", "enterprise_pension": "pensions"}.get(item, item)
    return {"person_token": token, "source_kind": source, "feed_id": feed, "record_ref": ref,
            "item": item, "amount": amount, "period_start": pd.Timestamp(start),
            "period_end": pd.Timestamp(end or start), "household_id": 1, "match_grade": grade}


def monthly(item: str, months: list[str], amount: float, token: int = 7) -> list[dict]:
    return [ev(item, f"{item[:2].upper()}{m}", start=f"{m}-01", amount=amount, token=token,
               end=str((pd.Timestamp(f"{m}-01") + pd.offsets.MonthEnd(0)).date()))
            for m in months]


def case(status: str, decision: str, reasons: list[tuple], evidence: list[dict] | None = None,
         benefit: float = float("nan"), current: float = 0.0, missing: str = "",
         policy=POLICY, category: str = "dibao") -> FlagFrames:  # noqa: ANN001
    """``reasons``: (code, passed) or (code, passed, value, limit, refs)."""
    households = pd.DataFrame({"status": [status], "category": [category],
                               "street_code": ["210112001"],
                               "community_code": ["210112001001"], "current_benefit": [current]},
                              index=pd.Index([1], name="household_id"))
    results = pd.DataFrame({"decision": [decision], "benefit": [benefit],
                            "missing_sources": [missing]}, index=households.index)
    rows = []
    for spec in reasons:
        code, passed, value, limit, refs = (*spec, 1.0, 0.0, "wages:1:WA1")[:5] if len(
            spec) == 2 else spec
        rows.append({"household_id": 1, "code": code, "passed": passed, "value": value,
                     "limit": limit, "parameter": "p", "reference": "ref",
                     "evidence_refs": refs})
    evidence = evidence if evidence is not None else [ev("wage", "WA1", amount=3000.0)]
    frame = pd.DataFrame(evidence) if evidence else empty_evidence().assign(
        household_id=pd.Series(dtype="int64"), match_grade=pd.Series(dtype=object))
    return decide_flags(households, results, pd.DataFrame(rows), frame, AS_OF, policy)


def kind(frames: FlagFrames) -> str:
    return frames.flags["kind"].iloc[0]


def codes_of(frames: FlagFrames) -> set[str]:
    return set(frames.reasons["code"])


# ---- the outcome by status and decision --------------------------------------------------------
@pytest.mark.parametrize(("status", "decision", "reasons", "expected", "reason"), [
    ("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], "KEEP", "ELIGIBLE_DIBAO"),
    ("recipient", "not_eligible", [("INCOME_OVER_STANDARD", False, 3000.0, STANDARD,
                                    "wages:1:WA1")], "REMOVE", "INCOME_OVER_STANDARD"),
    ("applicant", "eligible", [("ELIGIBLE_DIBAO", True)], "ADD", "ELIGIBLE_DIBAO"),
    ("applicant", "not_eligible", [("INCOME_OVER_STANDARD", False, 3000.0, STANDARD,
                                    "wages:1:WA1")], "REJECT", "INCOME_OVER_STANDARD"),
    ("monitored", "eligible", [("ELIGIBLE_EDGE", True)], "ADD", "ELIGIBLE_EDGE"),
    ("monitored", "not_eligible", [("INCOME_OVER_STANDARD", False, 3000.0, STANDARD,
                                    "wages:1:WA1")], "KEEP", "INCOME_OVER_STANDARD"),
    ("recipient", "undetermined", [("SOURCE_UNAVAILABLE", False, 1.0, 0.0, "deposits::missing")],
     "REVIEW", "SOURCE_UNAVAILABLE"),
])
def test_flag_kind_and_reason(status, decision, reasons, expected, reason):
    benefit = 500.0 if decision == "eligible" else float("nan")
    frames = case(status, decision, reasons, benefit=benefit,
                  current=500.0 if status == "recipient" else 0.0)
    assert kind(frames) == expected
    assert reason in codes_of(frames)


def test_missing_data_never_removes_or_adds():
    for status in ("recipient", "applicant", "monitored"):
        frames = case(status, "undetermined", [("SOURCE_UNAVAILABLE", False, 1.0, 0.0,
                                                "deposits::missing")])
        assert kind(frames) == "REVIEW"


def test_uncertain_match_gives_review_with_the_candidate_evidence():
    """REVIEW for the uncertain wage, and beside it the test the certain records fail (the
    car): the officer visiting must see both (audit 10)."""
    frames = case("recipient", "not_eligible", [("VEHICLE_OWNED", False),
                                                ("MATCH_UNCERTAIN", True)],
                  evidence=[ev("wage", "WA1", amount=3000.0, grade="probable")])
    assert kind(frames) == "REVIEW"
    assert codes_of(frames) == {"MATCH_UNCERTAIN", "VEHICLE_OWNED"}
    assert frames.evidence["match_grade"].tolist() == ["probable"]


def test_category_specific_tests_do_not_explain_a_keep():
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True),
                                            ("TEKUN_LABOUR_CAPACITY", False)],
                  benefit=500.0, current=500.0)
    assert codes_of(frames) == {"ELIGIBLE_DIBAO"}


# ---- ADJUST ------------------------------------------------------------------------------------
def test_adjust_when_the_benefit_moves_more_than_the_threshold():
    threshold = POLICY.require("dynamic.adjust_threshold")
    eligible = [("ELIGIBLE_DIBAO", True), ("INCOME_OVER_STANDARD", True, 200.0, STANDARD,
                                           "wages:1:WA1")]
    same = case("recipient", "eligible", eligible, benefit=2000.0, current=2000.0 - threshold)
    assert kind(same) == "KEEP"
    moved = case("recipient", "eligible", eligible, benefit=2000.0,
                 current=2000.0 - threshold - 0.01)
    assert kind(moved) == "ADJUST"
    row = moved.reasons.set_index("code").loc["BENEFIT_CHANGED"]
    assert (row["value"], row["limit"]) == (2000.0, 2000.0 - threshold - 0.01)
    assert row["evidence_refs"] == "wages:1:WA1" and "第三十一、三十二条" in row["reference"]
    assert moved.flags["due_date"].tolist() == [AS_OF + dt.timedelta(days=30)]


def test_applicants_are_never_adjusted():
    frames = case("applicant", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=2000.0)
    assert kind(frames) == "ADD"


# ---- GRADUAL_EXIT ------------------------------------------------------------------------------
NEW_JOB = ["2026-07", "2026-08", "2026-09", "2026-10"]
OLD_JOB = [f"2025-{m:02d}" for m in range(11, 13)] + [f"2026-{m:02d}" for m in range(1, 11)]


def _over_income(months: list[str], extra: list[tuple] = (), category: str = "dibao") -> FlagFrames:
    records = monthly("wage", months, 6000.0) + monthly("si_contribution", months, 600.0)
    refs = ";".join(f"wages:1:{r['record_ref']}" for r in records if r["item"] == "wage")
    return case("recipient", "not_eligible",
                [("INCOME_OVER_STANDARD", False, 2000.0, STANDARD, refs),
                 ("INCOME_OVER_1_5X", False, 2000.0, 1.5 * STANDARD, refs), *extra],
                evidence=records, current=800.0, category=category)


def test_new_work_lifting_income_gives_gradual_exit_for_the_configured_months():
    frames = _over_income(NEW_JOB)
    assert kind(frames) == "GRADUAL_EXIT"
    assert {"INCOME_OVER_STANDARD", "NEW_EMPLOYMENT", "GRADUAL_EXIT_PERIOD"} <= codes_of(frames)
    period = frames.reasons.set_index("code").loc["GRADUAL_EXIT_PERIOD"]
    assert period["value"] == POLICY.require("dynamic.gradual_exit_months") == 6
    assert "第三十三条" in period["reference"]
    assert set(frames.evidence["item"]) == {"wage", "si_contribution"}


def test_new_work_lifting_a_tekun_or_edge_recipient_is_no_gradual_exit():
    """渐退 is for 低保 families (审核确认办法 第三十三条); 特困 support ends by its own rules."""
    for category in ("tekun", "edge"):
        assert kind(_over_income(NEW_JOB, category=category)) == "REMOVE"


def test_long_standing_work_over_the_standard_is_a_removal():
    frames = _over_income(OLD_JOB)
    assert kind(frames) == "REMOVE"
    assert "NEW_EMPLOYMENT" not in codes_of(frames)


def test_new_work_with_another_failing_rule_is_a_removal():
    frames = _over_income(NEW_JOB, [("VEHICLE_OWNED", False, 1.0, 0.0, "vehicles:1:VE1")])
    assert kind(frames) == "REMOVE"


# ---- REVIEW reasons ----------------------------------------------------------------------------
def test_a_certain_death_with_others_left_is_kept_and_due_by_the_recheck_date():
    # the assessment has removed the member; the benefit for the others is unchanged here
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=500.0,
                  current=500.0, evidence=[ev("death", "DE1", start="2026-06-10")])
    assert kind(frames) == "KEEP"
    row = frames.reasons.set_index("code").loc["MEMBER_DECEASED"]
    assert row["parameter"] == "dynamic.recheck.after_death_months" and row["limit"] == 3
    assert "一（三）" in row["reference"]
    # died 2026-06-10: the re-check date (2026-09-10) had passed before the flag was raised
    # (as of 2026-11-01): the overdue re-check is due within REVIEW's 15 days from the day raised
    assert frames.flags["due_date"].tolist() == [AS_OF + dt.timedelta(days=15)]
    soon = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=500.0,
                current=500.0, evidence=[ev("death", "DE1", start="2026-08-05")])
    # died 2026-08-05: the KEEP is the re-check, due 2026-11-05 (2022通知 一（三）)
    assert soon.flags["due_date"].tolist() == [dt.date(2026, 11, 5)]


def test_due_dates_count_from_the_day_the_flag_is_raised_not_the_as_of_date():
    households = pd.DataFrame({"status": ["recipient"], "street_code": ["210112001"],
                               "community_code": ["210112001001"], "current_benefit": [500.0]},
                              index=pd.Index([1], name="household_id"))
    results = pd.DataFrame({"decision": ["not_eligible"], "benefit": [0.0],
                            "missing_sources": [""]}, index=households.index)
    reasons = pd.DataFrame([{"household_id": 1, "code": "VEHICLE_OWNED", "passed": False,
                             "value": 1.0, "limit": 0.0, "parameter": "p", "reference": "ref",
                             "evidence_refs": "wages:1:WA1"}])
    evidence = pd.DataFrame([ev("wage", "WA1", amount=3000.0)])
    raised = dt.date(2026, 12, 20)  # a review of 2026-11-01 run seven weeks later
    frames = decide_flags(households, results, reasons, evidence, AS_OF, POLICY,
                          raised_on=raised)
    days = frames.flags["due_date"].iloc[0] - raised
    assert frames.flags["due_date"].iloc[0] > raised and days.days == 30


def test_income_after_a_recorded_death_is_a_conflict_between_sources():
    records = [ev("death", "DE1", start="2026-05-03")] + monthly("wage", NEW_JOB, 2000.0)
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=500.0,
                  current=500.0, evidence=records)
    assert kind(frames) == "REVIEW"
    conflict = frames.reasons.set_index("code").loc["SOURCES_CONFLICT"]
    assert conflict["value"] == 4
    assert "deaths:1:DE1" in conflict["evidence_refs"] and "wages:1:WA2026-10" in conflict[
        "evidence_refs"]


def test_income_before_the_death_is_no_conflict():
    records = [ev("death", "DE1", start="2026-10-20")] + monthly("wage", NEW_JOB, 2000.0)
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=500.0,
                  current=500.0, evidence=records)
    assert "SOURCES_CONFLICT" not in codes_of(frames)


@pytest.mark.parametrize(("code", "value", "limit", "decision"), [
    ("INCOME_OVER_STANDARD", STANDARD * 1.04, STANDARD, "not_eligible"),
    ("INCOME_OVER_STANDARD", STANDARD * 0.96, STANDARD, "eligible"),
    ("FINANCIAL_ASSETS_OVER_LIMIT", 22_000.0, 22_800.0, "eligible"),
])
def test_a_deciding_figure_near_its_limit_gives_review(code, value, limit, decision):
    passed = value < limit if code == "INCOME_OVER_STANDARD" else value <= limit
    reasons = [(code, passed, value, limit, "wages:1:WA1")]
    if decision == "eligible":
        reasons.append(("ELIGIBLE_DIBAO", True))
    frames = case("applicant", decision, reasons, benefit=100.0, policy=MARGIN_POLICY)
    assert kind(frames) == "REVIEW"
    near = frames.reasons.set_index("code").loc["NEAR_BOUNDARY"]
    assert (near["value"], near["limit"]) == (value, limit)
    assert near["parameter"] == "dynamic.near_boundary_margin"
    beside = frames.reasons.set_index("code").loc[code]  # the deciding rule, value and limit
    assert (beside["value"], beside["limit"]) == (value, limit)


def test_the_near_boundary_check_is_off_by_default():
    assert POLICY.value("dynamic.near_boundary_margin") == 0
    frames = case("applicant", "eligible", [
        ("INCOME_OVER_STANDARD", True, STANDARD * 0.999, STANDARD, "wages:1:WA1"),
        ("ELIGIBLE_DIBAO", True)], benefit=10.0)
    assert kind(frames) == "ADD"
    assert "NEAR_BOUNDARY" not in codes_of(frames)


def test_near_the_income_line_does_not_matter_when_another_rule_decides():
    frames = case("applicant", "not_eligible", [
        ("INCOME_OVER_STANDARD", False, STANDARD * 1.01, STANDARD, "wages:1:WA1"),
        ("VEHICLE_OWNED", False, 1.0, 0.0, "vehicles:1:VE1")], policy=MARGIN_POLICY)
    assert kind(frames) == "REJECT"


def test_outside_the_margin_is_decided():
    frames = case("applicant", "not_eligible", [
        ("INCOME_OVER_STANDARD", False, STANDARD * 1.06, STANDARD, "wages:1:WA1")],
        policy=MARGIN_POLICY)
    assert kind(frames) == "REJECT"


# ---- change signals ----------------------------------------------------------------------------
@pytest.mark.parametrize(("records", "signal"), [
    ([ev("car", "VE1", start="2026-03-15")], "NEW_VEHICLE"),
    ([ev("home", "RE1", start="2026-02-01")], "NEW_PROPERTY"),
    ([ev("commercial_property", "RE2", start="2026-02-01", source="real_estate")],
     "NEW_PROPERTY"),
    ([ev("marriage", "MA1", start="2026-08-08")], "MARRIAGE_CHANGED"),
    ([ev("divorce", "MA2", start="2026-08-08")], "MARRIAGE_CHANGED"),
    (monthly("si_contribution", NEW_JOB, 300.0), "NEW_EMPLOYMENT"),
])
def test_each_change_signal_is_raised_with_its_evidence(records, signal):
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=500.0,
                  current=500.0, evidence=records)
    row = frames.reasons.set_index("code").loc[signal]
    cited = set(row["evidence_refs"].split(";"))
    assert cited == {f"{r['source_kind']}:1:{r['record_ref']}" for r in records}
    assert set(frames.evidence["record_ref"]) == {r["record_ref"] for r in records}
    assert row["reference"]


@pytest.mark.parametrize("records", [
    [ev("car", "VE1", start="2024-03-15")],  # registered before the change window
    [ev("e_bike", "VE2", start="2026-03-15", source="vehicles")],  # exempt in 210100
    [ev("home", "RE1", start="2026-02-01", grade="probable")],  # not certain
    monthly("si_contribution", OLD_JOB, 300.0),  # working all year: nothing new
])
def test_no_signal_without_new_certain_counted_records(records):
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True), ("MATCH_UNCERTAIN", True)]
                  if records[0]["match_grade"] != "certain" else [("ELIGIBLE_DIBAO", True)],
                  benefit=500.0, current=500.0, evidence=records)
    assert not codes_of(frames) & {"NEW_VEHICLE", "NEW_PROPERTY", "NEW_EMPLOYMENT"}


@pytest.mark.parametrize("code", ["BUSINESS_REGISTERED", "PUBLIC_PAYROLL",
                                  "FINANCIAL_ASSETS_OVER_LIMIT", "INCOME_OVER_STANDARD",
                                  "INCOME_OVER_1_5X"])
def test_failing_rules_of_the_assessment_are_reasons_with_evidence(code):
    frames = case("recipient", "not_eligible", [(code, False, 9e5, 1.0, "wages:1:WA1")])
    assert kind(frames) == "REMOVE"
    assert frames.reasons.set_index("code").loc[code, "evidence_refs"] == "wages:1:WA1"
    assert frames.evidence["record_ref"].tolist() == ["WA1"]


# ---- due dates and digests ---------------------------------------------------------------------
def test_due_dates_come_from_the_flag_kind():
    assert case("recipient", "not_eligible", [("VEHICLE_OWNED", False)]).flags[
        "due_date"].tolist() == [dt.date(2026, 12, 1)]
    assert case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=1.0,
                current=1.0).flags["due_date"].isna().all()


def test_same_records_give_the_same_digest_and_new_records_a_new_one():
    one = case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    again = case("recipient", "not_eligible", [("VEHICLE_OWNED", False, 1.0, 0.0,
                                                "wages:9:WA1")],  # same record, newer feed
                 evidence=[ev("wage", "WA1", amount=3000.0, feed=9)])
    other = case("recipient", "not_eligible", [("BUSINESS_REGISTERED", False)])
    assert one.flags["evidence_digest"].tolist() == again.flags["evidence_digest"].tolist()
    assert one.flags["evidence_digest"].tolist() != other.flags["evidence_digest"].tolist()


# ---- invariants --------------------------------------------------------------------------------
def _results(decision: str, missing: str = "") -> pd.DataFrame:
    return pd.DataFrame({"decision": [decision], "missing_sources": [missing]},
                        index=pd.Index([1]))


def test_invariants_refuse_a_removal_without_certain_evidence():
    frames = case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    weakened = FlagFrames(frames.flags, frames.reasons,
                          frames.evidence.assign(match_grade="possible"))
    with pytest.raises(FlagInvariantError, match="certain"):
        check_invariants(weakened, _results("not_eligible"), weakened.evidence)


def test_invariants_refuse_a_removal_on_a_stale_source():
    frames = case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    with pytest.raises(FlagInvariantError, match="fresh source"):
        check_invariants(frames, _results("not_eligible", "wages"), frames.evidence)


def test_invariants_refuse_a_gradual_exit_without_certain_evidence():
    frames = _over_income(NEW_JOB)
    with pytest.raises(FlagInvariantError, match="GRADUAL_EXIT"):
        check_invariants(FlagFrames(frames.flags, frames.reasons, frames.evidence.iloc[0:0]),
                         _results("not_eligible"), frames.evidence)


@pytest.mark.parametrize("acting", ["ADD", "REMOVE", "REJECT", "ADJUST", "GRADUAL_EXIT"])
def test_invariants_refuse_acting_on_missing_data(acting):
    frames = case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    forced = FlagFrames(frames.flags.assign(kind=acting), frames.reasons, frames.evidence)
    with pytest.raises(FlagInvariantError, match="missing or stale"):
        check_invariants(forced, _results("undetermined"), frames.evidence)


def test_invariants_refuse_a_flag_without_reason():
    frames = case("recipient", "eligible", [("ELIGIBLE_DIBAO", True)], benefit=1.0, current=1.0)
    with pytest.raises(FlagInvariantError, match="no reason"):
        check_invariants(FlagFrames(frames.flags, frames.reasons.iloc[0:0], frames.evidence),
                         _results("eligible"), frames.evidence)


def test_invariants_refuse_a_reason_against_a_household_without_evidence():
    frames = case("recipient", "not_eligible", [("VEHICLE_OWNED", False)])
    bare = frames.reasons.assign(evidence_refs="")
    with pytest.raises(FlagInvariantError, match="cite no evidence"):
        check_invariants(FlagFrames(frames.flags, bare, frames.evidence),
                         _results("not_eligible"), frames.evidence)


def test_a_shard_without_households_gives_no_flags():
    households = pd.DataFrame(columns=["status", "street_code", "community_code",
                                       "current_benefit"]).rename_axis("household_id")
    results = pd.DataFrame(columns=["decision", "benefit", "missing_sources"])
    evidence = empty_evidence().assign(household_id=pd.Series(dtype="int64"),
                                       match_grade=pd.Series(dtype=object))
    reasons = pd.DataFrame(columns=["household_id", "code", "passed", "value", "limit",
                                    "parameter", "reference", "evidence_refs"])
    frames = decide_flags(households, results, reasons, evidence, AS_OF, POLICY)
    assert (len(frames.flags), len(frames.reasons), len(frames.evidence)) == (0, 0, 0)


def test_an_unknown_match_grade_is_refused_not_treated_as_weak():
    with pytest.raises(ValueError, match="unknown match grade 'sure'"):
        case("recipient", "not_eligible", [("VEHICLE_OWNED", False)],
             evidence=[ev("wage", "WA1", amount=3000.0, grade="sure")])


# ---- a stop without partner records ------------------------------------------------------------
def test_a_stop_no_partner_record_supports_is_a_review_not_an_error():
    """A 特困 recipient failing a test the caseload alone decides (an able member moved in: no
    record cited) is not removed, and the shard is not stopped: REVIEW, with the failed test
    beside STOP_WITHOUT_RECORDS for the officer."""
    frames = case("recipient", "not_eligible", [("TEKUN_SUPPORTER", False, 1.0, 0.0, ""),
                                                 ("NOT_ELIGIBLE", False, 0.0, 0.0, "")],
                  evidence=[], category="tekun")
    assert kind(frames) == "REVIEW"
    assert {"STOP_WITHOUT_RECORDS", "TEKUN_SUPPORTER"} <= codes_of(frames)
    stop = frames.reasons.set_index("code").loc["STOP_WITHOUT_RECORDS"]
    assert "第二十五" in stop["reference"]


def test_a_stop_with_a_certain_record_stays_a_removal():
    refs = "wages:1:W1"
    frames = case("recipient", "not_eligible",
                  [("INCOME_OVER_STANDARD", False, 2000.0, STANDARD, refs)],
                  evidence=[ev("wage", "W1", amount=6000.0)], current=800.0)
    assert kind(frames) == "REMOVE"
    assert "STOP_WITHOUT_RECORDS" not in codes_of(frames)
