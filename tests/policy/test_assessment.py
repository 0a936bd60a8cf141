"""``assess()`` as the pipeline calls it: the seam columns, several regions in one call, input
shapes, and that the result does not depend on row order."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from verification import codes
from verification.assessment.assess import CITED_REASON_COLUMNS, RESULT_COLUMNS, assess
from verification.assessment.policy import load_parameters
from verification.assessment.policy.cases import case_frames

ON = date(2025, 7, 1)


def _household(household_id: int, region: str, wage: float, extra: list | None = None) -> tuple:
    frames = case_frames({
        "date": ON, "region": region, "urban_rural": "urban",
        "members": [{"name": "户主", "age": 45}, {"name": "子女", "age": 9}],
        "evidence": [{"member": "户主", "item": "wage", "amount": wage}] + (extra or []),
    })
    households, members, evidence, sources = frames
    households.index = pd.Index([household_id], name="household_id", dtype=np.int64)
    members["household_id"] = household_id
    members["person_token"] += household_id * 10_000
    evidence["household_id"] = household_id
    evidence["person_token"] += household_id * 10_000
    evidence["record_ref"] = evidence["record_ref"] + f"-{household_id}"
    return households, members, evidence, sources


def _batch(*households: tuple) -> tuple:
    return (
        pd.concat([h[0] for h in households]),
        pd.concat([h[1] for h in households], ignore_index=True),
        pd.concat([h[2] for h in households], ignore_index=True),
        households[0][3],
    )


@pytest.fixture(scope="module")
def tree():
    return load_parameters()


def test_results_and_reasons_have_exactly_the_seam_columns(tree) -> None:
    outcome = assess(*_household(7, "210112", 600), tree, ON)
    assert list(outcome.results.columns) == RESULT_COLUMNS
    assert outcome.results.index.name == "household_id"
    assert list(outcome.reasons.columns) == CITED_REASON_COLUMNS
    assert set(outcome.reasons["code"].astype(str)) <= set(codes.reasons())
    assert outcome.results["household_size"].dtype.kind == "i"
    assert outcome.results["eligible"].dtype == bool


def test_each_household_is_assessed_under_its_own_region(tree) -> None:
    frames = _batch(_household(1, "210112", 1740), _household(2, "210113", 1740))
    outcome = assess(*frames, tree, ON)
    results = outcome.results
    assert results.loc[1, "standard"] == 900 and results.loc[2, "standard"] == 880
    assert (results.loc[1, "benefit"], results.loc[2, "benefit"]) == (60, 20)
    assert set(outcome.policy_versions) == {"210112", "210113"}
    assert results.attrs["policy_versions"] == outcome.policy_versions


def test_results_keep_the_input_order_and_ignore_row_order(tree) -> None:
    frames = _batch(
        _household(30, "210112", 600),
        _household(10, "210112", 2000, [{"member": "户主", "item": "car"}]),
        _household(20, "210112", 1000, [{"member": "户主", "item": "deposit", "amount": 5000}]),
    )
    outcome = assess(*frames, tree, ON)
    assert list(outcome.results.index) == [30, 10, 20]
    households, members, evidence, sources = frames
    shuffled = assess(households, members.sample(frac=1, random_state=1),
                      evidence.sample(frac=1, random_state=2), sources, tree, ON)
    pd.testing.assert_frame_equal(outcome.results, shuffled.results)
    key = ["household_id", "code"]
    pd.testing.assert_frame_equal(
        outcome.reasons.sort_values(key).reset_index(drop=True).astype({"code": str}),
        shuffled.reasons.sort_values(key).reset_index(drop=True).astype({"code": str}),
        check_categorical=False,
    )


def test_household_id_as_a_column_and_categorical_items_are_accepted(tree) -> None:
    households, members, evidence, sources = _household(5, "210112", 600)
    evidence["item"] = evidence["item"].astype("category")
    outcome = assess(households.reset_index(), members, evidence, sources, tree, ON)
    assert outcome.results.loc[5, "benefit"] == 1200


def test_a_resolved_policy_applies_to_every_household(tree) -> None:
    frames = _batch(_household(1, "210112", 600), _household(2, "210113", 600))
    outcome = assess(*frames, tree.at("210112", ON), ON)
    assert outcome.results["standard"].tolist() == [900, 900]


def test_no_evidence_at_all(tree) -> None:
    households, members, evidence, sources = _household(9, "210112", 0)
    outcome = assess(households, members, evidence.iloc[0:0], sources, tree, ON)
    assert outcome.results.loc[9, "benefit"] == 1800


def test_every_reason_row_names_its_parameter_and_reference(tree) -> None:
    frames = _batch(
        _household(1, "210112", 600, [{"member": "户主", "item": "medical_oop", "amount": 100}]),
        _household(2, "210112", 2000, [{"member": "户主", "item": "car", "ref": "辽A1"}]),
    )
    reasons = assess(*frames, tree, ON).reasons
    assert reasons["parameter"].astype(str).ne("").all()
    assert reasons["reference"].astype(str).ne("").all()
    car = reasons[(reasons["household_id"] == 2) & (reasons["code"] == "VEHICLE_OWNED")].iloc[0]
    assert (car["passed"], car["value"], car["limit"]) == (False, 1, 0)
    assert car["evidence_refs"] == "vehicles:104:辽A1-2"


def test_no_sources_at_all_leaves_every_household_undetermined(tree) -> None:
    households, members, evidence, sources = _household(4, "210112", 600)
    outcome = assess(households, members, evidence, sources.iloc[0:0], tree, ON)
    result = outcome.results.loc[4]
    assert result["decision"] == "undetermined" and np.isnan(result["benefit"])
    assert result["missing_sources"] == (
        "business,deposits,disability,education,medical,pensions,public_payroll,real_estate,"
        "tax,vehicles,wages")
    row = outcome.reasons[outcome.reasons["code"] == "SOURCE_UNAVAILABLE"].iloc[0]
    assert "wages::missing" in row["evidence_refs"] and not row["passed"]


def test_the_callers_frames_are_not_changed(tree) -> None:
    households, members, evidence, sources = _household(3, "210112", 600)
    households.index = households.index.astype(np.int32)
    copies = [frame.copy() for frame in (households, members, evidence, sources)]
    assess(households, members, evidence, sources, tree, ON)
    for before, after in zip(copies, (households, members, evidence, sources), strict=True):
        pd.testing.assert_frame_equal(before, after)


def _alone(tree, members: list, evidence: list, sources: dict, category: str = "none",
           status: str = "applicant") -> tuple[pd.Series, set]:
    households, people, found, feeds = case_frames({
        "date": ON, "region": "210112", "members": members, "evidence": evidence,
        "sources": sources})
    households["category"], households["status"] = category, status
    outcome = assess(households, people, found, feeds, tree, ON)
    failed = set(outcome.reasons.loc[~outcome.reasons["passed"].astype(bool), "code"])
    return outcome.results.iloc[0], failed


@pytest.mark.parametrize(("case", "decision"), [
    # the education feed decides only the rigid-spending test: a 低保 or 特困 household is
    # decided without it (a province's education bureau late must not stop every family)
    ({"category": "dibao", "sources": {"education": "missing"}}, "eligible"),
    ({"category": "tekun", "members": [{"name": "户主", "age": 80}], "evidence": [],
      "sources": {"education": "stale"}}, "eligible"),
    ({"category": "rigid", "sources": {"education": "missing"}}, "undetermined"),
    # a deduction could only lower the income: it matters to a household that does not pass,
    # and to a 低保 benefit, which follows the income; not to 特困's fixed support
    ({"category": "tekun", "members": [{"name": "户主", "age": 80}], "evidence": [],
      "sources": {"medical": "missing"}}, "eligible"),
    ({"category": "dibao", "sources": {"medical": "missing"}}, "undetermined"),
    ({"category": "dibao", "wage": 5000, "sources": {"medical": "missing"}}, "undetermined"),
    # an asset source can only count against: an applicant failing on a certain car is
    # declined without the banks' feed; one who passes, or a recipient, waits for it
    ({"category": "dibao", "car": True, "sources": {"deposits": "missing"}}, "not_eligible"),
    ({"category": "dibao", "sources": {"deposits": "missing"}}, "undetermined"),
    ({"category": "dibao", "car": True, "status": "recipient",
      "sources": {"deposits": "missing"}}, "undetermined"),
    # nor is a recipient's support stopped on a car while a deduction is missing
    ({"category": "dibao", "car": True, "status": "recipient",
      "sources": {"medical": "missing"}}, "undetermined"),
    ({"category": "dibao", "car": True, "sources": {"medical": "missing"}}, "not_eligible"),
    # the income sources count for and against (income, tax paid): always awaited
    ({"category": "dibao", "wage": 5000, "sources": {"wages": "stale"}}, "undetermined"),
])
def test_a_missing_source_leaves_undetermined_only_households_it_could_change(
        tree, case: dict, decision: str) -> None:
    members = case.get("members", [{"name": "户主", "age": 45}, {"name": "子女", "age": 9}])
    evidence = case.get("evidence", [{"member": "户主", "item": "wage",
                                      "amount": case.get("wage", 600)}])
    if case.get("car"):
        evidence = [*evidence, {"member": "户主", "item": "car"}]
    result, failed = _alone(tree, members, evidence, case["sources"], case["category"],
                            case.get("status", "applicant"))
    assert result["decision"] == decision
    assert ("SOURCE_UNAVAILABLE" in failed) == (decision == "undetermined")
    if case.get("car") and decision == "not_eligible":
        assert "VEHICLE_OWNED" in failed  # the record it is declined on is on the flag


def test_the_rigid_share_is_of_the_same_twelve_months_income(tree) -> None:
    """刚性支出办法 第四条（四）: spending of the twelve months before, as a share of the income
    of those twelve months — not of the six-month average times twelve."""
    on = date(2026, 11, 1)

    def share(evidence: list) -> float:
        households, people, found, feeds = case_frames({
            "date": on, "region": "210112", "members": [{"name": "户主", "age": 45}],
            "evidence": evidence})
        households["category"] = "rigid"
        reasons = assess(households, people, found, feeds, tree, on).reasons
        return float(reasons.loc[reasons["code"] == "RIGID_SPENDING_SHARE_LOW", "value"].iloc[0])

    tuition = {"member": "户主", "item": "education", "amount": 20_000, "months": 1}
    earlier = {"member": "户主", "item": "wage", "amount": 6_000, "from": date(2025, 11, 1),
               "to": date(2026, 4, 30)}
    recent = {"member": "户主", "item": "wage", "amount": 1_000, "from": date(2026, 5, 1)}
    # monthly amounts over months: 6 × 6,000 + 6 × 1,000 = 42,000 of income in the twelve months
    assert share([tuition, earlier, recent]) == pytest.approx(20_000 / 42_000, abs=1e-4)
    # a family with income in the last six months only has six months of income (the partners
    # report twelve: rigid.income_months_reported); it is not scaled to a year because its
    # earlier months are empty (cases rules/partner_months.yaml: where a bureau states six)
    assert share([tuition, recent]) == pytest.approx(20_000 / 6_000, abs=1e-4)


@pytest.mark.parametrize(("category", "members", "due"), [
    ("dibao", [{"name": "户主", "age": 70}], "2027-11-01"),      # stable: nobody able to work
    ("dibao", [{"name": "户主", "age": 40}], "2027-05-01"),      # a member able to work
    ("tekun", [{"name": "户主", "age": 80}], "2027-11-01"),
    ("edge", [{"name": "户主", "age": 70}], "2027-11-01"),
])
def test_the_next_periodic_recheck_follows_the_category(tree, category, members, due) -> None:
    """审核确认办法 第三十一条; 2020意见 第7项 (dynamic.recheck.*), from the as-of date."""
    on = date(2026, 11, 1)
    households, people, found, feeds = case_frames({
        "date": on, "region": "210112", "members": members, "evidence": []})
    households["category"] = category
    result = assess(households, people, found, feeds, tree, on).results.iloc[0]
    assert result["category"] == category and result["recheck_due"] == due
