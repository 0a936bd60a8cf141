"""docs/policy.md section 8 (coverage: rule item → contract field → partner → parameter → test)
has no empty cell, and every cell names something that exists: the contract field, the partner
that delivers that feed, the parameter, and the policy case or test function. Every delivered feed
kind appears in it, so a new feed cannot arrive without saying what the rules do with it."""

import re
from pathlib import Path

import pytest
import yaml

from connectors.registry import delivered_kinds, load_partners
from schemas import field_names
from verification.assessment.policy import load_parameters

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "policy.md"
CASES = Path(__file__).with_name("cases")
# P: the assess()-level cases; R: the same items through the real path (cases/rules/)
CASE_FILE_ABBREVIATIONS = {"P": "partner_items", "R": "rules/partner_items"}


def _rows() -> list[list[str]]:
    section = DOC.read_text("utf-8").split("## 8. Coverage", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


ROWS = _rows()


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _case_names() -> dict[str, set[str]]:
    return {file.relative_to(CASES).with_suffix("").as_posix():
            {case["name"] for case in yaml.safe_load(file.read_text("utf-8"))}
            for file in [*CASES.glob("*.yaml"), *CASES.glob("rules/*.yaml")]}


def test_the_table_has_rows_and_no_empty_cell():
    assert len(ROWS) >= 25
    for row in ROWS:
        assert len(row) == 5 and all(row), row


def test_every_delivered_feed_kind_is_covered():
    kinds = {name.split(".")[0] for row in ROWS for name in _ticked(row[1])}
    assert set(delivered_kinds()) <= kinds


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_each_row_names_a_real_field_partner_parameter_and_test(row):
    _item, fields, partners, parameters, tests = row
    named_partners = _ticked(partners)
    registry = load_partners()
    assert named_partners and set(named_partners) <= set(registry), partners
    delivered = {kind for code in named_partners for kind in registry[code].feeds}
    for name in _ticked(fields):
        kind, field = name.split(".", 1)
        assert field in field_names(kind), name
        assert kind in delivered, f"{kind} is not delivered by {named_partners}"
    definitions = load_parameters().definitions
    for name in _ticked(parameters):
        matches = [p for p in definitions if p == name or (name.endswith("*")
                                                         and p.startswith(name[:-1]))]
        assert matches, f"unknown parameter {name}"
    _check_tests(tests)


def _check_tests(cell: str) -> None:
    cases = _case_names()
    current = None
    for part in (p.strip() for p in cell.split(";")):
        if part.startswith("tests/"):
            path, function = part.split("::", 1)
            function = function.split(" ", 1)[0]
            assert f"def {function}(" in (ROOT / path).read_text("utf-8"), part
            continue
        prefix, sep, rest = part.partition(": ")
        if sep and (prefix in cases or prefix in CASE_FILE_ABBREVIATIONS):
            current, part = CASE_FILE_ABBREVIATIONS.get(prefix, prefix), rest
        assert current, f"no case file for {part!r}"
        # a case may be cited without the rule citation its name ends with ("… (第十三条)")
        assert any(name == part or name.startswith(part + " (") for name in cases[current]), (
            f"{current}.yaml has no case {part!r}")
