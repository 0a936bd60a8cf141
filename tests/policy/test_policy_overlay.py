"""A bureau's policy folder (HEDUI_POLICY_DIR / --policy-dir) laid over the shipped parameters:
its series replace the shipped ones per region and parameter, its digest is in the policy version,
and `hedui policy check` names every problem in Chinese and English."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from verification.assessment.policy import OVERLAY_ENV, ParameterError, load_parameters
from verification.cli.policy import app

ON = date(2026, 11, 1)
STANDARD = """standard:
  values:
    2025-01-01:
      value: {urban: 1000, rural: 800}
      reference: {title: 某区民政局城乡低保标准, number: 某民发〔2024〕9号, date: 2024-12-20}
"""


def _overlay(tmp_path: Path, text: str = STANDARD, topic: str = "dibao",
             region: str = "210112") -> Path:
    folder = tmp_path / "policy"
    (folder / region).mkdir(parents=True, exist_ok=True)
    (folder / region / f"{topic}.yaml").write_text(text, encoding="utf-8")
    return folder


def test_the_bureau_standard_replaces_the_shipped_example(tmp_path: Path) -> None:
    shipped = load_parameters().at("210112", ON)
    overlaid = load_parameters(overlay=_overlay(tmp_path)).at("210112", ON)
    # the shipped example has a later value (2026-07-01: 950); the bureau's series replaces it
    assert shipped.value("dibao.standard") == {"urban": 950, "rural": 750}
    assert overlaid.value("dibao.standard") == {"urban": 1000, "rural": 800}
    assert "某民发〔2024〕9号" in overlaid.reference("dibao.standard")
    assert overlaid.value("dibao.edge_multiplier") == shipped.value("dibao.edge_multiplier")
    assert overlaid.version != shipped.version


def test_the_environment_names_the_overlay(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = _overlay(tmp_path)
    monkeypatch.setenv(OVERLAY_ENV, str(folder))
    assert load_parameters().at("210112", ON).value("dibao.standard")["urban"] == 1000
    before = load_parameters().at("210112", ON).version
    (folder / "210112" / "dibao.yaml").write_text(STANDARD.replace("1000", "1010"), "utf-8")
    assert load_parameters().at("210112", ON).version != before  # the digest covers the overlay


@pytest.mark.parametrize(("text", "topic", "problem"), [
    ("standart:\n  values: {}\n", "dibao", "未定义的参数 / unknown parameter"),
    (STANDARD.replace("    2025-01-01:", "    2025-01-01:\n      valeu: 1\n"), "dibao",
     "未知的键 / unknown key"),
    ("standard:\n  values:\n    2025-01-01: {value: {urban: 1, rural: 1}}\n", "dibao",
     "缺少必填项 / required key missing"),
    (STANDARD + STANDARD[len("standard:\n  values:\n"):], "dibao",
     "生效日期重复 / date given twice"),
])
def test_check_names_each_problem_in_chinese_and_english(tmp_path: Path, text: str, topic: str,
                                                        problem: str) -> None:
    folder = _overlay(tmp_path, text, topic)
    with pytest.raises(ParameterError, match=problem):
        load_parameters(overlay=folder)
    result = CliRunner().invoke(app, ["check", "--policy-dir", str(folder)])
    assert result.exit_code == 1 and problem in result.output


def test_an_unlisted_region_is_refused(tmp_path: Path) -> None:
    folder = _overlay(tmp_path, region="210199")
    with pytest.raises(ParameterError, match="地区目录未在 regions.yaml 登记"):
        load_parameters(overlay=folder)
    (folder / "regions.yaml").write_text('"210199": {zh: 某区, en: Some district}\n', "utf-8")
    assert load_parameters(overlay=folder).at("210199", ON).value("dibao.standard")["urban"] == 1000


def test_check_and_show_report_the_overlay(tmp_path: Path) -> None:
    folder = _overlay(tmp_path)
    checked = CliRunner().invoke(app, ["check", "--policy-dir", str(folder)])
    assert checked.exit_code == 0 and "210112:dibao.standard" in checked.output
    shown = CliRunner().invoke(app, ["show", "--policy-dir", str(folder), "--date", "2026-11-01"])
    assert shown.exit_code == 0 and "某民发〔2024〕9号" in shown.output


@pytest.mark.parametrize(("stray", "problem"), [
    ("dibao.yaml", "文件不在地区目录内，不会生效"),           # beside the regions, not in one
    ("210112/dibao.yml", "不是 .yaml 参数文件，不会生效"),    # the wrong suffix is never read
    ("210112/old/dibao.yaml", "不是 .yaml 参数文件，不会生效"),  # nor a nested folder
])
def test_a_file_the_overlay_would_ignore_is_refused(tmp_path: Path, stray: str,
                                                    problem: str) -> None:
    folder = _overlay(tmp_path)
    (folder / stray).parent.mkdir(parents=True, exist_ok=True)
    (folder / stray).write_text(STANDARD, encoding="utf-8")
    with pytest.raises(ParameterError, match=problem):
        load_parameters(overlay=folder)
    (folder / "README.md").write_text("本局政策说明", encoding="utf-8")  # notes are allowed
    (folder / stray).unlink()
    if (folder / stray).parent.name == "old":
        (folder / stray).parent.rmdir()
    assert load_parameters(overlay=folder).at("210112", ON).value("dibao.standard")["urban"] == 1000
