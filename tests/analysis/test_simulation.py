"""Policy simulation on a reviewed district: the baseline reproduces the review, a raised
standard costs what a direct assessment says, nothing is flagged, and the output is complete,
masked and reproducible."""

import datetime as dt
import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select

from tests.analysis.conftest import AS_OF
from verification import simulation
from verification.assessment.assess import assess
from verification.assessment.policy import DEFAULT_DIRECTORY, load_parameters
from verification.storage import session_scope
from verification.storage.models import Assessment, Flag, Run

RAW_ID = re.compile(r"\d{17}[\dXx]")


def test_raised_standard_is_a_valid_dated_overlay(tmp_path):
    folder = simulation.write_raised_standard(tmp_path / "plus7", 7, "210112", AS_OF)
    tree, shipped = load_parameters(folder), load_parameters()
    assert tree.at("210112", AS_OF).value("dibao.standard") == {"urban": 1017, "rural": 803}
    before = AS_OF - dt.timedelta(days=1)  # the shipped values hold until the new date
    assert (tree.at("210112", before).value("dibao.standard")
            == shipped.at("210112", before).value("dibao.standard"))
    assert (tree.at("210112", AS_OF).value("tekun.support_multiplier")
            == shipped.at("210112", AS_OF).value("tekun.support_multiplier"))
    assert tree.digest != shipped.digest
    assert "测算情景" in tree.at("210112", AS_OF).reference("dibao.standard")
    with pytest.raises(simulation.ScenarioError, match="0–100"):
        simulation.write_raised_standard(tmp_path / "bad", -3, "210112", AS_OF)


def test_baseline_reproduces_the_review(reviewed):
    inputs = simulation.load_run_inputs(reviewed.settings)
    assert inputs.run_id == reviewed.run_id
    base = simulation.load_scenario(DEFAULT_DIRECTORY)
    results = assess(inputs.households, inputs.members, inputs.evidence, inputs.sources,
                     base.tree, inputs.as_of)
    with session_scope(reviewed.settings.database_url) as session:
        stored = pd.DataFrame(session.execute(
            select(Assessment.household_id, Assessment.category, Assessment.benefit)
            .where(Assessment.run_id == reviewed.run_id)).all(),
            columns=["household_id", "category", "benefit"]).set_index("household_id")
        assert results.policy_versions[inputs.region] == session.get(
            Run, reviewed.run_id).policy_version
    again = results.results.loc[stored.index]
    assert (again["category"] == stored["category"]).all()
    assert (again["benefit"].fillna(0).round(2) == stored["benefit"].round(2)).all()


def _counts(settings):
    with session_scope(settings.database_url) as session:
        return (session.scalar(select(func.count(Flag.id))),
                session.scalar(select(func.count(Run.id))))


def test_raising_the_standard_costs_what_the_assessment_says(reviewed, tmp_path):
    settings = reviewed.settings
    before = _counts(settings)
    inputs = simulation.load_run_inputs(settings, reviewed.run_id)
    base = simulation.load_scenario(DEFAULT_DIRECTORY, "基线")
    scenarios = [simulation.load_scenario(simulation.write_raised_standard(
        tmp_path / simulation.scenario_name(p), p, inputs.region, inputs.as_of))
        for p in (10, 60)]
    versions, results = simulation.simulate(inputs, base, scenarios)
    assert _counts(settings) == before  # no flag, no run
    with session_scope(settings.database_url) as session:
        review_cost = session.scalar(select(func.sum(Assessment.benefit))
                                     .where(Assessment.run_id == reviewed.run_id))
    for scenario, result in zip(scenarios, results, strict=True):
        table = result.households
        totals = simulation.simulate_module.by_area(table, [])
        direct = assess(inputs.households, inputs.members, inputs.evidence, inputs.sources,
                        scenario.tree, inputs.as_of).results
        assert totals["monthly_new"].iloc[0] == pytest.approx(direct["benefit"].sum())
        assert totals["monthly_base"].iloc[0] == pytest.approx(review_cost)
        assert totals["yearly_change"].iloc[0] == pytest.approx(
            12 * (direct["benefit"].sum() - review_cost), abs=0.05)
        # a higher standard lowers no household's eligibility
        assert totals["loss_households"].iloc[0] == 0
        assert totals["monthly_change"].iloc[0] > 0
        streets = simulation.simulate_module.by_area(table, ["street_code"])
        for column in ("households", "gain_households", "gain_persons", "monthly_change"):
            assert streets[column].sum() == pytest.approx(totals[column].iloc[0])
        gained = table[table["change"] == "gain"]
        assert (gained["base_category"] == "none").all()
        assert (gained["new_category"] != "none").all()
        assert set(result.policy_versions) == {inputs.region}
    assert results[1].households["change"].eq("gain").sum() > 0  # +60 % reaches someone
    by_category = simulation.simulate_module.by_category(results[1].households)
    assert by_category["households_new"].sum() == len(inputs.households)
    assert versions[inputs.region] != results[0].policy_versions[inputs.region]


def test_output_is_complete_masked_and_reproducible(reviewed, tmp_path):
    settings = reviewed.settings
    inputs = simulation.load_run_inputs(settings)
    base = simulation.load_scenario(DEFAULT_DIRECTORY, "基线")
    scenario = simulation.load_scenario(simulation.write_raised_standard(
        tmp_path / "standard+60pct", 60, inputs.region, inputs.as_of))
    versions, results = simulation.simulate(inputs, base, [scenario])
    folder = simulation.write_simulation(settings, inputs, base, versions, results, "test")
    record = json.loads((folder / "simulation.json").read_text("utf-8"))
    assert record["run"] == {"id": reviewed.run_id, "run_key": "review-2026-11",
                             "as_of": AS_OF.isoformat(), "region": inputs.region,
                             "policy_version": inputs.policy_version}
    assert record["baseline"]["matches_run"] is True
    entry = record["scenarios"][0]
    copy = load_parameters(folder / entry["copy_folder"])
    assert copy.digest == entry["digest"] == scenario.tree.digest
    assert entry["policy_versions"] == {inputs.region: copy.at(inputs.region, AS_OF).version}
    assert entry["standards"]["urban"] == {"base": 950.0, "new": 1520.0}

    book = load_workbook(folder / "政策测算.xlsx")
    assert book.sheetnames == ["说明", "情景对比", "按街道", "按社区", "按类别", "变化家庭"]
    changed = list(book["变化家庭"].values)
    assert changed[0][:6] == ("测算情景", "家庭编号", "街道", "社区", "户主姓名", "户主身份证号")
    assert len(changed) - 1 == len(results[0].changed) > 0
    assert all("*" in row[5] for row in changed[1:])
    cells = " ".join(str(v) for sheet in book for row in sheet.values for v in row if v)
    assert not RAW_ID.search(cells)
    page = (folder / "summary.html").read_text("utf-8")
    assert "standard+60pct" in page and "<svg" in page and entry["digest"][:16] in page
    assert entry["copy_folder"] in page and "城镇：原标准 950 → 新标准 1520" in page
    assert not RAW_ID.search(page)

    # the recorded folder, run and baseline give the same result again
    again = simulation.simulate(simulation.load_run_inputs(settings, record["run"]["id"]), base,
                                [simulation.load_scenario(folder / entry["copy_folder"])])[1][0]
    assert again.households.equals(results[0].households)


def test_cli_raises_the_standard_side_by_side(reviewed, monkeypatch):
    from verification.cli.main import app

    settings = reviewed.settings
    monkeypatch.setenv("HEDUI_HOME", str(settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    done = runner.invoke(app, ["simulate", "--raise-standard", "5,7,10", "--user",
                               "hedui_staff"])
    assert done.exit_code == 0, done.output
    assert done.output.count("月支出变化") == 3
    folder = done.output.strip().splitlines()[-1].split("→")[-1].strip()
    record = json.loads((settings.home / "simulations" / folder.split("/")[-1]
                         / "simulation.json").read_text("utf-8"))
    assert [s["name"] for s in record["scenarios"]] == [
        "standard+5pct", "standard+7pct", "standard+10pct"]
    assert [s["standards"]["urban"]["new"] for s in record["scenarios"]] == [998, 1017, 1045]
    assert "--raise-standard" in record["command"]

    refused = runner.invoke(app, ["simulate", "--raise-standard", "5", "--user",
                                  "officer_wusan"])
    assert refused.exit_code != 0 and "政策测算需要" in str(refused.exception)
    assert "staff or administrator only" in str(refused.exception)
    bad = runner.invoke(app, ["simulate", "--raise-standard", "five", "--user", "hedui_staff"])
    assert bad.exit_code != 0 and "百分比" in (bad.output + str(bad.exception))


def test_a_run_without_staged_frames_is_refused_clearly(reviewed):
    with pytest.raises(simulation.SimulationError, match="没有编号为 9999"):
        simulation.load_run_inputs(reviewed.settings, 9999)
    evidence = reviewed.settings.runs_dir / f"run-{reviewed.run_id}" / "evidence.parquet"
    evidence.rename(evidence.with_suffix(".away"))
    try:
        with pytest.raises(simulation.SimulationError, match="请重新运行该次核对"):
            simulation.load_run_inputs(reviewed.settings, reviewed.run_id)
    finally:
        evidence.with_suffix(".away").rename(evidence)
