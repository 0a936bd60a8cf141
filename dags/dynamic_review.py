"""dynamic_review: re-check recipients, applicants and the monitored group against the latest
accepted partner feeds, and flag who should be added, kept or removed (应保尽保、应退必退).

Runs monthly (the 5th, 06:00 Asia/Shanghai), and also as soon as every feed kind has a new
accepted delivery (the partner DAGs update one Asset per kind, only for accepted feeds).
Households are split into shards by street (a large street into parts of at most
HEDUI_SHARD_HOUSEHOLDS households) and assessed in parallel (dynamic task mapping), then
gathered; the whole run is idempotent per run key. Logic lives in verification/pipeline.py;
this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import (
    Asset,
    AssetAll,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

from connectors.registry import delivered_kinds, feed_asset_name
from verification.alerts import on_task_failure
from verification.security.logmask import install_log_masking

# Resident ID numbers in any log line of these tasks are masked (stdlib only: cheap to parse).
install_log_masking()


@dag(
    dag_id="dynamic_review",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 5 * *", timezone="Asia/Shanghai"),
        assets=AssetAll(*(Asset(feed_asset_name(kind)) for kind in delivered_kinds())),
    ),
    # No start_date: the first scheduled run is the next 5th, so unpausing (or deploying) does not
    # start a review of a past month by itself; trigger one by hand when needed.
    catchup=False,
    max_active_runs=1,
    tags=["hedui", "review"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1),
                  "on_failure_callback": on_task_failure},
    params={
        "as_of": Param("", type="string", title="核对基准日 / As-of date",
                       description="YYYY-MM-DD；留空则取本次运行日期 / empty: the run's date"),
        "run_key": Param("", type="string", title="运行标识 / Run key",
                         description="相同标识重复运行将覆盖上次结果 / same key replaces results"),
        "roster_file": Param("", type="string", title="在册名单文件 / Caseload file",
                             description="可选：先载入此名单（批次文件格式）/ optional"),
    },
)
def dynamic_review():
    @task
    def start_run() -> int:
        from verification import pipeline
        from verification.config import load_settings

        context = get_current_context()
        return pipeline.start_review_from_request(
            load_settings(), dict(context["params"]), context["dag_run"].run_id,
            context.get("logical_date"))

    @task
    def match_evidence(review_id: int) -> list[str]:
        from verification import pipeline
        from verification.config import load_settings

        return pipeline.prepare_evidence(load_settings(), review_id).shards

    @task(max_active_tis_per_dag=2)
    def review_street(review_id: int, shard: str) -> str:
        from verification import pipeline
        from verification.config import load_settings

        return pipeline.review_shard(load_settings(), review_id, shard)

    @task
    def record_flags(review_id: int, shard_dirs: list[str]) -> dict[str, int]:
        from verification import pipeline
        from verification.config import load_settings

        # index by length: iterating the lazy XCom sequence probes one past the end (a 404)
        dirs = [shard_dirs[i] for i in range(len(shard_dirs))]
        return pipeline.finish_review(load_settings(), review_id, dirs)

    @task
    def write_reports(review_id: int, counts: dict[str, int]) -> str:
        from verification.config import load_settings
        from verification.reports import write_run_reports

        return str(write_run_reports(load_settings(), review_id))

    review_id = start_run()
    shards = match_evidence(review_id)
    shard_dirs = review_street.partial(review_id=review_id).expand(shard=shards)
    write_reports(review_id, record_flags(review_id, shard_dirs))


dynamic_review()
