"""Housekeeping: stale-feed alerts from the partner registry, key-expiry warnings, retention that
never touches what a past run needs, and database maintenance on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.registry import load_partners
from tests.conftest import pull_everything, review_in_process
from tests.orchestration.conftest import run_state
from verification import housekeeping
from verification.intake.roster import load_roster
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Feed, Run

CLOCK = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def _received(settings, when: dt.datetime, kind: str | None = None) -> None:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        for feed in session.scalars(select(Feed)):
            if kind is None or feed.kind == kind:
                feed.received_at = when


def _audit_actions(settings) -> list[str]:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_stale_feeds_follow_each_partners_expected_interval(settings, district_dir):
    pull_everything(settings, district_dir)
    now = CLOCK.replace(tzinfo=None)
    _received(settings, now - dt.timedelta(days=20))
    # civil (deaths) expects a delivery every 10 days, the others every 35
    assert [(s.partner, s.kind, s.days_since) for s in
            housekeeping.stale_feeds(settings, CLOCK)] == [("civil", "deaths", 20)]
    _received(settings, now - dt.timedelta(days=36), kind="vehicles")
    alerts = housekeeping.alert_stale_feeds(settings, CLOCK)
    assert {(a["partner"], a["kind"]) for a in alerts} == {("civil", "deaths"),
                                                           ("police", "vehicles")}
    assert _audit_actions(settings).count("feed.stale") == 2


def test_a_partner_that_never_delivered_is_stale(sqlite_settings):
    stale = housekeeping.stale_feeds(sqlite_settings, CLOCK)
    expected = sum(len(spec.feeds) for spec in load_partners().values())
    assert len(stale) == expected and all(s.last_received is None for s in stale)


def test_keys_near_the_end_of_their_lifetime_are_warned(sqlite_settings):
    from verification.synthetic.exchange import ensure_test_keys

    ensure_test_keys(sqlite_settings)  # test keys are created 2026-01-01
    config = housekeeping.load_config()
    assert housekeeping.key_warnings(sqlite_settings, config, CLOCK.replace(month=11, day=1)) == []
    warned = housekeeping.key_warnings(sqlite_settings, config, CLOCK)  # 30 days before expiry
    assert [(w.role, w.days_left, w.expires) for w in warned] == [
        ("centre_recipient", 30, "2027-01-01")]
    assert warned[0].test_key
    later = housekeeping.alert_key_expiry(sqlite_settings, config,
                                          dt.datetime(2028, 1, 10, tzinfo=dt.UTC))
    assert {a["role"] for a in later} == {"centre_recipient", "partner_signing"}
    assert all(a["days_left"] < 0 for a in later), "expired keys are reported too"


def test_config_is_validated(tmp_path):
    bad = tmp_path / "hk.yaml"
    bad.write_text("retention_days: {run_workdirs: 0}\nkey_lifetime_days: {}\n"
                   "key_warning_days: 3\n", "utf-8")
    with pytest.raises(ValueError, match="must name exactly"):
        housekeeping.load_config(bad)


def _age(path: Path, days: int) -> None:
    when = (CLOCK - dt.timedelta(days=days)).timestamp()
    os.utime(path, (when, when))


def test_purge_keeps_what_past_runs_need_and_removes_the_rest(sqlite_settings, district_dir):
    settings = sqlite_settings
    load_roster(settings, district_dir / "roster.csv")
    pull_everything(settings, district_dir)
    run_id = review_in_process(settings, dt.date(2026, 11, 1))
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        run.finished_at = CLOCK.replace(tzinfo=None) - dt.timedelta(days=45)
        used = [v["staged_path"] for v in run.feed_versions.values()]
        # a feed no run used, superseded by a newer delivery of its kind, received long ago
        old = session.scalars(select(Feed).where(Feed.kind == "wages")).one()
        orphan = Feed(partner_id=old.partner_id, kind="wages", period="2025-01", sequence=1,
                      envelope_sha256="0" * 64, status="accepted",
                      staged_path=str(settings.staging_dir / "orphan.parquet"),
                      received_at=CLOCK.replace(tzinfo=None) - dt.timedelta(days=500))
        session.add(orphan)
        orphan_path = orphan.staged_path
    Path(orphan_path).write_bytes(b"PAR1")
    workdir = settings.runs_dir / f"run-{run_id}"
    stray = settings.runs_dir / "run-999"
    stray.mkdir(parents=True)
    _age(stray, 10)
    assert workdir.is_dir()

    config = housekeeping.load_config()
    listed = housekeeping.purge(settings, config, CLOCK, dry_run=True)
    assert listed["run_workdirs"] == [str(workdir)]
    assert listed["superseded_staging"] == [orphan_path]
    assert workdir.exists() and Path(orphan_path).exists(), "a dry run deletes nothing"

    housekeeping.purge(settings, config, CLOCK)
    assert not workdir.exists() and not Path(orphan_path).exists()
    assert stray.exists(), "younger than the retention period"
    assert all(Path(p).exists() for p in used), "staged rows of feeds a run used are kept"
    assert "retention.purged" in _audit_actions(settings)
    assert housekeeping.purge(settings, config, CLOCK)["run_workdirs"] == []


def test_database_maintenance_on_both_backends(settings):
    result = housekeeping.maintain_database(settings)
    if settings.database_url.startswith("sqlite"):
        assert result["statements"] == ["VACUUM", "ANALYZE"] and result["bytes_after"] > 0
    else:
        assert result["statements"] == ["ANALYZE"]
    assert _audit_actions(settings)[-1] == "database.maintained"


@pytest.mark.airflow
def test_housekeeping_dag_runs_end_to_end(dag_bag, fed_home):
    run = dag_bag.get_dag("housekeeping").test(run_conf={"dry_run": True})
    assert run_state(run) == "success"
    actions = _audit_actions(fed_home)
    assert "database.maintained" in actions and "retention.purged" not in actions
