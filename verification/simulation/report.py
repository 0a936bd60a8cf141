"""A simulation's output folder, ``var/simulations/sim-<n>/``:

    simulation.json     run, baseline and scenarios (folder, digest, policy versions) and every
                        summary table: what the portal shows, and what reproduces the result
    政策测算.xlsx        说明, 情景对比, 按街道, 按社区, 按类别, 变化家庭 (masked heads)
    summary.html        the same in one page, with the income distribution charts
    chart-<i>.svg       the distribution of per-capita income against the old and new standard
    scenarios/<i>-<name>/  a copy of each scenario's parameter folder as it was used

Chinese headers; households appear by household code with the head's masked name and ID only.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import select

from verification import codes, jurisdictions
from verification.config import Settings
from verification.reports import charts
from verification.reports.flag_reports import safe_cell
from verification.simulation.scenarios import Scenario
from verification.simulation.simulate import (
    RunInputs,
    ScenarioResult,
    by_area,
    by_category,
    indicators,
    simulation_home,
    standards,
)
from verification.storage import session_scope
from verification.storage.models import Household, Member

TEMPLATES = Path(__file__).with_name("templates")
WORKBOOK = "政策测算.xlsx"
FIGURES = {  # column → Chinese header, in the order of the tables
    "scenario": "测算情景", "street": "街道", "community": "社区", "category": "救助类别",
    "households": "户数", "persons": "人数", "eligible_base": "原符合户数",
    "eligible_new": "新符合户数", "gain_households": "新增户数", "gain_persons": "新增人数",
    "loss_households": "退出户数", "loss_persons": "退出人数",
    "change_households": "类别变化户数", "change_persons": "类别变化人数",
    "undetermined_households": "无法判定户数",
    "households_base": "原户数", "households_new": "新户数", "persons_base": "原人数",
    "persons_new": "新人数", "entering_households": "转入户数", "entering_persons": "转入人数",
    "leaving_households": "转出户数", "leaving_persons": "转出人数",
    "monthly_base": "原月支出(元)", "monthly_new": "新月支出(元)",
    "monthly_change": "月支出变化(元)", "yearly_base": "原年支出(元)",
    "yearly_new": "新年支出(元)", "yearly_change": "年支出变化(元)",
}
CHANGE_LABELS = {"gain": "新增", "loss": "退出", "change": "类别变化"}
HOUSEHOLD_HEADERS = {
    "scenario": "测算情景", "household_code": "家庭编号", "street": "街道", "community": "社区",
    "head_name": "户主姓名", "head_id": "户主身份证号", "persons": "人数", "change": "变化",
    "base_category": "原类别", "new_category": "新类别", "per_capita_income": "人均月收入(元)",
    "base_benefit": "原保障金额(元/月)", "new_benefit": "新保障金额(元/月)",
}


@cache
def _environment() -> Environment:
    from verification.reports.html import TEMPLATES as REPORT_TEMPLATES

    return Environment(loader=FileSystemLoader([TEMPLATES, REPORT_TEMPLATES]),
                       autoescape=select_autoescape(["html", "j2"]), trim_blocks=True,
                       lstrip_blocks=True)


def write_simulation(settings: Settings, inputs: RunInputs, baseline: Scenario,
                     base_versions: dict[str, str], results: list[ScenarioResult],
                     command: str = "") -> Path:
    """Write the simulation's folder (layout above); returns it."""
    folder = _new_folder(simulation_home(settings))
    record = _record(folder, inputs, baseline, base_versions, results, command)
    for index, (result, entry) in enumerate(zip(results, record["scenarios"], strict=True), 1):
        shutil.copytree(result.scenario.directory, folder / entry["copy_folder"])
        svg = charts.income_against_standards(
            _incomes(result.households), _lines(entry["standards"]),
            f"人均收入分布与低保标准 · {result.scenario.name} / per-capita income and standard")
        (folder / f"chart-{index}.svg").write_text(svg, "utf-8")
        entry["chart"] = f"chart-{index}.svg"
    (folder / "simulation.json").write_text(json.dumps(record, ensure_ascii=False, indent=1),
                                            "utf-8")
    _workbook(settings, folder / WORKBOOK, record, results)
    page = _environment().get_template("simulation.html.j2").render(
        sim=record, css=_css(), labels=FIGURES, district=jurisdictions.district()[1],
        areas={area: codes.label("urban_rural", area) for area in ("urban", "rural")},
        charts={e["chart"]: (folder / e["chart"]).read_text("utf-8") for e in record["scenarios"]})
    (folder / "summary.html").write_text(page, "utf-8")
    return folder


def _css() -> str:
    from verification.reports.html import css

    return css()


def _new_folder(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    number = 1 + max((int(p.name.split("-")[1]) for p in home.glob("sim-*")
                      if p.name.split("-")[1].isdigit()), default=0)
    while True:  # two simulations started at once each get their own folder
        folder = home / f"sim-{number}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1


def _record(folder: Path, inputs: RunInputs, baseline: Scenario, base_versions: dict[str, str],
            results: list[ScenarioResult], command: str) -> dict[str, Any]:
    scenarios = []
    for index, result in enumerate(results, 1):
        table = indicators(result.households)  # shared by the three area tables
        scenarios.append({
            "name": result.scenario.name, "directory": str(result.scenario.directory),
            "digest": result.scenario.tree.digest, "policy_versions": result.policy_versions,
            "copy_folder": f"scenarios/{index}-{result.scenario.name}",
            "totals": _rows(by_area(table, []))[0],
            "streets": _rows(_named(by_area(table, ["street_code"]))),
            "communities": _rows(_named(by_area(table, ["street_code", "community_code"]))),
            "categories": _rows(by_category(result.households).assign(
                category=lambda f: f["category"].map(lambda c: codes.label("categories", c)))),
            "standards": standards(result.households),
        })
    first = results[0].households
    return {
        "id": int(folder.name.split("-")[1]), "folder": str(folder),
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "command": command,
        "run": {"id": inputs.run_id, "run_key": inputs.run_key,
                "as_of": inputs.as_of.isoformat(), "region": inputs.region,
                "policy_version": inputs.policy_version},
        "baseline": {"name": baseline.name, "directory": str(baseline.directory),
                     "digest": baseline.tree.digest, "policy_versions": base_versions,
                     "matches_run": base_versions.get(inputs.region) == inputs.policy_version},
        "households": int(len(first)), "persons": int(first["persons"].sum()),
        "scenarios": scenarios, "files": {"xlsx": WORKBOOK, "html": "summary.html"},
    }


def _named(table: pd.DataFrame) -> pd.DataFrame:
    named = table.copy()
    named.insert(0, "street", named["street_code"].map(jurisdictions.street_name))
    if "community_code" in named:
        named.insert(1, "community", named["community_code"].map(jurisdictions.community_name))
    return named


def _rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in table.to_dict("records")]


def _incomes(table: pd.DataFrame) -> dict[str, pd.Series]:
    decided = table[table["decided"]]
    return {codes.label("urban_rural", area): part["per_capita_income"]
            for area, part in decided.groupby("urban_rural")}


def _lines(found: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    return {codes.label("urban_rural", area): line for area, line in found.items()}


# ---- the workbook ------------------------------------------------------------------------------
def _workbook(settings: Settings, path: Path, record: dict[str, Any],
              results: list[ScenarioResult]) -> None:
    book = Workbook()
    _about(book.active, record)
    names = [s["name"] for s in record["scenarios"]]
    totals = pd.DataFrame([{"scenario": n, **s["totals"]} for n, s in
                           zip(names, record["scenarios"], strict=True)])
    _sheet(book.create_sheet("情景对比"), totals)
    for title, key, drop in (("按街道", "streets", ["street_code"]),
                             ("按社区", "communities", ["street_code", "community_code"]),
                             ("按类别", "categories", [])):
        rows = [{"scenario": s["name"], **row} for s in record["scenarios"] for row in s[key]]
        _sheet(book.create_sheet(title), pd.DataFrame(rows).drop(columns=drop))
    _sheet(book.create_sheet("变化家庭"), _changed_households(settings, results),
           HOUSEHOLD_HEADERS)
    book.save(path)


def _about(sheet, record: dict[str, Any]) -> None:  # noqa: ANN001
    sheet.title = "说明"
    run = record["run"]
    sheet.append(["政策测算 / policy simulation"])
    sheet["A1"].font = Font(bold=True, size=14)
    for label, value in [
        ("测算编号 / simulation", record["id"]), ("生成时间 / created", record["created_at"]),
        ("核对 / run", f"{run['run_key']}（#{run['id']}）"), ("核对基准日 / as of", run["as_of"]),
        ("该次核对所用政策版本 / run's policy", run["policy_version"]),
        ("基线参数 / baseline", record["baseline"]["directory"]),
        ("基线政策版本 / baseline policy", ", ".join(record["baseline"]["policy_versions"]
                                                    .values())),
        ("家庭数 / households", record["households"]), ("人数 / persons", record["persons"]),
        ("命令 / command", record["command"])]:
        sheet.append([label, safe_cell(str(value))])
    sheet.append([])
    sheet.append(["测算情景", "参数目录", "参数摘要", "政策版本"])
    for scenario in record["scenarios"]:
        sheet.append([scenario["name"], scenario["directory"], scenario["digest"],
                      ", ".join(scenario["policy_versions"].values())])
    sheet.append([])
    sheet.append(["测算结果不写入核对结论；费用为按测算标准计算的低保金和特困供养金（元）。"])
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 60


def _changed_households(settings: Settings, results: list[ScenarioResult]) -> pd.DataFrame:
    """Every household a scenario moves, with the head's masked name and ID."""
    parts = [result.changed.assign(scenario=result.scenario.name) for result in results]
    changed = pd.concat(parts) if parts else pd.DataFrame()
    if changed.empty:
        return pd.DataFrame(columns=list(HOUSEHOLD_HEADERS))
    with session_scope(settings.database_url) as session:
        heads = pd.DataFrame(session.execute(
            select(Household.household_code, Member.name_masked, Member.id_masked)
            .join(Member).where(Member.relation == "户主")).all(),
            columns=["household_code", "head_name", "head_id"]).drop_duplicates("household_code")
    table = changed.merge(heads, on="household_code", how="left")
    table["street"] = table["street_code"].map(jurisdictions.street_name)
    table["community"] = table["community_code"].map(jurisdictions.community_name)
    table["change"] = table["change"].map(CHANGE_LABELS)
    for side in ("base_category", "new_category"):
        table[side] = table[side].map(lambda c: codes.label("categories", c))
    return table.sort_values(["scenario", "street_code", "household_code"], kind="stable")[
        list(HOUSEHOLD_HEADERS)]


def _sheet(sheet, table: pd.DataFrame,  # noqa: ANN001
           headers: dict[str, str] | None = None) -> None:
    headers = headers or FIGURES
    sheet.append([headers.get(c, c) for c in table.columns])
    for record in table.itertuples(index=False):
        sheet.append([None if pd.isna(v) else safe_cell(v) for v in record])
    for cell in sheet[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="1F4E79")
    for i in range(len(table.columns)):
        sheet.column_dimensions[get_column_letter(i + 1)].width = 14
    sheet.freeze_panes = "A2"


# ---- reading them back -------------------------------------------------------------------------
def list_simulations(settings: Settings) -> list[dict[str, Any]]:
    """Every stored simulation's record, newest first."""
    home = simulation_home(settings)
    found = [json.loads(p.read_text("utf-8")) for p in home.glob("sim-*/simulation.json")]
    return sorted(found, key=lambda r: -r["id"])


def load_simulation(settings: Settings, simulation_id: int) -> dict[str, Any] | None:
    path = simulation_home(settings) / f"sim-{simulation_id}" / "simulation.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def simulation_file(settings: Settings, simulation_id: int, name: str) -> Path | None:
    """A file of the simulation's folder that may be downloaded (the workbook, the page, a
    chart), or None: nothing outside the folder, no parameter copies."""
    folder = simulation_home(settings) / f"sim-{simulation_id}"
    allowed = {WORKBOOK, "summary.html", "simulation.json"} | {
        p.name for p in folder.glob("chart-*.svg")}
    return folder / name if name in allowed and (folder / name).is_file() else None
