"""The cases written from the rule text (tests/policy/cases/rules/*.yaml), each run through the
real path: caseload (or batch) file + packed partner feeds pulled over HTTP + the bureau's policy
overlay → flags in the database (verification/assessment/policy/case_runner.py).
``make eval-policy`` runs the same cases and prints pass counts per rule family."""

from __future__ import annotations

from pathlib import Path

import pytest

from verification.assessment.policy.case_runner import CaseOutcome, load_cases, problems, run_cases

RULES_DIR = Path(__file__).with_name("cases") / "rules"
CASES = load_cases(RULES_DIR)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, CaseOutcome]:
    """Every case run once (a district per date, overlay and set of sources)."""
    got = run_cases([case for _, case in CASES], policy_root=RULES_DIR / "policies",
                    work=tmp_path_factory.mktemp("rule-cases"))
    return {case["name"]: outcome for (_, case), outcome in zip(CASES, got, strict=True)}


def test_there_are_enough_cases_and_each_cites_its_rule() -> None:
    assert len(CASES) >= 40
    assert len({case["name"] for _, case in CASES}) == len(CASES)
    assert all(case["rule"].strip() for _, case in CASES)


@pytest.mark.parametrize("case", [pytest.param(case, id=f"{family}: {case['name']}")
                                  for family, case in CASES])
def test_case(case, outcomes) -> None:  # noqa: ANN001
    found = problems(case, outcomes[case["name"]])
    assert not found, "; ".join(found)
