"""housekeeping: daily operator checks and clean-ups (日常运维).

- **interrupted_intake** — takes in every feed a killed pull left `received` (alerting for one
  that waited longer than `HEDUI_INTAKE_MAX_WAIT_MINUTES`) and removes staged files no accepted
  feed names; the partner's next pull sends the receipts;
- **stale_feeds** — alerts for every partner feed kind with no accepted delivery within the
  partner's `expected_interval_days` (connectors/partners.yaml);
- **key_expiry** — alerts for centre and partner keys near the end of their lifetime;
- **retention_purge** — deletes working files, claimed inbox files, old batch files and reports,
  and staged rows of superseded, unused feeds after the periods in
  verification/housekeeping.yaml (param `dry_run` lists without deleting); never the audit
  trail, flags, feeds as received, or anything a past run needs to be reproduced;
- **database_maintenance** — SQLite VACUUM + ANALYZE, PostgreSQL ANALYZE, after the purge.

Alerts are ALERT log lines plus audit events (verification/alerts.py). Every task is safe to
rerun. Logic lives in verification/housekeeping.py; this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from verification.alerts import on_task_failure
from verification.security.logmask import install_log_masking

# Resident ID numbers in any log line of these tasks are masked (stdlib only: cheap to parse).
install_log_masking()


@dag(
    dag_id="housekeeping",
    schedule="30 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["hedui", "housekeeping"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5),
                  "on_failure_callback": on_task_failure},
    params={"dry_run": Param(False, type="boolean", title="仅列出不删除 / Dry run",
                             description="只列出将被清理的文件 / list what would be purged")},
)
def housekeeping():
    @task
    def stale_feeds() -> list[dict]:
        from verification.config import load_settings
        from verification.housekeeping import alert_stale_feeds

        return alert_stale_feeds(load_settings())

    @task
    def interrupted_intake() -> list[dict]:
        from verification.config import load_settings
        from verification.housekeeping import resume_interrupted_intake

        return [r.__dict__ for r in resume_interrupted_intake(load_settings())]

    @task
    def key_expiry() -> list[dict]:
        from verification.config import load_settings
        from verification.housekeeping import alert_key_expiry

        return alert_key_expiry(load_settings())

    @task
    def retention_purge(params: dict | None = None) -> dict[str, int]:
        from verification.config import load_settings
        from verification.housekeeping import purge

        found = purge(load_settings(), dry_run=bool((params or {}).get("dry_run")))
        return {category: len(paths) for category, paths in found.items()}

    @task
    def database_maintenance(purged: dict[str, int]) -> dict:
        from verification.config import load_settings
        from verification.housekeeping import maintain_database

        return maintain_database(load_settings())

    interrupted_intake() >> stale_feeds()
    key_expiry()
    database_maintenance(retention_purge())


housekeeping()
