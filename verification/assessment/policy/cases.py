"""Readable policy cases (OpenFisca-style YAML scenarios) turned into assessment input frames.

A case names a date, a region, urban/rural, its members (age or birth date, disability, labour
capacity, counted or not) and evidence items (member, item, monthly amount or value, period,
match grade), and which sources are missing, stale or rejected. ``case_frames`` builds the
households, members, evidence and sources frames of the seams in docs/architecture.md, so a case
runs through exactly the ``assess()`` the pipeline calls, and ``check_case`` says what differs
from what the case expects. The project's cases live in tests/policy/cases/; a bureau checks its
own parameters against its own cases with ``hedui policy test``.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from verification import codes

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
    # a balance or a registration is a record of one day, as a feed's is (evidence.py): a later
    # ``to`` would read as the day a later balance replaced it
    end = item.get("to", month_end if flow else start)
    return {
        "household_id": 1, "person_token": tokens[item["member"]], "source_kind": kind,
        "feed_id": FEED_IDS[kind], "record_ref": item.get("ref", f"R{index + 1}"),
        "item": item["item"], "amount": float(item.get("amount", 0)),
        "period_start": start, "period_end": end,
        "match_grade": item.get("match", "certain"),
    }


def _months_before(on: date, months: int) -> date:
    """First day of the month ``months`` months before the month of ``on``."""
    index = on.year * 12 + on.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


_DEFAULT_SOURCE = {
    "income": "wages", "spending": "wages", "asset": "deposits", "property": "real_estate",
    "vehicle": "vehicles", "business": "business", "payroll": "wages", "event": "deaths",
    "contribution": "wages", "disability": "disability",
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


# ---- checking a case ---------------------------------------------------------------------------
CASE_KEYS = {"name", "date", "region", "urban_rural", "members", "evidence", "sources", "expected"}
EXPECTED_KEYS = {"category", "decision", "benefit", "results", "reasons", "failed", "absent",
                 "error"}
_TOLERANCE = 0.005  # yuan: amounts are compared to the cent


def load_case_file(path: Path) -> list[dict[str, Any]]:
    """The cases of one YAML file (a list of cases), in file order."""
    cases = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    if not isinstance(cases, list):
        raise ValueError(f"{path}: a case file holds a list of cases")
    return cases


def check_case(case: dict[str, Any], tree: Any) -> list[str]:
    """Run one case through ``assess()`` under ``tree``; what differs from its ``expected``, one
    line each (empty: the case holds). A case expecting ``error`` holds when the parameter error
    says that text."""
    from verification.assessment.assess import assess
    from verification.assessment.policy import ParameterError

    problems = [f"unknown case keys: {sorted(set(case) - CASE_KEYS)}"] if set(case) - CASE_KEYS \
        else []
    expected = case.get("expected", {})
    if set(expected) - EXPECTED_KEYS:
        problems.append(f"unknown expected keys: {sorted(set(expected) - EXPECTED_KEYS)}")
    frames = case_frames(case)
    try:
        outcome = assess(*frames, tree, case["date"])
    except ParameterError as err:
        if "error" in expected and expected["error"] in str(err):
            return problems
        return [*problems, f"parameter error: {err}"]
    if "error" in expected:
        return [*problems, f"expected the parameter error {expected['error']!r}, got a result"]
    return problems + _result_problems(outcome.results.iloc[0], expected) + \
        _reason_problems(outcome.reasons, expected)


def _result_problems(result: pd.Series, expected: dict[str, Any]) -> list[str]:
    problems = [f"{key}: {result[key]} != {expected[key]}" for key in ("category", "decision")
                if key in expected and result[key] != expected[key]]
    if "benefit" in expected:
        want, got = expected["benefit"], result["benefit"]
        if (want is None) != bool(np.isnan(got)) or (
                want is not None and abs(got - want) > _TOLERANCE):
            problems.append(f"benefit: {got} != {want}")
    for column, value in (expected.get("results") or {}).items():
        got = result[column]
        if (got != value) if isinstance(value, str) else abs(got - value) > _TOLERANCE:
            problems.append(f"{column}: {got} != {value}")
    return problems


def _reason_problems(reasons: pd.DataFrame, expected: dict[str, Any]) -> list[str]:
    known = codes.reasons()
    listed = expected.get("reasons", []) + expected.get("failed", []) + expected.get("absent", [])
    problems = [f"reason code {code} is not in codes.yaml" for code in listed if code not in known]
    present = set(reasons["code"].astype(str))
    failed = set(reasons.loc[~reasons["passed"], "code"].astype(str))
    problems += [f"missing reason {code}; got {sorted(present)}"
                 for code in expected.get("reasons", []) if code not in present]
    problems += [f"{code} should count against eligibility; failed: {sorted(failed)}"
                 for code in expected.get("failed", []) if code not in failed]
    problems += [f"unexpected reason {code}" for code in expected.get("absent", [])
                 if code in present]
    if not reasons["reference"].astype(str).ne("").any():
        problems.append("no reason carries a legal reference")
    return problems
