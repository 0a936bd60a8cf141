"""`hedui`: one command for staff and operators. Thin over the pipeline, like the DAGs.

Errors are printed as messages a person can act on, with exit code 1 — never a traceback
(set HEDUI_DEBUG=1 to see one).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import typer

from connectors.file_drop import app as drop_app
from connectors.linkage import app as linkage_app
from connectors.partner_cli import app as partner_app
from verification.batch_cli import app as batch_app
from verification.batch_cli import submit as submit_batch
from verification.config import load_settings
from verification.flags_cli import app as flags_app
from verification.policy.cli import app as policy_app
from verification.reports.cli import app as reports_app
from verification.security_cli import app as security_app

app = typer.Typer(help="hedui — 居民家庭经济状况核对 / household economic-status verification.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="应用数据库 / the application database.", no_args_is_help=True)
roster_app = typer.Typer(help="在册名单 / the caseload (households and members).",
                         no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(roster_app, name="roster")
app.add_typer(partner_app, name="partner", help="协查部门工具包 / the partner's kit.")
app.add_typer(policy_app, name="policy", help="救助政策参数 / the assistance policy parameters.")
app.add_typer(flags_app, name="flags")
app.add_typer(reports_app, name="reports", help="核对报告 / reports: folders, PDF, e-mail.")
app.add_typer(batch_app, name="batch")
app.command("submit", help="提交核对批次 / submit a batch file (same as `hedui batch submit`).")(
    submit_batch)
app.add_typer(security_app)  # keys, audit, export, purge at the top level
app.add_typer(drop_app, name="drop", help="文件交换 / file-drop transport: take in dropped feeds.")
app.add_typer(linkage_app, name="linkage",
              help="纵向联动协查 / requests to other verification centres.")


def _settings():  # noqa: ANN202
    return load_settings()


@app.command()
def demo(households: int = typer.Option(300, help="模拟家庭数 / households to generate"),
         seed: int = typer.Option(2026, help="随机种子 / generator seed")) -> None:
    """Run the whole flow on a synthetic 浑南区 district through Airflow, then print a summary."""
    # Airflow's per-task INFO lines would bury the summary; AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
    # brings them back.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    from verification.codes import label
    from verification.demo import run_demo

    result = run_demo(_settings(), households=households, seed=seed, say=typer.echo)
    typer.echo("\n核对完成 / review finished")
    typer.echo(f"  家庭数 / households checked: {result.households}")
    for kind, count in sorted(result.flags.items()):
        typer.echo(f"  {label('flags', kind)} {kind}: {count}")
    typer.echo(f"  与预期一致 / matching the ground truth: {result.truth_matched}/"
               f"{result.households}")
    quarantined = sum(f["quarantined"] for f in result.feeds)
    typer.echo(f"  数据隔离行 / rows quarantined with reasons: {quarantined}")
    typer.echo(f"  报告目录 / reports: {result.reports_dir}")
    if result.mismatches:
        typer.echo(f"  不一致 / mismatches: {', '.join(result.mismatches[:10])}", err=True)
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the application database (idempotent)."""
    from verification.storage import upgrade
    from verification.storage.db import current_revision

    settings = _settings()
    upgrade(settings.database_url)
    typer.echo(f"database at revision {current_revision(settings.database_url)}: "
               f"{_safe_url(settings.database_url)}")


@app.command()
def generate(households: int = typer.Option(300, help="家庭数 / households"),
             seed: int = typer.Option(2026, help="随机种子 / seed"),
             as_of: str = typer.Option("2026-11-01", help="基准日 / as-of date"),
             out: Path | None = typer.Option(None, help="输出目录 / folder (default var/district)")
             ) -> None:
    """Generate a synthetic district: caseload, partner feeds and the ground truth."""
    from verification.generator import generate as make
    from verification.generator import write_district

    folder = out or _settings().district_dir
    meta = write_district(make(households, seed, dt.date.fromisoformat(as_of)), folder)
    typer.echo(f"{meta['households']} households, {meta['members']} members, feeds "
               f"{meta['feed_rows']} → {folder}")


@roster_app.command("load")
def roster_load(path: Path) -> None:
    """Validate a caseload/batch file and load it (nothing is loaded if any row fails)."""
    from verification.roster import load_roster

    loaded = load_roster(_settings(), path, actor=os.environ.get("USER", "cli"))
    typer.echo(f"loaded {loaded.households} households, {loaded.members} members")


@roster_app.command("check")
def roster_check(path: Path) -> None:
    """Validate a caseload/batch file and list every row-level error."""
    from verification.roster import validate_roster

    checked = validate_roster(path)
    if len(checked.quarantine):
        for row in checked.quarantine.sort_values("line").itertuples():
            typer.echo(f"{path.name}:{row.line}: {row.field}: {row.message} [{row.reason}]")
        raise typer.Exit(1)
    typer.echo(f"{path.name}: {checked.received} rows, all valid")


@app.command()
def pull(partner: str = typer.Argument(None, help="协查部门代码 / partner code (default: all)")
         ) -> None:
    """Pull new feeds from partner departments now (through their Airflow Connections)."""
    from connectors.hooks import PartnerHook
    from connectors.registry import load_partners
    from verification import pipeline

    settings = _settings()
    partners = load_partners()
    for code in [partner] if partner else list(partners):
        if code not in partners:
            raise typer.BadParameter(f"unknown partner {code}; known: {', '.join(partners)}")
        client = PartnerHook(partners[code].conn_id).get_conn()
        for r in pipeline.pull_partner(settings, code, client):
            typer.echo(f"{code} {r.kind} #{r.sequence}: {r.status} received={r.received} "
                       f"accepted={r.accepted} quarantined={r.quarantined} {r.reason}")


@app.command()
def run(as_of: str = typer.Option(None, help="基准日 / as-of date (default today)"),
        run_key: str = typer.Option(None, help="运行标识 / run key (default review-YYYY-MM)"),
        roster: Path | None = typer.Option(None, help="先载入名单 / load this caseload first")
        ) -> None:
    """Run a review in-process (no scheduler): match, assess, flag, report."""
    from verification import pipeline
    from verification.reports import write_run_reports

    settings = _settings()
    params = {"as_of": as_of or dt.date.today().isoformat(), "run_key": run_key or "",
              "roster_file": str(roster) if roster else ""}
    run_id = pipeline.start_review_from_request(settings, params, "cli", None)
    plan = pipeline.prepare_evidence(settings, run_id)
    with typer.progressbar(plan.shards, label="街道 / streets") as shards:
        dirs = [pipeline.review_shard(settings, run_id, shard) for shard in shards]
    counts = pipeline.finish_review(settings, run_id, dirs)
    folder = write_run_reports(settings, run_id)
    typer.echo(f"run {run_id}: {counts}; reports → {folder}")


@app.command()
def report(run_id: int = typer.Argument(..., help="运行编号 / run id"),
           user: str = typer.Option(None, help="操作人 / acting user (default $HEDUI_USER)")
           ) -> None:
    """(Re)write the reports of a run (every jurisdiction: staff and administrators only)."""
    from verification.access import AccessDenied
    from verification.reports import write_run_reports
    from verification.security_cli import acting_user

    who = acting_user(user)
    who.require("reports.read")
    if not who.district_wide:
        raise AccessDenied(f"{who.username} may read only their own jurisdiction's reports; "
                           "writing every street's reports needs staff or administrator")
    typer.echo(str(write_run_reports(_settings(), run_id)))


@app.command()
def status(run_id: int = typer.Argument(None, help="运行编号 / run id (default: all runs)")
           ) -> None:
    """Feeds received and runs with their stage, counts and report folder."""
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Feed, Run

    settings = _settings()
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
            if r.reports_dir:
                typer.echo(f"    reports: {r.reports_dir}")


@app.command("partner-server")
def partner_server(port: int = typer.Option(8765, help="端口 / loopback port")) -> None:
    """Serve the synthetic district's packed feeds on loopback (for `make up`)."""
    import time

    from connectors.demo_exchange import connection_env, ensure_test_keys, start_demo_server

    settings = _settings()
    ensure_test_keys(settings)
    server = start_demo_server(settings, settings.district_dir, port=port)
    typer.echo(f"serving on 127.0.0.1:{server.port}; connections:")
    for key in connection_env(server.port):
        typer.echo(f"  {key}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    from verification.airflow_env import configure
    from verification.logmask import install_log_masking

    configure(load_settings())
    install_log_masking()
    if os.environ.get("HEDUI_DEBUG"):
        app()
        return
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as err:  # every failure becomes a message, not a traceback
        from click import ClickException

        if isinstance(err, ClickException):
            err.show()
            sys.exit(err.exit_code)
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
