"""Housekeeping: the daily checks and clean-ups an operator would otherwise forget.

- **stale feeds**: a partner that has not delivered an accepted feed of each of its kinds within
  ``expected_interval_days`` (connectors/partners.yaml) raises an alert;
- **key expiry**: a centre recipient key or a trusted partner signing key within
  ``key_warning_days`` of the end of its lifetime (from its ``Created`` date) raises an alert;
- **retention purge**: working files, claimed inbox files, old batch files and reports, and
  staged rows of superseded, unused feeds are deleted after the configured number of days.
  Never purged: the audit trail, flags and assessments, feeds as received, staged rows of any
  feed a run used (a past result stays reproducible);
- **database maintenance**: SQLite ``VACUUM`` and ``ANALYZE``; PostgreSQL ``ANALYZE`` (its
  autovacuum does the rest).

Settings: verification/housekeeping.yaml, or the file named by HEDUI_HOUSEKEEPING_FILE. Every
function takes ``now`` so tests pin the clock.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select, text

from verification.config import Settings
from verification.security import audit
from verification.storage import session_scope
from verification.storage.db import connect
from verification.storage.models import Batch, Feed, Partner, Run

CONFIG_FILE = Path(__file__).with_name("housekeeping.yaml")
RETENTION_KEYS = ("run_workdirs", "claimed_inbox", "batch_files", "run_reports",
                  "superseded_staging")


@dataclass(frozen=True)
class HousekeepingConfig:
    retention_days: dict[str, int]
    key_lifetime_days: dict[str, int]
    key_warning_days: int


def load_config(path: Path | None = None) -> HousekeepingConfig:
    path = Path(path or os.environ.get("HEDUI_HOUSEKEEPING_FILE") or CONFIG_FILE)
    raw = yaml.safe_load(path.read_text("utf-8"))
    retention = {k: int(v) for k, v in raw["retention_days"].items()}
    unknown = set(retention) - set(RETENTION_KEYS)
    missing = set(RETENTION_KEYS) - set(retention)
    if unknown or missing:
        raise ValueError(f"{path.name}: retention_days must name exactly "
                         f"{', '.join(RETENTION_KEYS)} (unknown {sorted(unknown)}, "
                         f"missing {sorted(missing)})")
    if any(days < 1 for days in retention.values()):
        raise ValueError(f"{path.name}: every retention period must be at least 1 day")
    return HousekeepingConfig(retention, {k: int(v) for k, v in raw["key_lifetime_days"].items()},
                              int(raw["key_warning_days"]))


def _now(now: dt.datetime | None) -> dt.datetime:
    """Naive UTC, as the database stores times."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)


# ---- stale feeds ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaleFeed:
    partner: str
    kind: str
    last_received: str | None  # ISO time of the newest accepted feed, None if never
    expected_interval_days: int
    days_since: int | None


def stale_feeds(settings: Settings, now: dt.datetime | None = None) -> list[StaleFeed]:
    """Partner feed kinds with no accepted delivery within the partner's expected interval."""
    from connectors.registry import load_partners

    now = _now(now)
    with session_scope(settings.database_url) as session:
        latest = {(code, kind): when for code, kind, when in session.execute(
            select(Partner.code, Feed.kind, func.max(Feed.received_at)).join(Partner)
            .where(Feed.status == "accepted").group_by(Partner.code, Feed.kind))}
    stale = []
    for code, spec in load_partners().items():
        for kind in spec.feeds:
            when = latest.get((code, kind))
            days = None if when is None else (now - when).days
            if when is None or now - when > dt.timedelta(days=spec.expected_interval_days):
                stale.append(StaleFeed(code, kind, when.isoformat() if when else None,
                                       spec.expected_interval_days, days))
    return stale


def alert_stale_feeds(settings: Settings, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    from verification.alerts import raise_alert

    found = [asdict(s) for s in stale_feeds(settings, now)]
    for item in found:
        raise_alert(settings, "feed.stale", f"partner:{item['partner']}", item)
    return found


# ---- interrupted intake ------------------------------------------------------------------------
def resume_interrupted_intake(settings: Settings, now: dt.datetime | None = None) -> list:
    """Take in every feed a killed pull left ``received`` (alerting for those that waited longer
    than ``IntakeLimits.max_wait``), then remove staged files no accepted feed names. The
    receipts are sent by the partner's next pull. Returns the intake results."""
    from verification.intake import feeds as intake

    results = intake.resume_pending(settings, now=now)
    intake.clean_orphan_staging(settings, now=now)
    return results


# ---- keys --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyWarning:
    key_id: str
    role: str  # centre_recipient | partner_signing
    partner: str
    created: str
    expires: str | None
    days_left: int | None
    test_key: bool


def key_warnings(settings: Settings, config: HousekeepingConfig | None = None,
                 now: dt.datetime | None = None) -> list[KeyWarning]:
    """Keys within the warning window of their lifetime's end, expired, or of unknown age."""
    from connectors.keys import CentreKeyring, PartnerDirectory

    config = config or load_config()
    now = _now(now)
    keys: list[tuple[str, str, str, str, bool]] = []
    if (settings.keys_dir / "centre").is_dir():
        keys += [(k.key_id, "centre_recipient", "", k.created_at, k.is_test_key)
                 for k in CentreKeyring.load(settings.keys_dir)]
    if (settings.keys_dir / "partners").is_dir():
        directory = PartnerDirectory.load(settings.keys_dir)
        keys += [(k.key_id, "partner_signing", k.partner, k.created_at, k.is_test_key)
                 for k in directory if directory.revocation(k.key_id) is None]
    warnings = []
    for key_id, role, partner, created, test in keys:
        if not created:
            warnings.append(KeyWarning(key_id, role, partner, "", None, None, test))
            continue
        born = dt.datetime.fromisoformat(created).astimezone(dt.UTC).replace(tzinfo=None)
        expires = born + dt.timedelta(days=config.key_lifetime_days[role])
        left = (expires - now).days
        if left <= config.key_warning_days:
            warnings.append(KeyWarning(key_id, role, partner, created,
                                       expires.date().isoformat(), left, test))
    return warnings


def alert_key_expiry(settings: Settings, config: HousekeepingConfig | None = None,
                     now: dt.datetime | None = None) -> list[dict[str, Any]]:
    from verification.alerts import raise_alert

    found = [asdict(w) for w in key_warnings(settings, config, now)]
    for item in found:
        raise_alert(settings, "key.expiring", f"key:{item['key_id']}", item)
    return found


# ---- retention ---------------------------------------------------------------------------------
def purge(settings: Settings, config: HousekeepingConfig | None = None,
          now: dt.datetime | None = None, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete what the retention periods allow; returns the paths per category (also when
    ``dry_run``, which deletes nothing). Recorded in the audit trail."""
    config = config or load_config()
    now = _now(now)
    days = {k: now - dt.timedelta(days=v) for k, v in config.retention_days.items()}
    with session_scope(settings.database_url) as session:
        runs = session.scalars(select(Run)).all()
        done = {r.id: r for r in runs if r.status == "done" and r.finished_at}
        running = {r.id for r in runs if r.id not in done}
        used_feeds = {int(v["feed_id"]) for r in runs for v in (r.feed_versions or {}).values()
                      if v.get("feed_id")}
        batch_shas = set(session.scalars(select(Batch.file_sha256)))
        batches = [(b.batch_code, b.updated_at) for b in session.scalars(select(Batch))]
        feeds = session.execute(select(Feed.id, Feed.kind, Feed.staged_path, Feed.received_at,
                                       Feed.sequence).where(Feed.status == "accepted")).all()
    found = {
        "run_workdirs": _old_run_dirs(settings.runs_dir, done, running, days["run_workdirs"]),
        "run_reports": _old_run_dirs(settings.reports_dir, done, running, days["run_reports"]),
        "claimed_inbox": _old_claimed(settings, batch_shas, days["claimed_inbox"]),
        "batch_files": [str(settings.home / "inbox" / "batches" / code)
                        for code, updated in batches if updated < days["batch_files"]
                        and (settings.home / "inbox" / "batches" / code).exists()],
        "superseded_staging": _superseded_staging(feeds, used_feeds, days["superseded_staging"]),
    }
    if not dry_run:
        for paths in found.values():
            for path in paths:
                _remove(Path(path))
        with session_scope(settings.database_url) as session:
            audit.record(session, "housekeeping", "retention.purged", "files",
                         {k: len(v) for k, v in found.items()})
    return found


def _old_run_dirs(base: Path, done: dict[int, Run], running: set[int],
                  before: dt.datetime) -> list[str]:
    old = []
    for folder in sorted(base.glob("run-*")) if base.is_dir() else []:
        try:
            run_id = int(folder.name.removeprefix("run-"))
        except ValueError:
            continue
        if run_id in running:
            continue  # a run in progress keeps its files whatever their age
        finished = done[run_id].finished_at if run_id in done else _mtime(folder)
        if finished < before:
            old.append(str(folder))
    return old


def _old_claimed(settings: Settings, batch_shas: set[str], before: dt.datetime) -> list[str]:
    from verification.batches.check import file_sha256

    claimed = settings.home / "inbox" / "claimed"
    return [str(p) for p in sorted(claimed.glob("*")) if claimed.is_dir()
            and p.is_file() and _mtime(p) < before and file_sha256(p) in batch_shas]


def _superseded_staging(feeds: list, used: set[int], before: dt.datetime) -> list[str]:
    newest: dict[str, tuple[int, int]] = {}
    for feed_id, kind, _path, _received, sequence in feeds:
        if kind not in newest or sequence > newest[kind][1]:
            newest[kind] = (feed_id, sequence)
    keep = {feed_id for feed_id, _ in newest.values()} | used
    return [path for feed_id, _kind, path, received, _seq in feeds
            if feed_id not in keep and path and received < before and Path(path).exists()]


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# ---- database ----------------------------------------------------------------------------------
def maintain_database(settings: Settings) -> dict[str, Any]:
    """SQLite: VACUUM then ANALYZE; PostgreSQL: ANALYZE. Outside a transaction (VACUUM needs it)."""
    engine = connect(settings.database_url)
    dialect = engine.dialect.name
    statements = ["VACUUM", "ANALYZE"] if dialect == "sqlite" else ["ANALYZE"]
    before = _sqlite_size(settings) if dialect == "sqlite" else None
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for statement in statements:
            conn.execute(text(statement))
    result = {"dialect": dialect, "statements": statements}
    if before is not None:
        result.update(bytes_before=before, bytes_after=_sqlite_size(settings))
    with session_scope(settings.database_url) as session:
        audit.record(session, "housekeeping", "database.maintained", dialect, result)
    return result


def _sqlite_size(settings: Settings) -> int:
    from sqlalchemy.engine import make_url

    database = make_url(settings.database_url).database
    return Path(database).stat().st_size if database and Path(database).exists() else 0
