"""feed_recheck: 动态复核 — as soon as a partner's feed is accepted, re-check only the households
whose evidence changed, and flag only where the outcome changed.

Scheduled on the feed Assets (``hedui://feeds/<kind>``, updated by the partner DAGs only for
accepted feeds): any one kind's update starts a run. The task diffs every kind whose newest
accepted feed the current outcome does not rest on yet against the feed it does rest on, so
events that arrive together (or while a run is going: one run at a time) are all covered by
the next run. The monthly full review (`dynamic_review`) keeps its own schedule. Logic lives in
verification/recheck/service.py (as `hedui recheck`); this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetAny, Param, dag, task

from connectors.registry import delivered_kinds, feed_asset_name
from verification.alerts import on_task_failure
from verification.security.logmask import install_log_masking

install_log_masking()


@dag(
    dag_id="feed_recheck",
    schedule=AssetAny(*(Asset(feed_asset_name(kind)) for kind in delivered_kinds())),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    # one at a time: each run's outcome is the next one's starting point
    max_active_runs=1,
    tags=["hedui", "review", "recheck"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1),
                  "on_failure_callback": on_task_failure},
    params={
        "kind": Param("", type="string", title="数据类别 / Feed kind",
                      description="留空则复核所有有新数据的类别 / empty: every kind with a newer "
                                  "feed"),
        "as_of": Param("", type="string", title="核对基准日 / As-of date",
                       description="YYYY-MM-DD；留空则取今日 / empty: today"),
    },
)
def feed_recheck():
    @task
    def recheck(params: dict | None = None) -> dict:
        import datetime as dt

        from verification.config import load_settings
        from verification.recheck import recheck as run_recheck

        params = params or {}
        as_of = dt.date.fromisoformat(params["as_of"]) if params.get("as_of") else None
        return run_recheck(load_settings(), params.get("kind") or None, as_of).summary()

    @task
    def write_reports(outcome: dict) -> str:
        from verification.config import load_settings
        from verification.reports import write_run_reports

        if outcome["run_id"] is None:  # nothing newer than the current outcome
            return ""
        return str(write_run_reports(load_settings(), outcome["run_id"]))

    write_reports(recheck())


feed_recheck()
