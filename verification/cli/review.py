"""`hedui pull`, `run`, `report`, `status`: the periodic review, in-process (no scheduler)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from verification.cli._policy_dir import POLICY_DIR_OPTION, apply_policy_dir
from verification.config import load_settings

app = typer.Typer()


@app.command()
def pull(partner: str = typer.Argument(None, help="协查部门代码 / partner code (default: all)")
         ) -> None:
    """Pull new feeds from partner departments now (through their Airflow Connections)."""
    from connectors.hooks import PartnerHook
    from connectors.registry import load_partners
    from verification import pipeline

    settings = load_settings()
    partners = load_partners()
    rejected = 0
    for code in [partner] if partner else list(partners):
        if code not in partners:
            raise typer.BadParameter(f"unknown partner {code}; known: {', '.join(partners)}")
        client = PartnerHook(partners[code].conn_id).get_conn()
        for r in pipeline.pull_partner(settings, code, client):
            typer.echo(f"{code} {r.kind} #{r.sequence}: {r.status} received={r.received} "
                       f"accepted={r.accepted} quarantined={r.quarantined} {r.reason}")
            rejected += r.status == "rejected"
    if rejected:  # a script or an operator must see it in the exit code, not only in the log
        typer.echo(f"{rejected} 批数据被拒收（原因见上，已告警）/ {rejected} feed(s) rejected "
                   "(reasons above, alerts raised)", err=True)
        raise typer.Exit(1)


@app.command()
def run(as_of: str = typer.Option(None, help="基准日 / as-of date (default today)"),
        run_key: str = typer.Option(None, help="运行标识 / run key (default review-YYYY-MM)"),
        roster: Path | None = typer.Option(None, help="先载入名单 / load this caseload first"),
        policy_dir: Path | None = POLICY_DIR_OPTION,
        ) -> None:
    """Run a review in-process (no scheduler): match, assess, flag, report."""
    from verification import pipeline
    from verification.locks import exclusive
    from verification.reports import write_run_reports

    apply_policy_dir(policy_dir)
    settings = load_settings()
    params = {"as_of": as_of or dt.date.today().isoformat(), "run_key": run_key or "",
              "roster_file": str(roster) if roster else ""}
    key = params["run_key"] or f"review-{params['as_of'][:7]}"
    with exclusive(settings.home, f"run-{key}", f"同一运行标识的核对 review {key}"):
        run_id = pipeline.start_review_from_request(settings, params, "cli", None)
        try:
            plan = pipeline.prepare_evidence(settings, run_id)
            with typer.progressbar(plan.shards, label="街道分片 / street shards") as shards:
                dirs = [pipeline.review_shard(settings, run_id, shard) for shard in shards]
            counts = pipeline.finish_review(settings, run_id, dirs)
        except BaseException as err:  # a disk full, ^C: the run says it failed, not "running"
            pipeline.mark_run_failed(settings, run_id, err)
            raise
        folder = write_run_reports(settings, run_id)
    typer.echo(f"run {run_id}: {counts}; reports → {folder}")


@app.command()
def report(run_id: int = typer.Argument(..., help="运行编号 / run id"),
           user: str = typer.Option(None, help="操作人 / acting user (default $HEDUI_USER)")
           ) -> None:
    """(Re)write the reports of a run (every jurisdiction: staff and administrators only)."""
    from verification.cli.security import acting_user
    from verification.reports import write_run_reports

    who = acting_user(user)
    who.require("reports.read")
    who.require_district_wide("写出全部街道的报告")
    settings = load_settings()
    _require_finished_run(settings, run_id)
    typer.echo(str(write_run_reports(settings, run_id)))


def _require_finished_run(settings, run_id: int) -> None:  # noqa: ANN001
    """A run that does not exist has no reports to write: said plainly (it was an attribute
    error of None)."""
    from verification.storage import session_scope
    from verification.storage.models import Run

    with session_scope(settings.database_url) as session:
        if session.get(Run, run_id) is None:
            raise LookupError(f"没有运行 {run_id} / no run {run_id} (hedui status lists them)")


@app.command()
def status(run_id: int = typer.Argument(None, help="运行编号 / run id (default: all runs)")
           ) -> None:
    """Feeds received and runs with their stage, counts and report folder."""
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Feed, Run

    settings = load_settings()
    if settings.using_test_token_key:
        typer.echo("warning: HEDUI_TOKEN_KEY is the built-in TEST key; set a real one in "
                   "production", err=True)
    with session_scope(settings.database_url) as session:
        if run_id is None:
            for f in session.scalars(select(Feed).order_by(Feed.id)):
                typer.echo(f"feed {f.id}: {f.partner.code}/{f.kind} #{f.sequence} {f.status} "
                           f"received={f.rows_received} accepted={f.rows_accepted} "
                           f"quarantined={f.rows_quarantined} {f.reason}")
        query = select(Run).order_by(Run.id)
        if run_id is not None:
            query = query.where(Run.id == run_id)
        runs = session.scalars(query).all()
        if run_id is not None and not runs:
            raise LookupError(f"no run {run_id}")
        for r in runs:
            typer.echo(f"run {r.id} [{r.run_key}] as of {r.as_of}: {r.status}/{r.stage} "
                       f"households={r.households} flags={r.counts} policy={r.policy_version}")
            unresolved = {kind: v["unresolved"] for kind, v in (r.feed_versions or {}).items()
                          if v.get("unresolved")}
            if unresolved:
                typer.echo(f"    未决身份记录 / unresolved records (no flag): {unresolved}")
            changed = {kind: v["diff"]["persons_changed"]
                       for kind, v in (r.feed_versions or {}).items() if v.get("diff")}
            if r.kind == "recheck":
                typer.echo(f"    动态复核 / re-check: 变化人员 persons changed {changed}")
            if r.reports_dir:
                typer.echo(f"    报告 / reports: {settings.at_home(r.reports_dir)}")


