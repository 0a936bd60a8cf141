"""Failure alerts: every failed Airflow task is recorded in the audit trail and logged as an
ALERT line (which the deployment's log shipping or Airflow's SMTP notifier turns into mail)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verification.config import Settings

log = logging.getLogger("hedui.alerts")


def on_task_failure(context: dict[str, Any]) -> None:
    from verification.config import load_settings
    from verification.security import audit
    from verification.storage import session_scope

    ti = context.get("task_instance") or context.get("ti")
    detail = {"dag_id": getattr(ti, "dag_id", ""), "task_id": getattr(ti, "task_id", ""),
              "run_id": getattr(ti, "run_id", ""), "try": getattr(ti, "try_number", None),
              "error": type(context.get("exception")).__name__}
    log.error("ALERT task failed: %s", detail)
    try:
        with session_scope(load_settings().database_url) as session:
            audit.record(session, "airflow", "task.failed", detail["task_id"], detail)
    except Exception:  # the alert itself must never hide the original failure
        log.exception("could not record the failure in the audit trail")


def raise_alert(settings: Settings, action: str, subject: str, detail: dict[str, Any]) -> None:
    """An operational alert that is not a task failure (a stale feed, a key about to expire):
    an ALERT log line and an audit event. ``detail`` must hold no personal data."""
    from verification.security import audit
    from verification.storage import session_scope

    log.warning("ALERT %s %s: %s", action, subject, detail)
    with session_scope(settings.database_url) as session:
        audit.record(session, "housekeeping", action, subject, detail)
