"""Readable policy cases (OpenFisca-style YAML scenarios) turned into assessment input frames.

A case names a date, a region, urban/rural, its members (age or birth date, disability, labour
capacity, counted or not) and evidence items (member, item, monthly amount or value, period,
match grade), and which sources are missing, stale or rejected. ``case_frames`` builds the
households, members, evidence and sources frames of the seams in docs/architecture.md, so a case
runs through exactly the ``assess()`` the pipeline calls. Cases live in tests/policy/cases/.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

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
