"""Batch checks (批量核对): staff hand in a file of applicant households; each is checked and gets a
result, and the batch gets a report.

A batch moves through stages, each recorded with its time in ``batches.progress`` so `hedui batch
status` can say where it is::

    received → validated (or invalid: nothing else runs) → loaded → evidence → assessed → reported

Every stage is idempotent. The batch code is derived from the file's SHA-256 and the assistance
category, so handing in the same file again names the same batch, and its run (run key
``batch-<code>``) is replaced, never duplicated. The file is stored under
``<HEDUI_HOME>/inbox/batches/<code>/`` sealed (``<name>.sealed``: encrypted under the field keys,
HEDUI_FIELD_KEYS, mode 600 — it holds full ID numbers, names and addresses) and opened into a
private temporary folder only while a stage reads it (``opened``); a file dropped into the inbox
is removed once its sealed copy is stored. The inbox folder itself (``<HEDUI_HOME>/inbox/``) is
the drop folder watched by Airflow (verification/batches/inbox_trigger.py).

Partner data: a batch is assessed against the latest accepted feed of every kind (the versions
are recorded on the run). Query-list requests to partners are not available yet; when they are,
``collect_evidence`` is where a batch's query list is sent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select, update

from connectors.digests import sha256_file
from verification import tasklog
from verification.config import Settings
from verification.security import audit
from verification.storage import session_scope
from verification.storage.models import Batch, Household, Run, utcnow

if TYPE_CHECKING:
    from verification.security.fieldcrypt import FieldCipher

log = logging.getLogger(__name__)
CATEGORIES = ("dibao", "edge", "rigid", "tekun")
STAGES = ("received", "validated", "invalid", "loaded", "evidence", "assessed", "reported",
          "failed")
_ERRORS_SHOWN = 20


class BatchInvalid(ValueError):
    """The batch file fails the contract; ``errors`` lists every row error (line, field, reason).

    The message names the first errors so a task log or a terminal shows them directly."""

    def __init__(self, batch_code: str, errors: pd.DataFrame, received: int,
                 errors_file: Path | None = None) -> None:
        self.batch_code, self.errors, self.errors_file = batch_code, errors, errors_file
        from verification.portal.row_errors import error_line

        lines = [f"  {error_line(r)}" for r in errors.head(_ERRORS_SHOWN).itertuples()]
        more = len(errors) - _ERRORS_SHOWN
        tail = [f"  …另有 {more} 处 / and {more} more"] if more > 0 else []
        where = [f"全部错误 / every error: {errors_file}"] if errors_file else []
        bad = errors["line"].nunique()
        super().__init__("\n".join([
            f"批次 {batch_code}：{received} 行中有 {bad} 行不符合批次文件格式，未查询协查部门，"
            f"未载入任何数据 / batch {batch_code}: {bad} of {received} rows fail the batch-file "
            "contract; no partner was queried and nothing was loaded", *lines, *tail, *where]))


@dataclass(frozen=True)
class BatchRef:
    id: int
    code: str
    stored_path: Path


def inbox_dir(settings: Settings) -> Path:
    """The drop folder watched by Airflow: a file placed here starts a batch check."""
    return settings.home / "inbox"


def batch_dir(settings: Settings, code: str) -> Path:
    return inbox_dir(settings) / "batches" / code


def file_sha256(path: Path) -> str:
    """The batch file's identity (with the category it names the batch)."""
    return sha256_file(path)


def batch_code_for(sha256: str, category: str) -> str:
    return f"B{sha256[:16]}-{category}"


SEALED = ".sealed"  # a stored batch file, encrypted (fieldcrypt.FieldCipher.seal)
_SEAL_PURPOSE = "batch file"


def register_batch(settings: Settings, path: Path, *, category: str = "dibao",
                   requester: str = "", notes: str = "", dag_run_id: str = "") -> BatchRef:
    """Store a sealed copy of the file and create (or find) its ``batches`` row. Idempotent:
    the stored copy itself (a run started from the form or the CLI names it) finds its batch."""
    path = Path(path)
    if category not in CATEGORIES:
        raise ValueError(f"unknown assistance category {category!r}; "
                         f"one of {', '.join(CATEGORIES)}")
    if not path.is_file():
        raise FileNotFoundError(f"batch file not found: {path}")
    if path.suffix == SEALED:
        return _registered(settings, path, requester, notes, dag_run_id)
    sha = file_sha256(path)
    code = batch_code_for(sha, category)
    stored = batch_dir(settings, code) / (path.name + SEALED)
    if not stored.exists():
        _seal(path, stored)
    if path.parent == inbox_dir(settings) / "claimed":
        path.unlink()  # the drop, claimed by the inbox watcher: its sealed copy is kept instead
    with session_scope(settings.database_url) as session:
        batch = session.scalar(select(Batch).where(Batch.batch_code == code))
        if batch is None:
            batch = Batch(batch_code=code, category=category, file_name=path.name,
                          file_sha256=sha, stored_path=str(stored), status="received",
                          stage="received", progress=[_step("received", {"file": path.name})])
            session.add(batch)
            session.flush()
            audit.record(session, requester or "system", "batch.received", f"batch:{batch.id}",
                         {"code": code, "file": path.name, "sha256": sha})
        batch.requester, batch.notes = requester or batch.requester, notes or batch.notes
        batch.dag_run_id = dag_run_id or batch.dag_run_id
        return BatchRef(batch.id, code, stored)


def _seal(path: Path, stored: Path) -> None:
    from verification.security.fieldcrypt import load_field_cipher

    stored.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(stored.parent, 0o700)
    _write_private(stored, load_field_cipher().seal(path.read_bytes(), _SEAL_PURPOSE))


def _write_private(path: Path, data: bytes) -> None:
    """``data`` as ``path``, mode 600, through ``.part`` (never half a file under the name)."""
    tmp = path.with_name(path.name + ".part")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(data)
    tmp.replace(path)


def _registered(settings: Settings, stored: Path, requester: str, notes: str,
                dag_run_id: str) -> BatchRef:
    """The batch a stored (sealed) copy belongs to."""
    with session_scope(settings.database_url) as session:
        batch = session.scalar(select(Batch).where(Batch.stored_path == str(stored)))
        if batch is None:
            raise FileNotFoundError(f"找不到该批次文件的登记 / no batch is registered for "
                                    f"{stored.name}")
        batch.requester, batch.notes = requester or batch.requester, notes or batch.notes
        batch.dag_run_id = dag_run_id or batch.dag_run_id
        return BatchRef(batch.id, batch.batch_code, stored)


def sealed_batch_files(settings: Settings) -> list[Path]:
    """Every stored batch file (for key rotation)."""
    root = inbox_dir(settings) / "batches"
    return sorted(root.glob(f"*/*{SEALED}")) if root.is_dir() else []


def reseal(stored: Path, cipher: FieldCipher) -> bool:
    """Seal ``stored`` again under the cipher's current key; False when it already is."""
    blob = stored.read_bytes()
    if cipher.key_id_of(blob) == cipher.current:
        return False
    _write_private(stored, cipher.seal(cipher.unseal(blob, _SEAL_PURPOSE), _SEAL_PURPOSE))
    return True


@contextmanager
def opened(settings: Settings, stored: Path) -> Iterator[Path]:
    """The stored batch file in plain, under its own name in a private temporary folder, for
    as long as a stage reads it (then removed)."""
    from verification.security.fieldcrypt import load_field_cipher

    with tempfile.TemporaryDirectory(dir=settings.private_tmp_dir()) as folder:
        plain = Path(folder) / stored.name.removesuffix(SEALED)
        with os.fdopen(os.open(plain, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
            out.write(load_field_cipher().unseal(stored.read_bytes(), _SEAL_PURPOSE))
        yield plain


def _step(stage: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"stage": stage, "at": utcnow().isoformat(timespec="seconds"), **(detail or {})}


def record_stage(settings: Settings, batch_id: int, stage: str, status: str | None = None,
                 **detail: Any) -> None:
    """Move the batch to ``stage`` and append it to the progress log (a rerun appends again)."""
    if stage not in STAGES:
        raise ValueError(f"unknown batch stage {stage!r}")
    with session_scope(settings.database_url) as session:
        batch = session.get(Batch, batch_id)
        batch.stage, batch.status = stage, status or stage
        batch.progress = [*(batch.progress or []), _step(stage, detail)]
        audit.record(session, "pipeline", f"batch.{stage}", f"batch:{batch_id}", detail)


def _batch(settings: Settings, batch_id: int) -> Batch:
    with session_scope(settings.database_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise LookupError(f"no batch {batch_id}")
        session.expunge(batch)
        return batch


# ---- stages --------------------------------------------------------------------------------------
def validate_batch(settings: Settings, batch_id: int) -> int:
    """Validate the stored file; on any row error write ``errors.csv`` and raise ``BatchInvalid``.

    Returns the number of rows. Nothing else (loading, partner queries) happens before this."""
    from verification.intake.roster import read_batch_file, validate_roster

    batch = _batch(settings, batch_id)
    stored = Path(batch.stored_path)
    with opened(settings, stored) as plain:
        checked = validate_roster(plain)
        errors = checked.quarantine.sort_values(["line", "field"], kind="stable")
        rows = read_batch_file(plain) if len(errors) else None
    with session_scope(settings.database_url) as session:
        session.execute(update(Batch).where(Batch.id == batch_id)
                        .values(rows=checked.received, errors=len(errors)))
    tasklog.rows_checked(batch.batch_code, checked.received, len(errors))
    if len(errors):
        from verification.portal.row_errors import error_lines, write_errors_csv

        errors_file = stored.parent / "errors.csv"
        explained = error_lines(rows, errors)
        write_errors_csv(explained, errors_file)
        # The file holds full ID numbers and will never be used: only errors.csv (masked) stays.
        stored.unlink(missing_ok=True)
        record_stage(settings, batch_id, "invalid", errors=len(errors),
                     lines=int(errors["line"].nunique()), errors_file=str(errors_file))
        raise BatchInvalid(batch.batch_code, explained, checked.received, errors_file)
    record_stage(settings, batch_id, "validated", rows=checked.received)
    return checked.received


def load_batch(settings: Settings, batch_id: int) -> list[int]:
    """Upsert the batch's households and members (as the roster loader does); returns their ids."""
    from verification.intake.roster import load_roster

    batch = _batch(settings, batch_id)
    with opened(settings, Path(batch.stored_path)) as plain:
        loaded = load_roster(settings, plain, actor=batch.requester or "batch",
                             batch_id=batch_id, category=batch.category)
    with session_scope(settings.database_url) as session:
        session.execute(update(Batch).where(Batch.id == batch_id)
                        .values(households=loaded.households))
    tasklog.households_loaded(batch.batch_code, loaded.households, loaded.members)
    record_stage(settings, batch_id, "loaded", households=loaded.households,
                 members=loaded.members)
    return loaded.household_ids


def batch_household_ids(settings: Settings, batch_id: int) -> list[int]:
    """The households named in the batch file (read back from the stored file)."""
    from verification.intake.roster import read_batch_file

    batch = _batch(settings, batch_id)
    with opened(settings, Path(batch.stored_path)) as plain:
        codes = read_batch_file(plain)["household_code"].str.strip().unique().tolist()
    with session_scope(settings.database_url) as session:
        return sorted(session.scalars(select(Household.id)
                                      .where(Household.household_code.in_(codes))).all())


def collect_evidence(settings: Settings, batch_id: int, as_of: dt.date | None = None,
                     query_clients: dict | None = None, query_wait_seconds: float = 60.0) -> int:
    """Start (or reset) the batch's run, query the query-list partners about the batch's members,
    and match the partner data to its members.

    Fixes the feed and policy versions on the run; returns the run id. ``query_clients`` (partner
    code → QueryClient) replaces the Airflow Connections, for tests."""
    from verification import pipeline

    batch = _batch(settings, batch_id)
    as_of = as_of or dt.date.today()
    run_id = pipeline.start_review(settings, f"batch-{batch.batch_code}", as_of, kind="batch")
    with session_scope(settings.database_url) as session:
        session.execute(update(Run).where(Run.id == run_id).values(batch_id=batch_id))
        versions = session.get(Run, run_id).feed_versions
    households = batch_household_ids(settings, batch_id)
    _require_authorisations(settings, batch, run_id, households, versions, as_of)
    outcomes = _query_partners(settings, batch, households, as_of, query_clients,
                               query_wait_seconds)
    if outcomes:  # fix the versions again: the answers are now the newest feeds of their kinds
        run_id = pipeline.start_review(settings, f"batch-{batch.batch_code}", as_of, kind="batch")
        versions = _mark_unanswered(settings, run_id, batch_id, outcomes)
    matched = pipeline.matched_evidence(settings, versions, households)
    folder = _work_dir(settings, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    matched.to_parquet(folder / "evidence.parquet", index=False)
    with session_scope(settings.database_url) as session:  # whose data was used, by token
        audit.record_evidence_access(session, batch.requester or "batch",
                                     f"batch:{batch.batch_code}", matched,
                                     {k: v.get("partner", "") for k, v in versions.items()})
    used = {k: v.get("feed_id") for k, v in versions.items()}
    mode = "query_list+latest_accepted_feeds" if outcomes else "latest_accepted_feeds"
    tasklog.batch_evidence(batch.batch_code, run_id, len(matched),
                           sum(o.status == "answered" for o in outcomes), len(outcomes))
    record_stage(settings, batch_id, "evidence", run_id=run_id, as_of=as_of.isoformat(),
                 mode=mode, feeds=used, evidence_rows=len(matched),
                 queries=[{"partner": o.partner, "kind": o.kind, "status": o.status}
                          for o in outcomes])
    return run_id


def _query_partners(settings: Settings, batch: Batch, households: list[int], as_of: dt.date,
                    clients: dict | None, wait_seconds: float) -> list:
    """Ask every query-list partner (transport: query_list) about the batch's members only —
    the privacy-minimal way; partners that deliver whole feeds are not asked."""
    from verification.intake.query_list import query_partners

    return query_partners(settings, households, as_of=as_of, purpose="batch",
                          actor=batch.requester or "batch", clients=clients,
                          partners=list(clients) if clients else None,
                          wait_seconds=wait_seconds)


def _mark_unanswered(settings: Settings, run_id: int, batch_id: int,
                     outcomes: list) -> dict[str, dict]:
    """A query still pending or rejected is a missing source for this batch (its households get
    REVIEW), never an older feed standing in for the answer."""
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        versions = dict(run.feed_versions)
        for outcome in outcomes:
            if outcome.status != "answered":
                versions[outcome.kind] = {"feed_id": None, "status": outcome.status,
                                          "partner": outcome.partner, "query": outcome.query_id,
                                          "reason": outcome.reason}
        session.execute(update(Run).where(Run.id == run_id).values(batch_id=batch_id,
                                                                     feed_versions=versions))
    return versions


def _require_authorisations(settings: Settings, batch: Batch, run_id: int,
                            households: list[int], versions: dict[str, dict],
                            as_of: dt.date) -> None:
    """No authorisation, no query: every member, for every partner whose data the run uses.
    A refusal names the members (masked), ends the run as refused and is audited."""
    from verification.security.authorisation import NotAuthorised, require_authorised

    try:
        require_authorised(settings, households, as_of, what=f"batch {batch.batch_code}",
                           asks=[(version.get("partner"), kind)
                                 for kind, version in versions.items() if version.get("feed_id")])
    except NotAuthorised as refused:
        with session_scope(settings.database_url) as session:
            session.execute(update(Run).where(Run.id == run_id)
                            .values(status="refused", stage="authorisation",
                                    finished_at=utcnow()))
            audit.record(session, batch.requester or "batch", "batch.refused",
                         f"batch:{batch.batch_code}",
                         {"reason": "authorisation", "members": len(refused.members),
                          "member_ids": [m.member_id for m in refused.members][:200]})
        raise


def _work_dir(settings: Settings, run_id: int) -> Path:
    return settings.runs_dir / f"run-{run_id}"


def assess_batch(settings: Settings, batch_id: int, run_id: int) -> dict[str, int]:
    """Assess and flag the batch's households and store the results (replacing earlier ones)."""
    from verification import pipeline

    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        as_of, region, versions = run.as_of, run.region, run.feed_versions
    ids = batch_household_ids(settings, batch_id)
    households = pipeline.load_households(settings).loc[ids]
    members = pipeline.load_members(settings, households.index)
    evidence = pd.read_parquet(_work_dir(settings, run_id) / "evidence.parquet")
    out = pipeline.assess_and_flag(settings, households, members, evidence, versions, as_of,
                                   region, _work_dir(settings, run_id) / "shard-batch")
    counts = pipeline.finish_review(settings, run_id, [str(out)])
    record_stage(settings, batch_id, "assessed", run_id=run_id, flags=counts)
    return counts


def write_batch_reports(settings: Settings, batch_id: int, run_id: int) -> Path:
    """The run's reports (per street and community, with a 核对报告 per applicant household),
    plus the batch report: one row per household (result, reasons) and the evidence, as CSV and
    XLSX, and ``batch.json`` with the provenance and where every 核对报告 is."""
    from verification.reports.flag_reports import SheetContext, write_tables
    from verification.reports.run_reports import report_tables, write_run_reports

    tables = report_tables(settings, run_id)  # read once for the run's reports and the batch's
    run_reports = write_run_reports(settings, run_id, tables)
    batch = _batch(settings, batch_id)
    out = batch_dir(settings, batch.batch_code) / "report"
    out.mkdir(parents=True, exist_ok=True)
    table = tables.flags.sort_values("household_code", kind="stable")
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        meta = {"batch": batch.batch_code, "file": batch.file_name, "sha256": batch.file_sha256,
                "category": batch.category, "requester": batch.requester, "notes": batch.notes,
                "rows": batch.rows, "households": len(table), "run_key": run.run_key,
                "as_of": run.as_of.isoformat(), "policy_version": run.policy_version,
                "feeds": {k: v.get("feed_id") for k, v in run.feed_versions.items()},
                "flags": run.counts, "run_reports": str(run_reports),
                "household_reports": sorted(str(p) for p in run_reports.rglob("核对报告/*.html"))}
        session.execute(update(Batch).where(Batch.id == batch_id)
                        .values(reports_dir=settings.home_relative(out)))
    context = SheetContext(title=f"批量核对 {batch.batch_code}", facts=[
        ("批次 / batch", f"{batch.batch_code}（{batch.file_name}）"),
        ("提交人 / submitted by", batch.requester), ("备注 / notes", batch.notes),
        ("核对基准日 / as of", meta["as_of"]), ("政策版本 / policy", meta["policy_version"])])
    # the centre's one workbook of the batch: every household's flag and evidence
    write_tables(table, tables.evidence, out / "batch-report", context)
    (out / "batch.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
    tasklog.reports_written(run_id, sum(1 for p in out.rglob("*") if p.is_file()), str(out))
    record_stage(settings, batch_id, "reported", status="done", reports=str(out))
    return out


def mark_failed(settings: Settings, batch_id: int, error: str) -> None:
    """Record that a stage failed (a retry that succeeds moves the batch on again)."""
    record_stage(settings, batch_id, "failed", status="failed", error=error[:600])


def submission_failed(settings: Settings, batch_id: int, reason: str) -> None:
    """The batch was registered but its run could not be created: say so on the batch."""
    mark_failed(settings, batch_id, f"核对任务未能启动 / the check could not be started: {reason}")


def submission_started(settings: Settings, batch_id: int, dag_run_id: str) -> None:
    """Its run was created: keep the run id; a batch that had failed to start is received
    again (the run's first task moves it on)."""
    with session_scope(settings.database_url) as session:
        batch = session.get(Batch, batch_id)
        batch.dag_run_id = dag_run_id
        failed = batch.status == "failed"
    if failed:
        record_stage(settings, batch_id, "received", dag_run_id=dag_run_id)


# ---- trigger input ------------------------------------------------------------------------------
TRIGGER_KEYS = ("batch_file", "category", "requester", "notes", "as_of")


class BadTrigger(ValueError):
    """A batch_check run was started with input no retry can fix; the message says what, in
    Chinese and English."""


def check_trigger(conf: dict[str, Any], today: dt.date,
                  keys: tuple[str, ...] = TRIGGER_KEYS) -> None:
    """Refuse a run's input before anything is done: an unknown key (a misspelt ``as_of``
    would otherwise be ignored), an impossible or future as-of date, an unknown category, a
    batch file that is not there."""
    unknown = sorted(set(conf) - set(keys))  # keys: the DAG's own params, when it passes them
    if unknown:
        raise BadTrigger(f"触发参数中有未知的键：{'、'.join(unknown)}"
                         f"（可用：{'、'.join(keys)}） / unknown trigger key(s) "
                         f"{', '.join(unknown)}; the keys are {', '.join(keys)}")
    as_of = conf.get("as_of") or ""
    if as_of:
        try:
            when = dt.date.fromisoformat(str(as_of)) if len(str(as_of)) == 10 else None
        except ValueError:
            when = None
        if when is None:
            raise BadTrigger(f"核对基准日“{as_of}”不是有效日期，应写成 2026-11-01 的形式 / as_of "
                             f"{as_of!r} is not a date; write it as 2026-11-01")
        if when > today:
            raise BadTrigger(f"核对基准日 {as_of} 晚于今天 / as_of {as_of} is in the future")
    category = conf.get("category") or "dibao"
    if category not in CATEGORIES:
        raise BadTrigger(f"救助类别“{category}”不存在，应为 {'、'.join(CATEGORIES)} 之一 / "
                         f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
    batch_file = conf.get("batch_file") or ""
    if batch_file and not Path(batch_file).is_file():
        raise BadTrigger(f"找不到批次文件 {Path(batch_file).name}（服务器上的路径须完整） / batch "
                         f"file not found on the shared volume: {batch_file}")


def refuse_run(settings: Settings, dag_run_id: str, batch_file: str, reason: str) -> int:
    """Mark the batches this refused run was meant to check as failed, with the reason, so the
    portal and `hedui batch status` say why; returns how many."""
    with session_scope(settings.database_url) as session:
        ids = session.scalars(select(Batch.id).where(
            (Batch.dag_run_id == dag_run_id) | (Batch.stored_path == (batch_file or "\0")),
            Batch.status.not_in(["done"]))).all()
    for batch_id in ids:
        mark_failed(settings, batch_id, reason)
    return len(ids)


@contextmanager
def stage_of(settings: Settings, batch_id: int) -> Iterator[None]:
    """Around one stage: any failure is recorded on the batch, then raised again.

    An invalid file is recorded as ``invalid`` by ``validate_batch`` itself."""
    try:
        yield
    except BatchInvalid:
        raise
    except Exception as err:
        mark_failed(settings, batch_id, user_message(err))
        raise


def user_message(err: BaseException) -> str:
    """What a user is told about a failure: never a raw database error (its SQL and values go
    to the log only)."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(err, SQLAlchemyError):
        log.error("batch stage failed in the database: %s", err)
        return ("数据库写入失败，详情见服务日志 / the database refused the write; the details "
                "are in the service log")
    return f"{type(err).__name__}: {err}"


# ---- status ------------------------------------------------------------------------------------
def batch_status(settings: Settings, ref: str | int) -> dict[str, Any]:
    """Where a batch is: stage, progress log, counts, the run and where the results are.

    ``ref`` is the batch code, a unique prefix of it, or the numeric id."""
    with session_scope(settings.database_url) as session:
        query = select(Batch)
        if isinstance(ref, int) or str(ref).isdigit():
            query = query.where(Batch.id == int(ref))
        else:
            query = query.where(Batch.batch_code.startswith(str(ref)))
        found = session.scalars(query).all()
        if not found:
            raise LookupError(f"no batch {ref!r}")
        if len(found) > 1:
            raise LookupError(f"{ref!r} names {len(found)} batches; give more of the code")
        b = found[0]
        run = session.scalar(select(Run).where(Run.batch_id == b.id).order_by(Run.id.desc()))
        return {"id": b.id, "code": b.batch_code, "file": b.file_name, "category": b.category,
                "requester": b.requester, "status": b.status, "stage": b.stage, "rows": b.rows,
                "errors": b.errors, "households": b.households, "progress": list(b.progress),
                "dag_run_id": b.dag_run_id, "stored_path": b.stored_path,
                "reports_dir": str(settings.at_home(b.reports_dir)) if b.reports_dir else "",
                "run_id": run.id if run else None,
                "flags": dict(run.counts) if run else {},
                "policy_version": run.policy_version if run else ""}


def run_batch_locally(settings: Settings, path: Path, *, category: str = "dibao",
                      requester: str = "", notes: str = "",
                      as_of: dt.date | None = None) -> dict[str, Any]:
    """Every stage in this process, in order (`hedui batch submit --local`); returns the status.

    The same functions the batch_check DAG's tasks call, without a scheduler."""
    ref = register_batch(settings, path, category=category, requester=requester, notes=notes)
    with stage_of(settings, ref.id):
        validate_batch(settings, ref.id)
        load_batch(settings, ref.id)
        run_id = collect_evidence(settings, ref.id, as_of)
        assess_batch(settings, ref.id, run_id)
        write_batch_reports(settings, ref.id, run_id)
    return batch_status(settings, ref.id)
