"""`hedui linkage`: requests to other verification centres and their answers
(verification/intake/linkage.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from verification.intake.linkage import export_request, import_answer, load_requests

app = typer.Typer(help="纵向联动协查 / vertical linkage: requests to other verification "
                       "centres and their answers.", no_args_is_help=True)

@app.command("export")
def export_cmd(
    centre: str = typer.Option(..., help="the other centre's code, e.g. centre_210102"),
    items: str = typer.Option(..., help="feed kinds asked, comma separated"),
    out: Path = typer.Option(..., help="folder to write the request bundle to"),
    batch_id: int = typer.Option(None, help="ask about every household of this batch"),
    household: list[int] = typer.Option(None, help="household id (repeatable)"),
    actor: str = typer.Option("cli", help="who asks (audited)"),
) -> None:
    """Export an encrypted request bundle; the request stays pending until answered."""
    from verification.batches.check import batch_household_ids
    from verification.config import load_settings

    settings = load_settings()
    ids = list(household or [])
    if batch_id is not None:
        ids += batch_household_ids(settings, batch_id)
    if not ids:
        raise typer.BadParameter("name a --batch-id or at least one --household")
    request = export_request(settings, centre, ids, [i.strip() for i in items.split(",")],
                             out_dir=out, actor=actor,
                             purpose=f"linkage:batch:{batch_id}" if batch_id else "linkage")
    typer.echo(f"{request.request_id}: {len(request.tokens)} persons, "
               f"items {','.join(request.items)} → {request.bundle}")

@app.command("import")
def import_cmd(request_id: str, files: list[Path]) -> None:
    """Take the other centre's answer files in through intake."""
    from verification.config import load_settings

    results = import_answer(load_settings(), request_id, files)
    for r in results:
        typer.echo(f"{r.file} {r.item}: {r.status} {r.reason}".rstrip())
    raise typer.Exit(1 if any(r.status != "accepted" for r in results) else 0)

@app.command("pending")
def pending_cmd() -> None:
    """Requests still unanswered, with their age."""
    from verification.config import load_settings

    today = dt.date.today()
    for r in load_requests(load_settings()):
        if not r.answered:
            typer.echo(f"{r.request_id} {r.centre} asked {r.asked_on} "
                       f"({r.age_days(today)} days): {','.join(r.pending_items)} pending, "
                       f"{len(r.household_ids)} households")

