"""Chaos: the transport fault matrix against the real loopback partner server
(connectors/partner_server.py) through the real pull → intake path. After each fault the feed is
taken in exactly once, the partner has exactly one receipt for it, and the books balance."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import select

from connectors import envelope, keys
from connectors.http_pull import PartnerClient, TransportError
from connectors.partner_server import Faults, FeedCatalogue, PartnerServer
from tests.chaos.books import assert_books_balance, assert_taken_in_once, feeds
from verification import pipeline
from verification.storage import session_scope
from verification.storage.models import AuditEvent
from verification.synthetic.exchange import DEMO_TOKEN, ensure_test_keys, publish_district


@pytest.fixture
def served(sqlite_settings, district_dir):
    full = publish_district(sqlite_settings, district_dir)
    feed = next(f for f in full._feeds.values() if f.kind == "wages")
    catalogue = FeedCatalogue()
    catalogue.add(feed)
    faults = Faults()
    with PartnerServer(catalogue, tokens={"hrss": DEMO_TOKEN}, faults=faults) as server:
        yield server, faults, catalogue, feed


def _pull(settings, server, sleeps=None, timeout=(5.0, 60.0), retries=3):
    client = PartnerClient(server.url_for("hrss"), token=DEMO_TOKEN, retries=retries,
                           timeout=timeout, sleep=(sleeps.append if sleeps is not None
                                                   else lambda _s: None))
    return pipeline.pull_partner(settings, "hrss", client)


def _packed(settings, district_dir, tmp_path, sequence: int, period: str,
            plain: bytes | None = None):
    """A correctly signed wages feed under ``sequence`` (as hrss would pack it)."""
    centre = ensure_test_keys(settings).keyring.current.public()
    plain = plain if plain is not None else (district_dir / "feeds" / "wages.csv").read_bytes()
    manifest = envelope.Manifest(partner="hrss", feed_kind="wages", period=period,
                                 sequence=sequence, row_count=plain.count(b"\n") - 1,
                                 schema_version="1.0")
    path = tmp_path / f"wages-{sequence}-{period}.hedui"
    with path.open("wb") as out:
        envelope.pack(io.BytesIO(plain), out, manifest=manifest,
                      sender=keys.insecure_test_signing_key("hrss"), recipient=centre)
    return path


FAULTS = {
    "timeout": {"stall": 1, "stall_seconds": 1.5},
    "5xx": {"fail_5xx": 2},
    "429_retry_after": {"rate_limit": 2, "retry_after": 3},
    "reset": {"reset": 1},
    "truncated_body": {"truncate": 2},
    "duplicate_listing": {"duplicate_listing": 2},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_transport_fault_still_takes_the_feed_in_once(sqlite_settings, served, fault):
    server, faults, catalogue, feed = served
    for name, value in FAULTS[fault].items():
        setattr(faults, name, value)
    sleeps: list[float] = []
    results = _pull(sqlite_settings, server, sleeps, timeout=(5.0, 0.5))
    assert [(r.sequence, r.status) for r in results] == [(feed.sequence, "accepted")]
    assert_taken_in_once(sqlite_settings, "hrss", "wages", feed.sequence,
                         catalogue.receipts["hrss"])
    if fault == "429_retry_after":
        assert sleeps[:2] == [3.0, 3.0]  # the partner's Retry-After, not our own backoff
    assert _pull(sqlite_settings, server) == []  # the next pull: nothing new, nothing doubled
    assert len(catalogue.receipts["hrss"]) == 1


def test_a_partner_down_for_good_registers_nothing_and_loses_nothing(sqlite_settings, served):
    server, faults, catalogue, feed = served
    faults.fail_5xx = 100
    with pytest.raises(TransportError, match="gave up"):
        _pull(sqlite_settings, server, retries=2)
    assert feeds(sqlite_settings) == []
    faults.fail_5xx = 0
    _pull(sqlite_settings, server)
    assert_taken_in_once(sqlite_settings, "hrss", "wages", feed.sequence,
                         catalogue.receipts["hrss"])


def test_a_rejected_sequence_sent_again_is_pulled_again(sqlite_settings, served):
    server, faults, catalogue, feed = served
    faults.wrong_signature = 1  # the partner's signer breaks the feed, listed as it is
    [rejected] = _pull(sqlite_settings, server)
    assert rejected.status == "rejected" and rejected.reason.startswith("BadSignature:")
    [first] = feeds(sqlite_settings)
    broken_file = first.raw_path
    assert _pull(sqlite_settings, server) == []  # the same bad bytes: not taken in again
    catalogue.add(feed)  # the partner sends the corrected file under the same sequence
    [again] = _pull(sqlite_settings, server)
    assert again.feed_id == rejected.feed_id and again.status == "accepted"
    assert [r["status"] for r in catalogue.receipts["hrss"]] == ["rejected", "accepted"]
    [now] = feeds(sqlite_settings)
    assert now.raw_path != broken_file
    with open(broken_file, "rb") as kept:  # the rejected file is kept as it was received
        assert kept.read() != feed.path.read_bytes()
    assert_books_balance(sqlite_settings)


def test_a_listing_far_past_the_expected_sequence_is_refused_and_blocks_nothing(
        sqlite_settings, served, district_dir, tmp_path, caplog):
    server, faults, catalogue, feed = served
    assert _pull(sqlite_settings, server)[0].status == "accepted"
    huge = feed.sequence + 10**8
    catalogue.add_file("hrss", "wages", "2026-11", huge,
                       _packed(sqlite_settings, district_dir, tmp_path, huge, "2026-11"))
    with caplog.at_level(logging.WARNING):
        assert _pull(sqlite_settings, server) == []
    assert "ALERT feed.listing_refused" in caplog.text
    nxt = feed.sequence + 1
    catalogue.add_file("hrss", "wages", "2026-11", nxt,
                       _packed(sqlite_settings, district_dir, tmp_path, nxt, "2026-11"))
    results = _pull(sqlite_settings, server)
    assert [(r.sequence, r.status) for r in results] == [(nxt, "accepted")]
    assert huge not in {f.sequence for f in feeds(sqlite_settings)}  # never downloaded
    with session_scope(sqlite_settings.database_url) as session:
        refused = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "feed.listing_refused")).all()
    assert {e.detail["sequence"] for e in refused} == {huge}
    assert refused[0].detail["partner"] == "hrss"
    assert_books_balance(sqlite_settings)


def test_a_listing_for_a_period_years_ahead_is_refused(sqlite_settings, served, district_dir,
                                                       tmp_path):
    server, faults, catalogue, feed = served
    assert _pull(sqlite_settings, server)[0].status == "accepted"
    nxt = feed.sequence + 1
    catalogue.add_file("hrss", "wages", "2099-01", nxt,
                       _packed(sqlite_settings, district_dir, tmp_path, nxt, "2099-01"))
    assert _pull(sqlite_settings, server) == []
    with session_scope(sqlite_settings.database_url) as session:
        [event] = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "feed.listing_refused")).all()
    assert "period 2099-01" in event.detail["reason"]


def test_an_accepted_sequence_is_never_replaced(sqlite_settings, served, district_dir, tmp_path):
    server, faults, catalogue, feed = served
    [first] = _pull(sqlite_settings, server)
    text = (district_dir / "feeds" / "wages.csv").read_text("utf-8")
    head, *rows = text.splitlines()
    changed = ("\n".join([head, *rows[:-1]]) + "\n").encode()  # one row fewer, re-signed
    catalogue.add_file("hrss", "wages", feed.period, feed.sequence,
                       _packed(sqlite_settings, district_dir, tmp_path, feed.sequence,
                               feed.period, changed))
    faults.replay_old = True  # the partner lists it again though it was accepted
    assert _pull(sqlite_settings, server) == []
    [kept] = feeds(sqlite_settings)
    assert kept.status == "accepted" and kept.rows_received == first.received
    with session_scope(sqlite_settings.database_url) as session:
        [event] = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "feed.listing_refused")).all()
    assert event.detail["reason"].startswith("AcceptedSequence:")


def test_a_receipt_that_did_not_reach_the_partner_is_sent_by_the_next_pull(
        sqlite_settings, served, monkeypatch):
    server, faults, catalogue, feed = served
    real = PartnerClient.send_receipt

    def receipt_lost(self, kind, sequence, receipt):  # noqa: ANN001, ANN202
        raise TransportError("POST receipt: gave up after 4 attempts (HTTP 503)")

    monkeypatch.setattr(PartnerClient, "send_receipt", receipt_lost)
    with pytest.raises(TransportError):
        _pull(sqlite_settings, server)
    [feed_row] = feeds(sqlite_settings)
    assert feed_row.status == "accepted" and feed_row.receipt_sent_at is None
    monkeypatch.setattr(PartnerClient, "send_receipt", real)
    [told] = _pull(sqlite_settings, server)
    assert told.status == "accepted"
    assert_taken_in_once(sqlite_settings, "hrss", "wages", feed.sequence,
                         catalogue.receipts["hrss"])
