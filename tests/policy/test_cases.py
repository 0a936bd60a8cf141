"""Run the readable policy cases in tests/policy/cases/*.yaml through ``assess()``.

A case says: date, region, urban/rural, the members (age or birth date, disability, labour
capacity), the evidence items (member, item, monthly amount or value, period), which sources are
missing or stale, and what must come out: category, decision, benefit, result values and reason
codes (``reasons`` must be present, ``failed`` present with passed = false, ``absent`` not present).
A case may instead expect ``error``: text that the parameter error must contain.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from verification import codes
from verification.assessment import assess
from verification.policy import ParameterError, load_parameters

CASES_DIR = Path(__file__).with_name("cases")
CASE_KEYS = {"name", "date", "region", "urban_rural", "members", "evidence", "sources", "expected"}
EXPECTED_KEYS = {"category", "decision", "benefit", "results", "reasons", "failed", "absent",
                 "error"}


def _load_cases() -> list[Any]:
    params = []
    for file in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text(encoding="utf-8")):
            params.append(pytest.param(file.name, case, id=f"{file.stem}: {case['name']}"))
    return params


CASES = _load_cases()


@pytest.fixture(scope="module")
def tree():
    return load_parameters()


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize(("file", "case"), CASES)
def test_case(file: str, case: dict[str, Any], tree) -> None:
    assert set(case) <= CASE_KEYS, f"{file}: unknown keys {set(case) - CASE_KEYS}"
    expected = case["expected"]
    assert set(expected) <= EXPECTED_KEYS, f"{file}: unknown expected keys"
    frames = case_frames(case)
    if "error" in expected:
        with pytest.raises(ParameterError, match=expected["error"]):
            assess(*frames, tree, case["date"])
        return
    outcome = assess(*frames, tree, case["date"])
    _check_result(outcome.results.iloc[0], expected)
    _check_reasons(outcome.reasons, expected)


def _check_result(result: pd.Series, expected: dict[str, Any]) -> None:
    for key in ("category", "decision"):
        if key in expected:
            assert result[key] == expected[key], f"{key}: {result[key]} != {expected[key]}"
    if "benefit" in expected:
        if expected["benefit"] is None:
            assert np.isnan(result["benefit"])
        else:
            assert result["benefit"] == pytest.approx(expected["benefit"], abs=0.005)
    for column, value in (expected.get("results") or {}).items():
        if isinstance(value, str):
            assert result[column] == value, column
        else:
            assert result[column] == pytest.approx(value, abs=0.005), column


def _check_reasons(reasons: pd.DataFrame, expected: dict[str, Any]) -> None:
    known = codes.reasons()
    listed = expected.get("reasons", []) + expected.get("failed", []) + expected.get("absent", [])
    assert all(code in known for code in listed), "expected codes must exist in codes.yaml"
    present = set(reasons["code"].astype(str))
    failed = set(reasons.loc[~reasons["passed"], "code"].astype(str))
    for code in expected.get("reasons", []):
        assert code in present, f"missing reason {code}; got {sorted(present)}"
    for code in expected.get("failed", []):
        assert code in failed, f"{code} should count against eligibility; failed: {sorted(failed)}"
    for code in expected.get("absent", []):
        assert code not in present, f"unexpected reason {code}"
    assert reasons["reference"].astype(str).ne("").sum() > 0


# --------------------------------------------------------------------------- case → frames

FEED_IDS = {kind: number for number, kind in enumerate(codes.feed_kinds(), start=101)}


def case_frames(case: dict[str, Any]) -> tuple[pd.DataFrame, ...]:
    on: date = case["date"]
    households = pd.DataFrame({
        "household_code": ["CASE"], "area_code": [str(case["region"])],
        "street_code": [str(case["region"]) + "001"], "community_code": ["000000000000"],
        "status": ["applicant"], "category": ["none"],
        "urban_rural": [case.get("urban_rural", "urban")], "current_benefit": [0.0],
    }, index=pd.Index([1], name="household_id", dtype=np.int64))
    members = pd.DataFrame([_member(index, person, on)
                            for index, person in enumerate(case["members"])])
    tokens = {person["name"]: 1000 + index for index, person in enumerate(case["members"])}
    evidence = pd.DataFrame(
        [_evidence(index, item, tokens, on) for index, item in enumerate(case.get("evidence", []))],
        columns=["household_id", "person_token", "source_kind", "feed_id", "record_ref", "item",
                 "amount", "period_start", "period_end", "match_grade"],
    )
    evidence[["period_start", "period_end"]] = evidence[["period_start", "period_end"]].apply(
        pd.to_datetime)
    return households, members, evidence, _sources(case.get("sources") or {}, on)


def _member(index: int, person: dict[str, Any], on: date) -> dict[str, Any]:
    birth = person.get("birth_date") or _birth_for_age(person["age"], on)
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    disability = person.get("disability") or {}
    return {
        "household_id": 1, "person_token": 1000 + index, "birth_date": pd.Timestamp(birth),
        "gender": person.get("gender", "F"), "relation": person.get("relation", "其他"),
        "counted": person.get("counted", True), "exclusion": person.get("exclusion", ""),
        "disability_grade": disability.get("grade", 0),
        "disability_type": disability.get("type", ""),
        "labour_capacity": person.get("labour_capacity", 16 <= age < 60),
    }


def _birth_for_age(age: int, on: date) -> date:
    try:
        return on.replace(year=on.year - age)
    except ValueError:  # 29 February
        return on.replace(year=on.year - age, day=28)


def _evidence(index: int, item: dict[str, Any], tokens: dict[str, int], on: date) -> dict:
    kind = item.get("source") or _DEFAULT_SOURCE[codes.vocabulary()["items"][item["item"]]["class"]]
    # Income and spending default to the twelve months before the date; other items (balances,
    # registrations) to last month.
    flow = codes.vocabulary()["items"][item["item"]]["class"] in ("income", "spending")
    month_end = on.replace(day=1) - timedelta(days=1)
    start = item.get("from") or _months_before(on, item.get("months", 12 if flow else 1))
    return {
        "household_id": 1, "person_token": tokens[item["member"]], "source_kind": kind,
        "feed_id": FEED_IDS[kind], "record_ref": item.get("ref", f"R{index + 1}"),
        "item": item["item"], "amount": float(item.get("amount", 0)),
        "period_start": start, "period_end": item.get("to", month_end),
        "match_grade": item.get("match", "certain"),
    }


def _months_before(on: date, months: int) -> date:
    """First day of the month ``months`` months before the month of ``on``."""
    index = on.year * 12 + on.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


_DEFAULT_SOURCE = {
    "income": "wages", "spending": "wages", "asset": "deposits", "property": "real_estate",
    "vehicle": "vehicles", "business": "business", "payroll": "wages", "event": "deaths",
    "contribution": "wages",
}


def _sources(states: dict[str, str], on: date) -> pd.DataFrame:
    """Every feed kind fresh (period ended last month) unless the case says missing/stale/…."""
    fresh = pd.Timestamp(on.replace(day=1) - timedelta(days=1))
    rows = []
    for kind, feed_id in FEED_IDS.items():
        state = states.get(kind, "fresh")
        if state == "missing":
            continue
        period_end = fresh - pd.Timedelta(days=400) if state == "stale" else fresh
        status = "rejected" if state == "rejected" else "accepted"
        rows.append({"source_kind": kind, "feed_id": feed_id, "period_end": period_end,
                     "received_at": period_end + pd.Timedelta(days=3), "status": status})
    return pd.DataFrame(rows)
