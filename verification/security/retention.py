"""Retention: raw feeds and staged data are deleted once they are older than the configured period.

What goes: each feed's file as received (``feeds/<partner>/…``, encrypted) and its staged Parquet
(``staging/feed-<id>.parquet``, tokens only). What stays: the feed's row in the database
(provenance, counts, digests, quarantine reasons, ``purged_at``), flags with their evidence,
reports, and the audit trail — so every flag remains explainable after the data it came from is
gone. Work folders, inbox files and old reports are housekeeping's (verification/housekeeping.py).

A feed that a review would still use — the newest accepted feed of its kind — is kept whatever
its age, and so is any feed named by a run that is still running. Every purge is recorded in the
audit trail (feed ids, files and bytes removed; never contents).

Period: ``HEDUI_RETENTION_DAYS`` (default 180). No national rule fixes it; the district sets it
with its archive rules (authorisations and reports are kept for the life of the case).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from verification.config import Settings
from verification.intake.digests import digests_path
from verification.security import audit
from verification.storage import session_scope
from verification.storage.models import Feed, Run, utcnow

DEFAULT_RETENTION_DAYS = 180


def retention_days() -> int:
    raw = os.environ.get("HEDUI_RETENTION_DAYS", str(DEFAULT_RETENTION_DAYS))
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"HEDUI_RETENTION_DAYS={raw!r} is not a whole number of days") from None
    if days < 1:
        raise ValueError("HEDUI_RETENTION_DAYS must be at least 1")
    return days


@dataclass
class PurgeResult:
    cutoff: dt.datetime
    feeds: list[int] = field(default_factory=list)
    kept_in_use: list[int] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, ValueError):
        return False


def _remove(path: Path, root: Path, result: PurgeResult, dry_run: bool) -> None:
    """Delete a file or folder, but only inside ``root`` (a stray path in the DB is not obeyed)."""
    if not _inside(path, root) or not path.exists():
        return
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    result.files += len(files)
    result.bytes += sum(p.stat().st_size for p in files)
    if dry_run:
        return
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _in_use(session) -> set[int]:  # noqa: ANN001
    newest: dict[str, int] = {}
    for feed in session.scalars(select(Feed).where(Feed.status == "accepted")
                                .order_by(Feed.kind, Feed.received_at.desc(), Feed.id.desc())):
        newest.setdefault(feed.kind, feed.id)
    used = set(newest.values())
    for run in session.scalars(select(Run).where(Run.status == "running")):
        used.update(int(v["feed_id"]) for v in (run.feed_versions or {}).values()
                    if v.get("feed_id"))
    return used


def purge(settings: Settings, actor: str, *, days: int | None = None,
          now: dt.datetime | None = None, dry_run: bool = False) -> PurgeResult:
    """Delete raw feeds and staged data received more than ``days`` ago; audited."""
    cutoff = (now or utcnow()) - dt.timedelta(days=days or retention_days())
    result = PurgeResult(cutoff=cutoff)
    with session_scope(settings.database_url) as session:
        in_use = _in_use(session)
        old = session.scalars(select(Feed).where(Feed.purged_at.is_(None),
                                                 Feed.received_at < cutoff)
                              .order_by(Feed.id)).all()
        for feed in old:
            if feed.id in in_use:
                result.kept_in_use.append(feed.id)
                continue
            if feed.raw_path:
                _remove(Path(feed.raw_path), settings.feeds_dir, result, dry_run)
            if feed.staged_path:
                _remove(Path(feed.staged_path), settings.staging_dir, result, dry_run)
                _remove(digests_path(Path(feed.staged_path)), settings.staging_dir, result,
                        dry_run)
            if not dry_run:
                feed.purged_at = utcnow()
            result.feeds.append(feed.id)
        if not dry_run:
            audit.record(session, actor, "retention.purged", f"before:{cutoff:%Y-%m-%d}",
                         {"feeds": result.feeds, "kept_in_use": result.kept_in_use,
                          "files": result.files, "bytes": result.bytes,
                          "days": days or retention_days()})
    return result
