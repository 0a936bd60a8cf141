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
    from verification.intake.roster import load_roster

    loaded = load_roster(load_settings(), path, actor=os.environ.get("USER", "cli"))
    typer.echo(f"loaded {loaded.households} households, {loaded.members} members")


@app.command("check")
def roster_check(path: Path) -> None:
    """Validate a caseload/batch file and list every row-level error."""
    from verification.intake.roster import validate_roster

    checked = validate_roster(path)
    if len(checked.quarantine):
        for row in checked.quarantine.sort_values("line").itertuples():
            typer.echo(f"{path.name}:{row.line}: {row.field}: {row.message} [{row.reason}]")
        raise typer.Exit(1)
    typer.echo(f"{path.name}: {checked.received} rows, all valid")


