"""One simulation from a request, as `hedui simulate` and the `policy_simulation` DAG both make
it: resolve the run, write the --raise-standard scenario folders, simulate, write the output."""

from __future__ import annotations

import datetime as dt
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from verification.assessment.policy import DEFAULT_DIRECTORY
from verification.config import Settings
from verification.simulation.report import write_simulation
from verification.simulation.scenarios import (
    ScenarioError,
    load_scenario,
    scenario_name,
    write_raised_standard,
)
from verification.simulation.simulate import (
    ScenarioResult,
    by_area,
    load_run_inputs,
    simulate,
    simulation_home,
)


@dataclass(frozen=True)
class Request:
    parameters: list[Path] = field(default_factory=list)
    percents: list[float] = field(default_factory=list)
    from_run: int | None = None
    baseline: Path | None = None
    effective: dt.date | None = None
    write_only: bool = False


@dataclass(frozen=True)
class Outcome:
    scenario_folders: list[Path]  # the --raise-standard folders written
    folder: Path | None  # the simulation's output (None when write_only)
    results: list[ScenarioResult]


def parse_percents(text: str) -> list[float]:
    """"5,7,10" → [5.0, 7.0, 10.0]; anything else is refused in Chinese and English."""
    try:
        return [float(part) for part in str(text or "").split(",") if part.strip()]
    except ValueError:
        raise ScenarioError(f"提高比例须为逗号分隔的百分比，如 5,7,10 / expected percents like "
                            f"5,7,10, got {text!r}") from None


def run_simulation(settings: Settings, request: Request) -> Outcome:
    """Simulate ``request`` (the scenario folders first, when it raises the standard)."""
    from verification.pipeline import DEFAULT_REGION

    inputs = (None if request.write_only and request.from_run is None
              else load_run_inputs(settings, request.from_run))
    base = load_scenario(request.baseline or DEFAULT_DIRECTORY, "基线 / baseline")
    scenarios = [load_scenario(folder) for folder in request.parameters]
    written = []
    for percent in request.percents:
        day = request.effective or (inputs.as_of if inputs else dt.date.today())
        written.append(write_raised_standard(
            simulation_home(settings) / "scenarios" / scenario_name(percent), percent,
            inputs.region if inputs else DEFAULT_REGION, day, base.directory))
        scenarios.append(load_scenario(written[-1]))
    if request.write_only:
        return Outcome(written, None, [])
    base_versions, results = simulate(inputs, base, scenarios)
    folder = write_simulation(settings, inputs, base, base_versions, results,
                              command(request, inputs.run_id))
    return Outcome(written, folder, results)


def command(request: Request, run_id: int) -> str:
    """The command that gives this result again (the run resolved to its id)."""
    words = ["hedui", "simulate", "--from-run", str(run_id)]
    for folder in request.parameters:
        words += ["--parameters", str(folder)]
    if request.percents:
        words += ["--raise-standard", ",".join(f"{p:g}" for p in request.percents)]
    if request.baseline:
        words += ["--baseline", str(request.baseline)]
    if request.effective:
        words += ["--effective", request.effective.isoformat()]
    return " ".join(shlex.quote(word) for word in words)


def summary_lines(outcome: Outcome) -> list[str]:
    """One line per scenario: gaining, losing, changing; the monthly and yearly change."""
    lines = []
    for result in outcome.results:
        total = by_area(result.households, []).to_dict("records")[0]  # ints stay ints
        lines.append(f"{result.scenario.name}: 新增 {total['gain_households']} 户/"
                     f"{total['gain_persons']} 人, 退出 {total['loss_households']} 户/"
                     f"{total['loss_persons']} 人, 类别变化 {total['change_households']} 户; "
                     f"月支出变化 "
                     f"{total['monthly_change']:+,.2f} 元, 年 {total['yearly_change']:+,.2f} 元")
    return lines
