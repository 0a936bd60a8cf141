"""Retention: raw feeds and staged data go after the configured period; what a review still
needs stays; the database rows and the audit trail stay; every purge is audited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from verification.cli.security import app
from verification.security import audit
from verification.security.retention import purge, retention_days
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Feed, Partner, Run

NOW = dt.datetime(2026, 11, 1, 12, 0)


def _file(path: Path, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def _feed(settings, session, partner: Partner, kind: str, sequence: int, age_days: int,
          status: str = "accepted") -> Feed:
    raw = _file(settings.feeds_dir / partner.code / f"{kind}-{sequence}.hedui")
    staged = _file(settings.staging_dir / f"{kind}-{sequence}.parquet", 50)
    feed = Feed(partner=partner, kind=kind, period="2026-01", sequence=sequence,
                envelope_sha256="0" * 64, status=status, raw_path=str(raw),
                staged_path=str(staged), received_at=NOW - dt.timedelta(days=age_days))
    session.add(feed)
    session.flush()
    return feed


@pytest.fixture
def feeds(settings):
    with session_scope(settings.database_url) as session:
        hrss = Partner(code="hrss", name_zh="人社", name_en="HRSS")
        session.add(hrss)
        made = {
            "old_wages": _feed(settings, session, hrss, "wages", 1, 400),
            "old_rejected": _feed(settings, session, hrss, "wages", 2, 300, "rejected"),
            "newest_wages": _feed(settings, session, hrss, "wages", 3, 250),  # newest of kind
            "recent_wages": _feed(settings, session, hrss, "wages", 0, 10, "rejected"),
            "old_pensions_in_run": _feed(settings, session, hrss, "pensions", 1, 300),
            "newer_pensions": _feed(settings, session, hrss, "pensions", 2, 200),
        }
        running = Run(run_key="r-running", as_of=dt.date(2026, 10, 1), region="210112",
                      status="running", feed_versions={"pensions": {
                          "feed_id": made["old_pensions_in_run"].id}})
        old_done = Run(run_key="r-old", as_of=dt.date(2025, 1, 1), region="210112",
                       status="done", finished_at=NOW - dt.timedelta(days=365))
        recent_done = Run(run_key="r-new", as_of=dt.date(2026, 10, 1), region="210112",
                          status="done", finished_at=NOW - dt.timedelta(days=5))
        session.add_all([running, old_done, recent_done])
        session.flush()
        for run in (old_done, recent_done):
            _file(settings.runs_dir / f"run-{run.id}" / "evidence.parquet")
        ids = {k: (f.id, Path(f.raw_path), Path(f.staged_path)) for k, f in made.items()}
        runs = {"old": old_done.id, "recent": recent_done.id}
    return ids, runs


def test_purge_removes_old_files_keeps_what_is_in_use_and_is_audited(settings, feeds):
    ids, runs = feeds
    result = purge(settings, "admin", days=180, now=NOW)
    purged = {ids[k][0] for k in ("old_wages", "old_rejected")}
    assert set(result.feeds) == purged
    assert set(result.kept_in_use) == {ids[k][0] for k in ("newest_wages", "old_pensions_in_run",
                                                           "newer_pensions")}
    assert result.files == 4 and result.bytes == 2 * 150
    for key, (_, raw, staged) in ids.items():
        gone = ids[key][0] in purged
        assert raw.exists() is not gone and staged.exists() is not gone, key
    # Work folders are housekeeping's, not retention's.
    assert (settings.runs_dir / f"run-{runs['old']}").exists()
    with session_scope(settings.database_url) as session:
        rows = {f.id: f for f in session.scalars(select(Feed))}
        assert {i for i, f in rows.items() if f.purged_at} == purged
        assert all(rows[i].rows_received == 0 and rows[i].envelope_sha256 for i in purged)
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "retention.purged"))
        assert sorted(event.detail["feeds"]) == sorted(purged) and event.detail["days"] == 180
        assert audit.verify_chain(session).ok
    again = purge(settings, "admin", days=180, now=NOW)
    assert again.feeds == [] and again.files == 0


def test_dry_run_deletes_nothing_and_records_nothing(settings, feeds):
    ids, _ = feeds
    result = purge(settings, "admin", days=180, now=NOW, dry_run=True)
    assert len(result.feeds) == 2 and result.files == 4
    assert all(raw.exists() and staged.exists() for _, raw, staged in ids.values())
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(AuditEvent).where(
            AuditEvent.action == "retention.purged")) is None
        assert not any(f.purged_at for f in session.scalars(select(Feed)))


def test_a_path_outside_the_data_folders_is_never_deleted(settings, feeds, tmp_path):
    ids, _ = feeds
    outsider = _file(tmp_path / "elsewhere" / "precious.csv")
    with session_scope(settings.database_url) as session:
        session.get(Feed, ids["old_wages"][0]).raw_path = str(outsider)
        session.get(Feed, ids["old_rejected"][0]).staged_path = str(
            settings.staging_dir / ".." / ".." / "elsewhere" / "precious.csv")
    purge(settings, "admin", days=180, now=NOW)
    assert outsider.exists()


def test_the_period_comes_from_configuration(monkeypatch):
    monkeypatch.delenv("HEDUI_RETENTION_DAYS", raising=False)
    assert retention_days() == 180
    monkeypatch.setenv("HEDUI_RETENTION_DAYS", "30")
    assert retention_days() == 30
    for bad in ("0", "-3", "ninety"):
        monkeypatch.setenv("HEDUI_RETENTION_DAYS", bad)
        with pytest.raises(ValueError, match="HEDUI_RETENTION_DAYS"):
            retention_days()


def test_cli_purge_needs_the_permission(sqlite_settings, monkeypatch):
    monkeypatch.setenv("HEDUI_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", sqlite_settings.database_url)
    refused = CliRunner().invoke(app, ["purge", "--user", "hedui_staff"])
    assert refused.exit_code == 1 and "may not retention.purge" in refused.output
    done = CliRunner().invoke(app, ["purge", "--user", "admin", "--days", "30"])
    assert done.exit_code == 0 and "removed 0 files" in done.output
    with session_scope(sqlite_settings.database_url) as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "retention.purged"))
    assert event.actor == "admin" and event.detail["days"] == 30
