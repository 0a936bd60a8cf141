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

import pytest

from verification.assessment.policy import load_parameters
from verification.assessment.policy.cases import check_case, load_case_file

CASES_DIR = Path(__file__).with_name("cases")


def _load_cases() -> list[Any]:
    params = []
    for file in sorted(CASES_DIR.glob("*.yaml")):
        for case in load_case_file(file):
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
    problems = check_case(case, tree)
    assert not problems, f"{file}: " + "; ".join(problems)
