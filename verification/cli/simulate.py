"""`hedui simulate`: what a policy change would cost and whom it reaches (政策测算).

    hedui simulate --raise-standard 5,7,10              shipped parameters, 低保 standard +5/7/10 %
    hedui simulate --parameters my-2027/ --from-run 12  a bureau's own parameter folder
"""

from __future__ import annotations

import datetime as dt
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
    from verification.cli.security import acting_user
    from verification.simulation import service
    from verification.simulation.scenarios import ScenarioError

    who = acting_user(user)
    who.require("reports.read")
    who.require_district_wide("政策测算")
    try:
        percents = service.parse_percents(raise_standard)
        day = dt.date.fromisoformat(effective) if effective else None
    except (ScenarioError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    outcome = service.run_simulation(load_settings(), service.Request(
        parameters or [], percents, from_run, baseline, day, write_only))
    for folder in outcome.scenario_folders:
        typer.echo(f"情景参数 / scenario folder: {folder}")
    for line in service.summary_lines(outcome):
        typer.echo(line)
    if outcome.folder:
        typer.echo(f"测算结果 / simulation → {outcome.folder}")
