"""`hedui batch …`: staff submit a batch file and follow it.

    hedui batch submit FILE [--category dibao] [--requester …] [--notes …] [--local]
    hedui batch status BATCH

`submit` validates the file here first and lists every row error (line, field, reason); nothing
is sent while any row fails. Then, if an Airflow API server is configured (HEDUI_AIRFLOW_URL,
HEDUI_AIRFLOW_USER, HEDUI_AIRFLOW_PASSWORD), the file is stored in the batch inbox on the shared
volume (HEDUI_HOME) and the batch_check DAG is triggered through the REST API; with ``--local``
every stage runs in this process instead.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import typer

from verification.cli._policy_dir import POLICY_DIR_OPTION, apply_policy_dir
from verification.config import load_settings

app = typer.Typer(help="批量核对 / batch checks: submit a file, follow its progress.",
                  no_args_is_help=True, add_completion=False)


@app.command()
def submit(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="批次文件 / batch file"),
    category: str = typer.Option("dibao", help="救助类别 / dibao, edge, rigid or tekun"),
    requester: str = typer.Option(None, help="提交人 / who submits (default: $USER)"),
    notes: str = typer.Option("", help="备注 / notes kept with the batch"),
    as_of: str = typer.Option(None, help="核对基准日 / as-of date YYYY-MM-DD (default today)"),
    local: bool = typer.Option(False, "--local", help="在本进程中运行 / run in this process"),
    policy_dir: Path | None = POLICY_DIR_OPTION,
) -> None:
    """Validate a batch file, then check it through Airflow (or in-process with --local)."""
    from verification.batches.airflow_api import AirflowApiConfig
    from verification.batches.check import CATEGORIES

    apply_policy_dir(policy_dir)
    if category not in CATEGORIES:
        raise typer.BadParameter(f"{category!r}: one of {', '.join(CATEGORIES)}",
                                 param_hint="--category")
    checked = _checked(file)
    if len(checked.quarantine):
        _print_row_errors(file, checked)
        raise typer.Exit(1)
    typer.echo(f"{file.name}：{checked.received} 行，全部通过校验 / {checked.received} rows, "
               "all valid")
    requester = requester or os.environ.get("USER", "")
    try:
        when = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise typer.BadParameter(f"“{as_of}”不是有效日期，应写成 2026-11-01 / not a date: "
                                 "write it as 2026-11-01", param_hint="--as-of") from None
    if local:
        _submit_locally(file, category, requester, notes, when)
        return
    config = AirflowApiConfig.from_env()
    if config is None:
        raise typer.BadParameter("no Airflow API server is configured (set HEDUI_AIRFLOW_URL, "
                                 "HEDUI_AIRFLOW_USER, HEDUI_AIRFLOW_PASSWORD) — or use --local")
    _submit_to_airflow(config, file, category, requester, notes, as_of or "",
                       str(policy_dir.resolve()) if policy_dir else "")


def _checked(file: Path):  # noqa: ANN202 (roster.Validated)
    """The file against the batch-file contract; a file that cannot be read ends here in one
    line (Chinese, English beside), not in a traceback."""
    from connectors.decoding import DecodeError
    from verification.intake.roster import validate_roster
    from verification.portal.row_errors import explain_file_problem

    try:
        return validate_roster(file)
    except (DecodeError, ValueError, KeyError) as err:
        message = str(err).splitlines()[0][:300]
        explained = explain_file_problem(message, "zh")
        typer.echo(f"{file.name}：{explained}" + ("" if explained == message else f" / {message}"),
                   err=True)
        raise typer.Exit(1) from None


def _print_row_errors(file: Path, checked) -> None:  # noqa: ANN001
    """Every problem: line, household code, field and what is wrong, in Chinese and English."""
    from verification.intake.roster import read_batch_file
    from verification.portal.row_errors import error_lines

    for row in error_lines(read_batch_file(file), checked.quarantine).itertuples():
        typer.echo(f"{file.name}:{row.line}: 家庭 {row.household_code or '—'} "
                   f"「{row.field_title}」{row.message} / {row.field}: {row.message_en}",
                   err=True)
    bad = checked.quarantine["line"].nunique()
    typer.echo(f"{checked.received} 行中有 {bad} 行不符合批次文件格式，请修改后重新提交"
               f"（未发送任何数据） / {bad} of {checked.received} rows fail the batch-file "
               "contract; fix them and submit again (nothing was sent)", err=True)


def _submit_locally(file: Path, category: str, requester: str, notes: str,
                    as_of: dt.date | None) -> None:
    from verification.batches.check import BatchInvalid, run_batch_locally, user_message

    try:
        status = run_batch_locally(load_settings(), file, category=category,
                                   requester=requester, notes=notes, as_of=as_of)
    except BatchInvalid:
        raise
    except Exception as err:  # noqa: BLE001 (recorded on the batch; the user gets the message)
        typer.echo(f"批次失败 / batch failed: {user_message(err)}", err=True)
        raise typer.Exit(1) from None
    _print_status(status)


def _submit_to_airflow(config, file: Path, category: str, requester: str,  # noqa: ANN001
                       notes: str, as_of: str, policy_dir: str = "") -> None:
    """Log in and find the DAG first, register the batch only then; a trigger that fails
    after that marks the batch failed with the reason (no batch waits for a run that never
    comes)."""
    from verification.batches.airflow_api import AirflowApi, AirflowApiError
    from verification.batches.check import register_batch, submission_failed, submission_started

    settings = load_settings()
    api = AirflowApi(config)
    try:
        api.login()
        api.dag("batch_check")
    except AirflowApiError as err:
        typer.echo(f"未提交，未登记批次 / not submitted, no batch registered: {err}", err=True)
        raise typer.Exit(1) from err
    ref = register_batch(settings, file, category=category, requester=requester, notes=notes)
    conf = {"batch_file": str(ref.stored_path), "category": category, "requester": requester,
            "notes": notes, "as_of": as_of or None,  # null: today (the DAG's date param)
            "policy_dir": policy_dir}
    try:
        run = api.trigger("batch_check", conf)
    except AirflowApiError as err:
        submission_failed(settings, ref.id, str(err))
        typer.echo(f"批次 {ref.code} 未能启动，已标记为失败 / batch {ref.code} could not be "
                   f"started and is marked failed: {err}", err=True)
        raise typer.Exit(1) from err
    submission_started(settings, ref.id, run["dag_run_id"])
    if run.get("dag_was_paused"):
        typer.echo("调度平台中的 batch_check 原处于暂停状态，已恢复 / batch_check was paused in "
                   "Airflow and has been unpaused")
    typer.echo(f"batch {ref.code} submitted: batch_check run {run['dag_run_id']} "
               f"({run['state']})")
    typer.echo(f"follow it with: hedui batch status {ref.code}")


@app.command()
def status(batch: str = typer.Argument(..., help="批次编号 / batch code (or its start, or id)")
           ) -> None:
    """Where a batch is: stages done, counts, Airflow run state, and where the results are."""
    from verification.batches.check import batch_status

    found = batch_status(load_settings(), batch)
    _print_status(found)
    _print_airflow_state(found)


def _print_status(found: dict) -> None:
    from verification.codes import label
    from verification.localtime import to_local
    from verification.portal.i18n import text

    status, stage = found["status"], found["stage"]
    typer.echo(f"batch {found['code']} ({found['file']}, {label('categories', found['category'])})"
               f": {text('batch.status.' + status, 'zh')} {status} — stage {stage}"
               f"（{_stage_zh(stage)}）")
    typer.echo(f"  行数 rows {found['rows']}，行错误 row errors {found['errors']}，"
               f"家庭 households {found['households']}")
    for step in found["progress"]:
        extra = {k: v for k, v in step.items() if k not in ("stage", "at", "error")}
        typer.echo(f"  {to_local(step['at'])}  {_stage_zh(step['stage'])} {step['stage']:<10} "
                   f"{_short(extra)}".rstrip())
    if status == "failed" and found["progress"]:
        typer.echo(f"  原因 / reason: {found['progress'][-1].get('error', '')}")
    if found["flags"]:
        flags = ", ".join(f"{label('flags', k)} {k} {v}" for k, v in sorted(found["flags"].items()))
        typer.echo(f"  flags: {flags}")
    if found["reports_dir"]:
        typer.echo(f"  报告 reports: {found['reports_dir']}")
    elif status == "invalid":
        typer.echo(f"  错误清单 errors: {Path(found['stored_path']).parent / 'errors.csv'}")


def _stage_zh(stage: str) -> str:
    from verification.portal.i18n import text

    return text(f"batch.status.{stage}", "zh")


def _short(extra: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in extra.items())[:160]


def _print_airflow_state(found: dict) -> None:
    from verification.batches.airflow_api import AirflowApi, AirflowApiConfig, AirflowApiError
    from verification.portal.i18n import airflow_state

    config = AirflowApiConfig.from_env()
    if config is None or not found["dag_run_id"]:
        return
    try:
        run = AirflowApi(config, timeout=10).dag_run("batch_check", found["dag_run_id"])
        typer.echo(f"  调度运行 airflow run {found['dag_run_id']}: "
                   f"{airflow_state(run['state'], 'zh')} {run['state']}")
    except (AirflowApiError, OSError) as err:
        typer.echo(f"  调度运行 airflow run {found['dag_run_id']}: 状态暂不可知 / state "
                   f"unavailable ({err})", err=True)
