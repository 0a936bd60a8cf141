"""`hedui reports`: the report folders a user may receive, one household's 核对报告 on demand,
PDFs of the summaries, e-mail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from verification.config import load_settings
from verification.security.access import AccessDenied, principal
from verification.storage import session_scope
from verification.storage.models import Run

app = typer.Typer(help="核对报告 / reports: folders, one household's report, PDF, e-mail.",
                  no_args_is_help=True, add_completion=False)
RunId = Annotated[int, typer.Argument(help="运行编号 / run id")]


def _run_dir(run_id: int) -> Path:
    settings = load_settings()
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        if run is None or not run.reports_dir:
            typer.echo(f"错误 / error: run {run_id} has no reports; run `hedui report "
                       f"{run_id}` first", err=True)
            raise typer.Exit(1)
        return settings.at_home(run.reports_dir)


@app.command("folders")
def folders(run_id: RunId, user: Annotated[str, typer.Option(
        "--user", envvar="HEDUI_USER", help="登录名 / user (or HEDUI_USER)")]) -> None:
    """The report folders of a run that this user may receive (their jurisdiction only)."""
    from verification.reports import folders_for

    try:
        for folder in folders_for(_run_dir(run_id), principal(user)):
            typer.echo(str(folder))
    except AccessDenied as err:
        typer.echo(f"错误 / error: {err}", err=True)
        raise typer.Exit(1) from None


@app.command("pdf")
def pdf(run_id: RunId) -> None:
    """Print every summary.html of the run to summary.pdf beside it (headless Chromium)."""
    from verification.reports.browser import BrowserMissing, print_pdf

    pages = sorted(_run_dir(run_id).rglob("summary.html"))
    try:
        for page in pages:
            typer.echo(str(print_pdf(page, page.with_suffix(".pdf"))))
    except BrowserMissing as err:
        typer.echo(f"错误 / error: {err}", err=True)
        raise typer.Exit(1) from None


@app.command("household")
def household(run_id: RunId,
              household_code: Annotated[str, typer.Argument(help="家庭编号 / household code")],
              out: Annotated[Path, typer.Option("--out", help="写入路径 / file to write")],
              user: Annotated[str, typer.Option(
                  "--user", envvar="HEDUI_USER", help="登录名 / user (or HEDUI_USER)")]) -> None:
    """One household's 核对报告 of a run, rendered now from the run's evidence (any household
    of the run, not only those written with the reports), for a user whose jurisdiction holds
    it."""
    from verification.flags import actions as flag_actions
    from verification.reports import household_report as reports

    settings = load_settings()
    try:
        flag_id = reports.flag_of_household(settings, run_id, household_code)
        flag_actions.authorise_flag(settings, principal(user), flag_id, "report.viewed")
        page = reports.household_report(settings, run_id, flag_id)
    except (AccessDenied, reports.ReportUnavailable) as err:
        typer.echo(f"错误 / error: {err}", err=True)
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, "utf-8")
    typer.echo(str(out))


@app.command("send")
def send(run_id: RunId, config: Annotated[Path | None, typer.Option(
        help="投递配置 / delivery file (default verification/reports/delivery.yaml)")] = None
         ) -> None:
    """E-mail each configured street its report files through Airflow's SMTP connection."""
    from verification.reports.delivery import load_delivery, send_run_reports

    sent = send_run_reports(load_settings(), run_id, load_delivery(config))
    for item in sent:
        typer.echo(f"{item['street']}: {item['recipients']} recipients, "
                   f"{', '.join(item['files'])}")
    typer.echo(f"已发送 {len(sent)} 个街道 / sent to {len(sent)} streets")
