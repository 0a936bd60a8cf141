"""Run the readable policy cases in tests/policy/cases/*.yaml through ``assess()``.

A case says: date, region, urban/rural, the members (age or birth date, disability, labour
capacity), the evidence items (member, item, monthly amount or value, period), which sources are
missing or stale, and what must come out: category, decision, benefit, result values and reason
codes (``reasons`` must be present, ``failed`` present with passed = false, ``absent`` not present).
A case may instead expect ``error``: text that the parameter error must contain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from verification import codes
from verification.assessment import assess
from verification.policy import ParameterError, load_parameters
from verification.policy.cases import case_frames

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
