"""`hedui roster`: check and load the caseload (households and members)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from verification.config import load_settings

app = typer.Typer(help="在册名单 / the caseload (households and members).", no_args_is_help=True)


@app.command("load")
def roster_load(path: Path) -> None:
    """Validate a caseload/batch file and load it (nothing is loaded if any row fails)."""
    from verification.intake.roster import RosterInvalid, load_roster

    try:
        loaded = load_roster(load_settings(), path, actor=os.environ.get("USER", "cli"))
    except RosterInvalid as invalid:  # every failing row, as `roster check` lists them
        _print_problems(path, invalid.errors)
        typer.echo(str(invalid), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"已载入 {loaded.households} 户、{loaded.members} 人 / loaded {loaded.households} "
               f"households, {loaded.members} members")


@app.command("check")
def roster_check(path: Path) -> None:
    """Validate a caseload/batch file and list every row-level error."""
    from verification.intake.roster import validate_roster

    checked = validate_roster(path)
    if len(checked.quarantine):
        _print_problems(path, checked.quarantine)
        raise typer.Exit(1)
    typer.echo(f"{path.name}: {checked.received} 行，全部有效 / {checked.received} rows, all valid")


def _print_problems(path: Path, problems) -> None:  # noqa: ANN001 (a quarantine frame)
    """Each problem with its line, household code and field, in Chinese with English beside
    (as a batch's errors.csv); as the validator words them if the file cannot be read again."""
    from verification.intake.roster import read_batch_file
    from verification.portal.row_errors import error_line, error_lines

    try:
        rows = error_lines(read_batch_file(path), problems)
    except Exception:  # noqa: BLE001 (an unreadable file: its problems are still listed)
        rows = problems.sort_values("line")
    for row in rows.itertuples():
        typer.echo(f"{path.name}:{row.line}: {error_line(row)} [{row.reason}]")


