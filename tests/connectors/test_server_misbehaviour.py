"""The reference server misbehaving (wrong signature, replays, connection reset) through the real
pull → intake path: each whole-feed fault is rejected with its specific reason, nothing of it is
staged, and the partner is told so in its receipt."""

import io

import pytest
from sqlalchemy import func, select

from connectors import envelope, keys
from connectors.http_pull import PartnerClient, TransportError
from connectors.partner_server import Faults, FeedCatalogue, PartnerServer
from verification import pipeline
from verification.storage import session_scope
from verification.storage.models import Feed, QuarantinedRow
from verification.synthetic.exchange import DEMO_TOKEN, ensure_test_keys, publish_district


@pytest.fixture
def wages_only(sqlite_settings, district_dir):
    """A server offering hrss's wages feed alone (pensions lists nothing)."""
    full = publish_district(sqlite_settings, district_dir)
    feed = next(f for f in full._feeds.values() if f.kind == "wages")
    catalogue = FeedCatalogue()
    catalogue.add(feed)
    faults = Faults()
    with PartnerServer(catalogue, tokens={"hrss": DEMO_TOKEN}, faults=faults) as server:
        yield server, faults, catalogue, feed


def _pull(settings, server, retries=2):
    client = PartnerClient(server.url_for("hrss"), token=DEMO_TOKEN, retries=retries,
                           sleep=lambda _s: None)
    return pipeline.pull_partner(settings, "hrss", client)


def _nothing_staged_for(settings, feed_id):
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, feed_id)
        quarantined = session.scalar(select(func.count(QuarantinedRow.id))
                                     .where(QuarantinedRow.feed_id == feed_id))
        assert feed.status == "rejected" and feed.staged_path == "" and quarantined == 0
        assert feed.rows_accepted == 0
        raw_path = feed.raw_path
    assert not (settings.staging_dir / f"feed-{feed_id}.parquet").exists()
    return raw_path


def test_wrong_signature_is_rejected_and_nothing_staged(sqlite_settings, wages_only):
    server, faults, catalogue, feed = wages_only
    faults.wrong_signature = 1
    [result] = _pull(sqlite_settings, server)
    assert result.status == "rejected"
    assert result.reason.startswith("BadSignature:")
    raw = _nothing_staged_for(sqlite_settings, result.feed_id)
    with open(raw, "rb") as kept:  # kept exactly as received
        assert kept.read() != feed.path.read_bytes()
    assert catalogue.receipts["hrss"][-1]["status"] == "rejected"
    assert "BadSignature" in catalogue.receipts["hrss"][-1]["reason"]


def test_newest_feed_replayed_under_a_new_sequence_is_rejected(sqlite_settings, wages_only):
    server, faults, catalogue, feed = wages_only
    [first] = _pull(sqlite_settings, server)
    assert first.status == "accepted"
    faults.replay_as_new = 1
    [replayed] = _pull(sqlite_settings, server)
    assert replayed.sequence == feed.sequence + 1 and replayed.status == "rejected"
    # The signed manifest inside still names the accepted sequence: a replay.
    assert replayed.reason.startswith("Replayed:")
    assert f"sequence {feed.sequence} is a replay" in replayed.reason
    _nothing_staged_for(sqlite_settings, replayed.feed_id)


def test_older_sequence_resigned_and_replayed_is_rejected(sqlite_settings, wages_only,
                                                          district_dir, tmp_path):
    server, faults, catalogue, feed = wages_only
    [first] = _pull(sqlite_settings, server)
    assert first.status == "accepted"
    # A re-signed copy of the same rows under an older sequence number, offered again.
    centre = ensure_test_keys(sqlite_settings).keyring.current.public()
    plain = (district_dir / "feeds" / "wages.csv").read_bytes()
    manifest = envelope.Manifest(partner="hrss", feed_kind="wages", period="2026-09",
                                 sequence=feed.sequence - 1,
                                 row_count=plain.count(b"\n") - 1, schema_version="1.0")
    older = tmp_path / "older.hedui"
    with older.open("wb") as out:
        envelope.pack(io.BytesIO(plain), out, manifest=manifest,
                      sender=keys.insecure_test_signing_key("hrss"), recipient=centre)
    catalogue.add_file("hrss", "wages", "2026-09", feed.sequence - 1, older)
    faults.replay_old = True
    results = _pull(sqlite_settings, server)
    by_sequence = {r.sequence: r for r in results}
    assert by_sequence[feed.sequence] == first  # the accepted one is not taken in twice
    stale = by_sequence[feed.sequence - 1]
    assert stale.status == "rejected" and stale.reason.startswith("Replayed:")
    _nothing_staged_for(sqlite_settings, stale.feed_id)


def test_connection_reset_mid_download_is_resumed(sqlite_settings, wages_only):
    server, faults, catalogue, feed = wages_only
    faults.reset = 1
    [result] = _pull(sqlite_settings, server)
    assert result.status == "accepted" and result.received == result.accepted + result.quarantined


def test_connection_reset_every_time_is_reported_and_nothing_registered(sqlite_settings,
                                                                        wages_only):
    server, faults, catalogue, feed = wages_only
    faults.reset = 100
    with pytest.raises(TransportError, match="download incomplete"):
        _pull(sqlite_settings, server, retries=2)
    with session_scope(sqlite_settings.database_url) as session:
        assert session.scalar(select(func.count(Feed.id))) == 0
    folder = sqlite_settings.feeds_dir / "hrss"
    assert not list(folder.glob("*.hedui"))  # only the .part, never seen as a feed
    assert not sqlite_settings.staging_dir.exists() or not list(
        sqlite_settings.staging_dir.iterdir())
