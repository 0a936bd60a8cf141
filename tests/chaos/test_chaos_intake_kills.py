"""Chaos: a pull SIGKILLed at each step of intake, then the next pull. The feed is taken in exactly
once, the partner gets its receipt, nothing half-done is left (no ``received`` feed, no orphan
staging file) and the books balance."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.http_pull import PartnerClient
from connectors.partner_server import FeedCatalogue, PartnerServer
from tests.chaos.books import assert_taken_in_once, feeds
from verification import housekeeping, pipeline
from verification.intake import feeds as intake
from verification.storage import session_scope
from verification.storage.models import AuditEvent
from verification.synthetic.exchange import DEMO_TOKEN, ensure_test_keys, publish_district

CHILD = Path(__file__).with_name("intake_crash_child.py")
STEPS = ["before_register", "after_register", "during_staging", "before_commit",
         "before_receipt"]
# Every step on SQLite; on PostgreSQL the two where the database holds the half-done state.
CASES = [("sqlite", step) for step in STEPS] + [("postgres", "after_register"),
                                                ("postgres", "before_commit")]


@pytest.fixture
def wages_server(settings, district_dir):
    full = publish_district(settings, district_dir)
    feed = next(f for f in full._feeds.values() if f.kind == "wages")
    catalogue = FeedCatalogue()
    catalogue.add(feed)
    with PartnerServer(catalogue, tokens={"hrss": DEMO_TOKEN}) as server:
        yield server, catalogue, feed


def _killed_pull(settings, server, step: str) -> None:
    env = {**os.environ, "HEDUI_HOME": str(settings.home),
           "HEDUI_DATABASE_URL": settings.database_url}
    done = subprocess.run([sys.executable, str(CHILD), step, "hrss", server.url_for("hrss"),
                           DEMO_TOKEN], env=env, capture_output=True, text=True, timeout=300,
                          check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _pull(settings, server, now=None):
    client = PartnerClient(server.url_for("hrss"), token=DEMO_TOKEN, retries=1,
                           sleep=lambda _s: None)
    return pipeline.pull_partner(settings, "hrss", client, now=now)


@pytest.mark.parametrize(("database_url", "step"), CASES, indirect=["database_url"])
def test_a_pull_killed_at_each_step_is_recovered_by_the_next_pull(settings, wages_server, step):
    server, catalogue, feed = wages_server
    ensure_test_keys(settings)
    _killed_pull(settings, server, step)
    left = feeds(settings)
    if step == "before_register":
        assert left == []
    elif step == "before_receipt":
        assert [f.status for f in left] == ["accepted"] and left[0].receipt_sent_at is None
    else:
        assert [f.status for f in left] == ["received"]  # the kill left it half-done
    assert not catalogue.receipts.get("hrss")
    results = _pull(settings, server)
    assert [(r.sequence, r.status) for r in results] == [(feed.sequence, "accepted")]
    taken = assert_taken_in_once(settings, "hrss", "wages", feed.sequence,
                                 catalogue.receipts["hrss"])
    assert results[0].received == taken.rows_received > 0
    # nothing left over from the killed attempt once housekeeping has run
    intake.clean_orphan_staging(settings, older_than=dt.timedelta(0))
    assert sorted(p.name for p in settings.staging_dir.iterdir()) == [
        f"feed-{taken.id}.parquet", f"feed-{taken.id}.persons.parquet"]  # the feed, its digests
    again = _pull(settings, server)  # and a further pull changes nothing
    assert again == [] and len(catalogue.receipts["hrss"]) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_housekeeping_takes_in_a_feed_left_received_and_alerts_when_it_waited(
        settings, wages_server, monkeypatch):
    server, catalogue, feed = wages_server
    ensure_test_keys(settings)
    _killed_pull(settings, server, "after_register")
    [left] = feeds(settings)
    later = left.received_at.replace(tzinfo=dt.UTC) + dt.timedelta(hours=3)
    [result] = housekeeping.resume_interrupted_intake(settings, now=later)
    assert result.status == "accepted" and result.feed_id == left.id
    with session_scope(settings.database_url) as session:
        waited = session.query(AuditEvent).filter(AuditEvent.action == "feed.waited").all()
        assert [e.subject for e in waited] == [f"feed:{left.id}"]
        assert waited[0].detail["partner"] == "hrss" and waited[0].detail["waited_minutes"] >= 180
    # the receipt is owed until the next pull, which sends it and takes in nothing again
    assert not catalogue.receipts.get("hrss")
    assert _pull(settings, server) == [result]
    assert_taken_in_once(settings, "hrss", "wages", feed.sequence, catalogue.receipts["hrss"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_query_answer_left_received_is_alerted_but_left_to_its_own_check(settings,
                                                                           wages_server):
    """An answer to a query list is taken in only after the check that it names no person who
    was not asked (query_list.py): housekeeping never takes one in on its own."""
    server, catalogue, feed = wages_server
    ensure_test_keys(settings)
    raw = settings.feeds_dir / "hrss" / intake.query_answer_name("wages", "q-1")
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(feed.path.read_bytes())
    feed_id = intake.register_feed(settings, "hrss", "wages", feed.period, feed.sequence, raw)
    [left] = feeds(settings)
    later = left.received_at.replace(tzinfo=dt.UTC) + dt.timedelta(hours=2)
    assert housekeeping.resume_interrupted_intake(settings, now=later) == []
    assert [f.status for f in feeds(settings)] == ["received"]
    with session_scope(settings.database_url) as session:
        waited = session.query(AuditEvent).filter(AuditEvent.action == "feed.waited").all()
    assert [e.subject for e in waited] == [f"feed:{feed_id}"]
