"""The parameter tree: validation names file and key, resolution by region and date, the CLI,
and that editing a YAML value changes the outcome without any code change."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from verification.assessment.assess import assess
from verification.assessment.policy import DEFAULT_DIRECTORY, ParameterError, load_parameters
from verification.assessment.policy.cases import case_frames
from verification.cli.policy import app

REFERENCE = "reference: {title: 测试文件, number: 测试〔2025〕1号, date: 2025-01-01}"


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A private copy of the shipped parameters that a test may edit."""
    target = tmp_path / "parameters"
    shutil.copytree(DEFAULT_DIRECTORY, target)
    return target


def _append(file: Path, text: str) -> None:
    file.write_text(file.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")


def _single_applicant(wage: float, on: date = date(2025, 7, 1)) -> tuple:
    return case_frames({
        "date": on, "region": "210112", "urban_rural": "urban",
        "members": [{"name": "申请人", "age": 45}],
        "evidence": [{"member": "申请人", "item": "wage", "amount": wage}],
    })


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("file", "text", "key_path"),
    [
        ("210112/dibao.yaml", "edge_multiplier:\n  values: {}\n  unit: ratio\n",
         "dibao.edge_multiplier.unit"),
        ("210112/dibao.yaml", "standrad:\n  values: {}\n", "dibao.standrad"),
        ("210112/pension.yaml", "x:\n  values: {}\n", "pension"),
        ("210112/dibao.yaml",
         "edge_multiplier:\n  values:\n    2026-01-01: {value: 2, refrence: {title: x}}\n",
         "dibao.edge_multiplier.values.2026-01-01.refrence"),
        ("210112/dibao.yaml", "edge_multiplier:\n  values:\n    2026-01-01: {value: 2}\n",
         "dibao.edge_multiplier.values.2026-01-01.reference"),
        ("210112/dibao.yaml",
         f"edge_multiplier:\n  values:\n    2026-01-01: {{value: many, {REFERENCE}}}\n",
         "dibao.edge_multiplier.values.2026-01-01.value"),
        ("210112/dibao.yaml",
         f"edge_multiplier:\n  values:\n    2026-13-01: {{value: 2, {REFERENCE}}}\n",
         "dibao.edge_multiplier.values.2026-13-01"),
        ("210112/income.yaml",
         f"excluded_items:\n  values:\n    2026-01-01: {{value: [lottery], {REFERENCE}}}\n",
         "income.excluded_items.values.2026-01-01.value"),
        ("210112/rigid.yaml",
         "disposable_income_previous_year:\n  values:\n"
         f"    2026-01-01: {{value: {{urban: 1}}, {REFERENCE}}}\n",
         "rigid.disposable_income_previous_year.values.2026-01-01.value"),
        ("210112/requirements.yaml",
         f"income:\n  values:\n    2026-01-01: {{value: {{salaries: 30}}, {REFERENCE}}}\n",
         "requirements.income.values.2026-01-01.value"),
        ("210112/assets.yaml",
         f"financial_items:\n  values:\n    2026-01-01: {{value: [deposit, car], {REFERENCE}}}\n",
         "assets.financial_items.values.2026-01-01.value"),
        ("000000/dibao.yaml", "extra:\n  description: {zh: 额外, en: Extra}\n  unit: parsecs\n"
         "  type: number\n  values: {}\n", "dibao.extra.unit"),
    ],
)
def test_a_misplaced_or_unknown_key_names_the_file_and_key(
    copied: Path, file: str, text: str, key_path: str
) -> None:
    target = copied / file
    if target.exists():
        _append(target, text)
    else:
        target.write_text(text, encoding="utf-8")
    with pytest.raises(ParameterError) as caught:
        load_parameters(copied)
    assert caught.value.key_path == key_path
    assert caught.value.file.endswith(file)
    assert file in str(caught.value) and key_path in str(caught.value)


def test_a_region_directory_must_be_listed(copied: Path) -> None:
    (copied / "210999").mkdir()
    with pytest.raises(ParameterError, match="regions.yaml"):
        load_parameters(copied)


def test_the_shipped_parameters_are_valid_and_every_local_number_is_referenced() -> None:
    tree = load_parameters()
    for (region, _path), entries in tree.entries.items():
        for entry in entries:
            assert entry.value is None or entry.reference is not None
            if region != "000000":
                assert entry.reference.example, "local values shipped are examples, say so"


def test_counted_and_excluded_income_items_do_not_overlap() -> None:
    policy = load_parameters().at("210112", date(2025, 7, 1))
    counted = set(policy.value("income.counted_items"))
    assert not counted & set(policy.value("income.excluded_items"))
    assert set(policy.value("tekun.extra_excluded_items")) <= counted


# --------------------------------------------------------------------------- resolution


def test_values_resolve_by_date_and_fall_back_by_region() -> None:
    tree = load_parameters()
    hunnan = tree.at("210112", date(2026, 7, 1))
    assert hunnan.value("dibao.standard", "urban") == 950
    assert hunnan.value("dibao.standard", "rural") == 750
    assert hunnan.value("dibao.standard") == {"urban": 950, "rural": 750}
    assert hunnan.values["assets.financial_limit_months"].region == "210100"
    assert hunnan.values["income.look_back_months"].region == "210000"
    assert hunnan.values["dibao.edge_multiplier"].region == "000000"
    assert "民发〔2021〕57号" in hunnan.reference("dibao.edge_multiplier")
    assert "EXAMPLE" in hunnan.reference("dibao.standard")
    assert tree.at("210112", date(2026, 6, 30)).value("dibao.standard", "urban") == 900
    assert tree.at("210113", date(2025, 7, 1)).value("dibao.standard", "urban") == 880


def test_null_ends_a_rule_from_its_date(copied: Path) -> None:
    _append(copied / "210100" / "business.yaml", "")
    text = (copied / "210100" / "business.yaml").read_text(encoding="utf-8")
    text = text.replace("exempt_capital_max:\n  values:\n",
                        "exempt_capital_max:\n  values:\n    2026-01-01: null\n")
    (copied / "210100" / "business.yaml").write_text(text, encoding="utf-8")
    tree = load_parameters(copied)
    assert tree.at("210112", date(2025, 12, 31)).value("business.exempt_capital_max") == 30000
    assert tree.at("210112", date(2026, 1, 1)).value("business.exempt_capital_max") is None


def test_the_version_is_stable_and_changes_with_files_region_and_date(copied: Path) -> None:
    on = date(2025, 7, 1)
    version = load_parameters().at("210112", on).version
    assert load_parameters(copied).at("210112", on).version == version
    assert load_parameters().at("210113", on).version != version
    assert load_parameters().at("210112", date(2025, 7, 2)).version != version
    _append(copied / "210112" / "dibao.yaml", "# a comment changes the file, and the version\n")
    assert load_parameters(copied).at("210112", on).version != version


# --------------------------------------------------------------------------- data, not code


def test_changing_the_standard_in_yaml_changes_the_outcome(copied: Path) -> None:
    frames = _single_applicant(950)
    before = assess(*frames, load_parameters(copied), date(2025, 7, 1)).results.iloc[0]
    assert before["category"] == "edge" and before["benefit"] == 0
    file = copied / "210112" / "dibao.yaml"
    text = file.read_text(encoding="utf-8").replace("{urban: 900, rural: 700}",
                                                    "{urban: 1000, rural: 800}")
    file.write_text(text, encoding="utf-8")
    after = assess(*frames, load_parameters(copied), date(2025, 7, 1)).results.iloc[0]
    assert after["category"] == "dibao" and after["benefit"] == 50
    assert after["standard"] == 1000


def test_adding_next_years_standard_takes_effect_on_its_date(copied: Path) -> None:
    _append(copied / "210112" / "dibao.yaml",
            "    2027-01-01:\n      value: {urban: 1000, rural: 800}\n"
            "      reference: {title: 浑南区2027年低保标准, number: 测试〔2026〕1号}\n")
    tree = load_parameters(copied)
    assert tree.at("210112", date(2026, 12, 31)).value("dibao.standard", "urban") == 950
    frames = _single_applicant(960, date(2027, 1, 1))
    result = assess(*frames, tree, date(2027, 1, 1)).results.iloc[0]
    assert (result["category"], result["benefit"]) == ("dibao", 40)


def test_tiers_rounding_and_minimum_come_from_yaml(copied: Path) -> None:
    (copied / "210112" / "benefit.yaml").write_text(
        "method:\n  values:\n    2025-01-01: {value: tiers, " + REFERENCE + "}\n"
        "tiers:\n  values:\n    2025-01-01:\n      value:\n"
        "        - {income_below: 0.5, benefit: 0.8}\n"
        "        - {income_below: 1.0, benefit: 0.3}\n"
        "      " + REFERENCE + "\n",
        encoding="utf-8",
    )
    tree = load_parameters(copied)
    low = assess(*_single_applicant(300), tree, date(2025, 7, 1)).results.iloc[0]
    high = assess(*_single_applicant(700), tree, date(2025, 7, 1)).results.iloc[0]
    assert (low["benefit"], high["benefit"]) == (720, 270)
    (copied / "210112" / "benefit.yaml").write_text(
        "method:\n  values:\n    2025-01-01: {value: difference, " + REFERENCE + "}\n"
        "rounding_unit:\n  values:\n    2025-01-01: {value: 10, " + REFERENCE + "}\n"
        "rounding_mode:\n  values:\n    2025-01-01: {value: up, " + REFERENCE + "}\n"
        "minimum_per_person:\n  values:\n    2025-01-01: {value: 50, " + REFERENCE + "}\n",
        encoding="utf-8")
    tree = load_parameters(copied)
    rounded = assess(*_single_applicant(700), tree, date(2025, 7, 1)).results.iloc[0]
    minimum = assess(*_single_applicant(880), tree, date(2025, 7, 1)).results.iloc[0]
    assert (rounded["benefit"], minimum["benefit"]) == (200, 50)


def test_the_worked_example_holds() -> None:
    frames = case_frames({
        "date": date(2024, 7, 1), "region": "210112", "urban_rural": "urban",
        "members": [{"name": "户主", "age": 45}, {"name": "配偶", "age": 43},
                    {"name": "子女", "age": 12}],
        "evidence": [{"member": "户主", "item": "wage", "amount": 900},
                     {"member": "配偶", "item": "medical_oop", "amount": 150}],
    })
    policy = load_parameters().at("210112", date(2024, 7, 1))
    outcome = assess(*frames, policy, date(2024, 7, 1))
    assert outcome.results.iloc[0]["benefit"] == 1650
    assert outcome.policy_versions == {"210112": policy.version}
    reason = outcome.reasons.set_index("code").loc["INCOME_OVER_STANDARD"]
    assert (reason["value"], reason["limit"], reason["parameter"]) == (250, 800, "dibao.standard")
    assert reason["evidence_refs"] == "wages:101:R1;wages:101:R2"


# --------------------------------------------------------------------------- CLI


def test_policy_show_prints_values_with_references_in_both_languages() -> None:
    result = CliRunner().invoke(app, ["show", "--region", "210112", "--date", "2026-07-01"])
    assert result.exit_code == 0, result.output
    assert "最低生活保障标准 / Minimum living standard" in result.output
    assert "urban: 950, rural: 750" in result.output
    assert "〔示例 EXAMPLE〕" in result.output
    assert "民发〔2021〕57号" in result.output
    assert "210112 → 210100 → 210000 → 000000" in result.output


def test_policy_show_rejects_a_bad_region() -> None:
    result = CliRunner().invoke(app, ["show", "--region", "2101", "--date", "2026-07-01"])
    assert result.exit_code != 0


def test_policy_check_passes_on_the_shipped_files() -> None:
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK:")


def test_policy_check_fails_with_file_and_key(copied: Path) -> None:
    _append(copied / "210112" / "dibao.yaml", "standard_typo:\n  values: {}\n")
    result = CliRunner().invoke(app, ["check", "--parameters", str(copied)])
    assert result.exit_code == 1
    assert "210112/dibao.yaml" in result.output and "dibao.standard_typo" in result.output


def test_a_parameter_error_crosses_a_process_boundary_whole():
    """A worker pool (bench, a spawned task) pickles the error back: it keeps file, key and
    problem, and its message (the default pickling passed only the message and broke the pool)."""
    import pickle

    error = ParameterError("tekun.yaml", "tekun.child_age.values", "expected a whole number")
    again = pickle.loads(pickle.dumps(error))
    assert (again.file, again.key_path, again.problem) == (error.file, error.key_path,
                                                         error.problem)
    assert str(again) == str(error)
