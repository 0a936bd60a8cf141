"""Submitting a batch from the portal: check the file at once, store it, start batch_check.

The file is validated before anything is stored (verification/intake/roster.py, the same checks the
batch_check DAG's first task makes): a file with errors is not kept and nothing runs, and the page
shows each bad row with what is wrong. A valid file is stored and registered as a batch by
verification/batches/check.py (``register_batch``: the batch code follows from the file's digest and
category, so handing in the same file again names the same batch), and a ``batch_check`` run is
created with Airflow's own trigger function, in the API server process this portal runs in — no
second login, no HTTP round trip. The run id is chosen here and written on the batch before the
run exists, so the batches page can follow it from the first second.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from verification.batches import check as batches
from verification.config import Settings
from verification.portal.row_errors import RowErrors, explain_file_problem, group_by_row
from verification.security import audit
from verification.storage import session_scope

DAG_ID = "batch_check"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ACCEPTED_SUFFIXES = (".csv", ".xlsx")
_UNSAFE = re.compile(r"[^\w.\-()（）]+")


@dataclass
class CheckedUpload:
    """The outcome of checking one uploaded file."""

    received: int = 0
    households: int = 0
    rows: list[RowErrors] = field(default_factory=list)  # bad rows, with their problems
    bad_lines: int = 0
    unreadable: str = ""  # why the file as a whole cannot be read ("" if it can)

    @property
    def ok(self) -> bool:
        return not self.unreadable and not self.bad_lines and self.received > 0


@dataclass(frozen=True)
class Submitted:
    batch_id: int
    code: str
    dag_run_id: str
    trigger_error: str  # "" when the run was created


def safe_name(filename: str) -> str:
    """The uploaded file's own name, without folders or characters a shell or share dislikes."""
    name = _UNSAFE.sub("_", Path(filename.replace("\\", "/")).name).strip("._") or "batch.csv"
    return name[-120:]


def staging_path(settings: Settings, filename: str) -> Path:
    folder = settings.home / "tmp" / "portal-uploads" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    return folder / safe_name(filename)


def discard(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def check_file(path: Path, lang: str) -> CheckedUpload:
    """Validate ``path`` against the batch-file contract; bad rows come back explained."""
    from connectors.decoding import DecodeError
    from verification.intake.roster import read_batch_file, validate_roster

    try:
        checked = validate_roster(path)
    except (DecodeError, ValueError, KeyError) as err:
        message = str(err).splitlines()[0][:300]
        return CheckedUpload(unreadable=explain_file_problem(message, lang))
    result = CheckedUpload(received=checked.received,
                           households=int(checked.accepted["household_code"].nunique())
                           if len(checked.accepted) else 0)
    if len(checked.quarantine):
        try:
            frame = read_batch_file(path)
        except (DecodeError, ValueError):
            frame = pd.DataFrame({"_line": checked.quarantine["line"].unique()})
        result.rows = group_by_row(frame, checked.quarantine, lang)
        result.bad_lines = int(checked.quarantine["line"].nunique())
    return result


def submit(settings: Settings, path: Path, *, category: str, requester: str,
           notes: str) -> Submitted:
    """Store a checked file as a batch and start its ``batch_check`` run."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    ref = batches.register_batch(settings, path, category=category, requester=requester,
                                 notes=notes)
    run_id = f"portal__{ref.code}__{stamp}"
    error = trigger_batch_check(run_id, {"batch_file": str(ref.stored_path),
                                         "category": category, "requester": requester,
                                         "notes": notes}, requester)
    if error:
        batches.submission_failed(settings, ref.id, error)
    else:
        batches.submission_started(settings, ref.id, run_id)
    with session_scope(settings.database_url) as session:
        audit.record(session, requester, "batch.submitted", f"batch:{ref.id}",
                     {"code": ref.code, "via": "portal", "dag_run_id": run_id if not error
                      else "", "trigger_error": error[:200]})
    return Submitted(ref.id, ref.code, run_id if not error else "", error)


def trigger_batch_check(run_id: str, conf: dict[str, str], username: str) -> str:
    """Create the ``batch_check`` run; returns "" or why it could not be created."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.utils.types import DagRunTriggeredByType

    try:
        trigger_dag(DAG_ID, run_id=run_id, conf=conf, triggered_by=DagRunTriggeredByType.UI,
                    triggering_user_name=username,
                    note="由核对门户提交 / submitted through the hedui portal")
    except DagNotFound:
        return f"the {DAG_ID} DAG is not known to Airflow yet (has the DAG processor parsed it?)"
    except DagRunAlreadyExists:
        return f"a {DAG_ID} run {run_id} already exists"
    except ValueError as err:
        return str(err)
    return ""


def dag_state(run_id: str) -> dict[str, object]:
    """The Airflow state of a batch_check run and its tasks, read from Airflow's database."""
    if not run_id:
        return {}
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == DAG_ID,
                                                  DagRun.run_id == run_id))
        paused = session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == DAG_ID))
        if run is None:
            return {"state": "", "paused": bool(paused), "tasks": []}
        tasks = session.execute(select(TaskInstance.task_id, TaskInstance.state)
                                .where(TaskInstance.dag_id == DAG_ID,
                                       TaskInstance.run_id == run_id)).all()
        return {"state": str(run.state), "paused": bool(paused),
                "tasks": [{"task_id": t, "state": str(s or "")} for t, s in tasks]}
