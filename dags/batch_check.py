"""batch_check: check a file of applicant households handed in by verification-centre staff
(批量核对), and write a result and a 核对报告 for every household and a report for the batch.

**Starting it**
- *Trigger with the form* (Chinese titles): the batch file's path on the shared volume, the
  assistance category, the requester and notes; `hedui batch submit FILE` does the same through the
  REST API.
- *Drop the file into the inbox* (`$HEDUI_HOME/inbox/`): an AssetWatcher runs
  `verification.batches.inbox_trigger.BatchInboxTrigger` in the triggerer; it claims the file and
  updates
  the Asset `hedui://inbox/batches`, on which this DAG is scheduled. Files landing together are
  checked together, each on its own branch of the mapped task group.

**Stages** (per batch; `hedui batch status <code>` shows them): *validate* the whole file first —
any row error fails the batch with every error listed (line, field, reason) before a partner is
queried or anything is loaded; *load* households and members; *collect evidence* for the batch's
members from the latest accepted partner feeds (the versions are recorded on the run); *assess*
and *flag*; *report*: per-street flag reports and the batch report under
`$HEDUI_HOME/inbox/batches/<code>/report/`.

Every task is idempotent: the batch code comes from the file's digest and category, its run key
is `batch-<code>`, and rerunning any task replaces its own output. Logic lives in
verification/batches/check.py; this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import (
    Asset,
    AssetWatcher,
    Param,
    dag,
    get_current_context,
    task,
    task_group,
)

from verification.alerts import on_task_failure
from verification.batches.inbox_trigger import BatchInboxTrigger
from verification.codes import vocabulary
from verification.config import load_settings
from verification.security.logmask import install_log_masking

# Resident ID numbers in any log line of these tasks are masked (stdlib only: cheap to parse).
install_log_masking()

INBOX_ASSET = Asset(
    "hedui://inbox/batches",
    watchers=[AssetWatcher(name="hedui_batch_inbox", trigger=BatchInboxTrigger(
        directory=str(load_settings().home / "inbox"), poke_interval=10.0))],
)
_CATEGORIES = {code: spec["zh"] for code, spec in vocabulary()["categories"].items()
               if code != "none"}


# The trigger form; its keys are the only ones a run may be given (checked in receive_batches).
BATCH_PARAMS = {
    "batch_file": Param("", type="string", pattern=r"^(/.+)?$",
                        title="批次文件路径 / Batch file",
                        description="服务器上批次文件（CSV，批次文件格式 schemas/batch.json）的"
                                    "完整路径；经收件箱自动触发时留空 / full path of the "
                                    "batch file on the shared volume; empty when started by "
                                    "the inbox"),
    "category": Param("dibao", type="string", enum=list(_CATEGORIES),
                      values_display=_CATEGORIES, title="救助类别 / Assistance category",
                      description="申请的救助类别 / the assistance applied for"),
    "requester": Param("", type="string", maxLength=100, title="提交人 / Submitted by",
                       description="提交核对的工作人员或单位 / the staff member or office "
                                   "submitting the check"),
    "notes": Param("", type="string", maxLength=2000, title="备注 / Notes",
                   description="随批次保存，写入批次报告 / kept with the batch and its report"),
    # format "date" is checked by Airflow at trigger time (an impossible date is refused
    # with HTTP 400 before a run exists); null or empty: today
    "as_of": Param(None, type=["null", "string"], format="date",
                   pattern=r"^(\d{4}-\d{2}-\d{2})?$", title="核对基准日 / As-of date",
                   description="YYYY-MM-DD；留空则为今天 / empty: today"),
    "policy_dir": Param("", type="string", pattern=r"^(/.+)?$",
                        title="本地政策目录 / Policy folder",
                        description="覆盖随附参数的本地政策目录；留空则用 HEDUI_POLICY_DIR / "
                                    "the bureau's policy folder over the shipped parameters; "
                                    "empty: HEDUI_POLICY_DIR"),
}


def _refuse_bad_input(conf: dict, run_id: str, keys: tuple[str, ...]) -> None:
    """Input no retry can fix fails the first task at once (no retries), with the reason on
    the batch where the portal and `hedui batch status` show it."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from verification.batches.check import BadTrigger, check_trigger

    try:  # as-of dates are local (Asia/Shanghai) days
        check_trigger(conf, dt.datetime.now(ZoneInfo("Asia/Shanghai")).date(), keys)
    except BadTrigger as bad:
        _refuse(str(bad), run_id, conf.get("batch_file") or "")


def _refuse(reason: str, run_id: str, batch_file: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from verification.batches.check import refuse_run

    refuse_run(load_settings(), run_id, batch_file, reason)
    raise AirflowFailException(reason)


@dag(
    dag_id="batch_check",
    schedule=[INBOX_ASSET],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=2,
    tags=["hedui", "batch"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30),
                  "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=10),
                  "on_failure_callback": on_task_failure},
    params=BATCH_PARAMS,
)
def batch_check():
    @task
    def receive_batches() -> list[int]:
        """Register the batch file(s) of this run: from the form, or from the inbox events."""
        from verification.batches.check import register_batch

        context = get_current_context()
        params, run_id = dict(context["params"]), context["dag_run"].run_id
        # the known keys are the form's (the run's params also hold whatever conf brought)
        _refuse_bad_input(dict(context["dag_run"].conf or {}), run_id, tuple(BATCH_PARAMS))
        paths = [params["batch_file"]] if params.get("batch_file") else [
            event.extra["payload"]["path"]
            for events in context["triggering_asset_events"].values() for event in events
            if (event.extra or {}).get("payload", {}).get("path")]
        if not paths:
            _refuse("未指定批次文件：请填写“批次文件路径”或把文件放入收件箱 / no batch file: "
                    "fill in 批次文件路径 or drop the file into the inbox", run_id, "")
        return [register_batch(load_settings(), path, category=params["category"],
                               requester=params.get("requester") or "inbox",
                               notes=params.get("notes") or "", dag_run_id=run_id).id
                for path in paths]

    @task_group
    def check_batch(batch_id: int) -> None:
        @task
        def validate(batch_id: int) -> int:
            from airflow.sdk.exceptions import AirflowFailException

            from verification.batches.check import BatchInvalid, stage_of, validate_batch

            try:
                with stage_of(load_settings(), batch_id):
                    validate_batch(load_settings(), batch_id)
            except BatchInvalid as invalid:  # a retry cannot fix the file: fail at once
                raise AirflowFailException(str(invalid)) from None
            return batch_id

        @task
        def load_households(batch_id: int) -> int:
            from verification.batches.check import load_batch, stage_of

            with stage_of(load_settings(), batch_id):
                load_batch(load_settings(), batch_id)
            return batch_id

        @task
        def collect_evidence(batch_id: int) -> dict[str, int]:
            import datetime as dt

            from verification.assessment.policy import use_overlay
            from verification.batches.check import collect_evidence as collect
            from verification.batches.check import stage_of

            params = get_current_context()["params"]
            as_of = params.get("as_of")
            with stage_of(load_settings(), batch_id):
                use_overlay(params.get("policy_dir") or None)
                run_id = collect(load_settings(), batch_id,
                                 dt.date.fromisoformat(as_of) if as_of else None)
            return {"batch_id": batch_id, "run_id": run_id}

        @task
        def assess_and_flag(ids: dict[str, int]) -> dict[str, int]:
            from verification.assessment.policy import use_overlay
            from verification.batches.check import assess_batch, stage_of

            with stage_of(load_settings(), ids["batch_id"]):
                use_overlay(get_current_context()["params"].get("policy_dir") or None)
                assess_batch(load_settings(), ids["batch_id"], ids["run_id"])
            return ids

        @task
        def write_reports(ids: dict[str, int]) -> str:
            from verification.assessment.policy import use_overlay
            from verification.batches.check import stage_of, write_batch_reports

            with stage_of(load_settings(), ids["batch_id"]):
                use_overlay(get_current_context()["params"].get("policy_dir") or None)
                out = write_batch_reports(load_settings(), ids["batch_id"], ids["run_id"])
            return str(out)

        write_reports(assess_and_flag(collect_evidence(load_households(validate(batch_id)))))

    check_batch.expand(batch_id=receive_batches())


batch_check()
