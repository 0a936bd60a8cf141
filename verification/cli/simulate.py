"""`hedui simulate`: what a policy change would cost and whom it reaches (政策测算).

    hedui simulate --raise-standard 5,7,10              shipped parameters, 低保 standard +5/7/10 %
    hedui simulate --parameters my-2027/ --from-run 12  a bureau's own parameter folder
"""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import Annotated

import typer

from verification.config import load_settings

app = typer.Typer()


@app.command()
def simulate(
    parameters: Annotated[list[Path] | None, typer.Option(
        "--parameters", help="情景参数目录（可多次）/ a scenario's parameter folder (repeatable)")
    ] = None,
    raise_standard: Annotated[str, typer.Option(
        "--raise-standard", help="低保标准提高百分比，如 5,7,10 / raise the shipped standard by "
        "these percents (writes one scenario folder each)")] = "",
    from_run: Annotated[int | None, typer.Option(
        "--from-run", help="核对编号（默认最近一次）/ review run id (default: the latest)")] = None,
    baseline: Annotated[Path | None, typer.Option(
        help="基线参数目录（默认随附参数）/ baseline parameters (default: the shipped ones)")
    ] = None,
    effective: Annotated[str, typer.Option(
        help="新标准生效日（默认该次核对基准日）/ date the raised standard takes effect "
        "(default: the run's as-of date)")] = "",
    write_only: Annotated[bool, typer.Option(
        help="只写出情景参数目录，不测算 / only write the --raise-standard folders")] = False,
    user: Annotated[str | None, typer.Option(
        help="操作人 / acting user (default $HEDUI_USER)")] = None,
) -> None:
    """Re-assess a finished review under each scenario's parameters; no flags are written."""
    from verification import simulation
    from verification.assessment.policy import DEFAULT_DIRECTORY
    from verification.cli.security import acting_user
    from verification.pipeline import DEFAULT_REGION
    from verification.security.access import AccessDenied
    from verification.simulation.simulate import by_area

    who = acting_user(user)
    who.require("reports.read")
    if not who.district_wide:
        raise AccessDenied(f"{who.username} may not simulate: a simulation covers every street "
                           "(staff or administrator only)")
    settings = load_settings()
    try:
        percents = [float(p) for p in raise_standard.split(",") if p.strip()]
    except ValueError:
        raise typer.BadParameter(f"--raise-standard 须为逗号分隔的百分比，如 5,7,10 / expected "
                                 f"percents like 5,7,10, got {raise_standard!r}") from None
    inputs = None if write_only and not from_run else simulation.load_run_inputs(settings,
                                                                                 from_run)
    base = simulation.load_scenario(baseline or DEFAULT_DIRECTORY, "基线 / baseline")
    scenarios = [simulation.load_scenario(folder) for folder in parameters or []]
    for percent in percents:
        day = dt.date.fromisoformat(effective) if effective else (
            inputs.as_of if inputs else dt.date.today())
        region = inputs.region if inputs else DEFAULT_REGION
        folder = simulation.write_raised_standard(
            simulation.simulation_home(settings) / "scenarios" / simulation.scenario_name(percent),
            percent, region, day, base.directory)
        typer.echo(f"情景参数 / scenario folder: {folder}")
        scenarios.append(simulation.load_scenario(folder))
    if write_only:
        return
    base_versions, results = simulation.simulate(inputs, base, scenarios)
    command = _command(parameters or [], raise_standard, inputs.run_id, baseline, effective)
    folder = simulation.write_simulation(settings, inputs, base, base_versions, results, command)
    for result in results:
        total = by_area(result.households, []).iloc[0]
        typer.echo(f"{result.scenario.name}: 新增 {total['gain_households']} 户/"
                   f"{total['gain_persons']} 人, 退出 {total['loss_households']} 户, "
                   f"类别变化 {total['change_households']} 户; 月支出变化 "
                   f"{total['monthly_change']:+,.2f} 元, 年 {total['yearly_change']:+,.2f} 元")
    typer.echo(f"测算结果 / simulation → {folder}")


def _command(parameters: list[Path], raise_standard: str, run_id: int, baseline: Path | None,
             effective: str) -> str:
    """The command that gives this result again (the run resolved to its id)."""
    words = ["hedui", "simulate", "--from-run", str(run_id)]
    for folder in parameters:
        words += ["--parameters", str(folder)]
    if raise_standard:
        words += ["--raise-standard", raise_standard]
    if baseline:
        words += ["--baseline", str(baseline)]
    if effective:
        words += ["--effective", effective]
    return " ".join(shlex.quote(word) for word in words)
