"""Intake: a packed feed becomes staged rows with tokens only; bad feeds are rejected whole."""

import io
import shutil

import pandas as pd
import pytest
from sqlalchemy import func, select

from connectors import envelope, keys
from connectors.demo_exchange import ensure_test_keys, publish_district
from verification import intake
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Feed, QuarantinedRow


def _register(settings, district_dir, kind="wages", partner="hrss", sequence=None, raw=None):
    catalogue = publish_district(settings, district_dir)
    feed = next(f for f in catalogue._feeds.values() if f.kind == kind)
    target = settings.feeds_dir / partner / f"{kind}-{sequence or feed.sequence}.hedui"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(raw if raw is not None else feed.path.read_bytes())
    return intake.register_feed(settings, partner, kind, feed.period, sequence or feed.sequence,
                                target)


def _process(settings, feed_id):
    centre = ensure_test_keys(settings)
    return intake.process_feed(settings, feed_id, centre.keyring, centre.trusted)


def test_feed_is_staged_with_tokens_and_counts_reconcile(settings, district_dir):
    result = _process(settings, _register(settings, district_dir))
    assert result.status == "accepted"
    assert result.received == result.accepted + result.quarantined
    assert result.quarantined > 0  # the generator plants bad rows
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, result.feed_id)
        lines = session.scalars(select(QuarantinedRow.line)
                                .where(QuarantinedRow.feed_id == feed.id)).all()
        staged_path = feed.staged_path
    assert len(set(lines)) == result.quarantined and all(line >= 2 for line in lines)
    staged = pd.read_parquet(staged_path)
    assert "id_number" not in staged.columns and "name" not in staged.columns
    assert staged["person_token"].dtype == "Int64" and len(staged) == result.accepted
    raw_csv = (district_dir / "feeds" / "wages.csv").read_text("utf-8")
    some_id = raw_csv.splitlines()[1].split(",")[1].strip()
    with open(staged_path, "rb") as handle:
        assert some_id.encode() not in handle.read()


def test_processing_again_changes_nothing(settings, district_dir):
    feed_id = _register(settings, district_dir)
    first = _process(settings, feed_id)
    again = _process(settings, _register(settings, district_dir))
    assert again == first
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count(Feed.id))) == 1


def test_tampered_feed_is_rejected_whole_and_nothing_is_staged(settings, district_dir):
    good = publish_district(settings, district_dir)
    packed = next(f for f in good._feeds.values() if f.kind == "deaths").path.read_bytes()
    broken = bytearray(packed)
    broken[-40] ^= 0x01  # one flipped bit in the last chunk
    result = _process(settings, _register(settings, district_dir, "deaths", "civil",
                                          raw=bytes(broken)))
    assert result.status == "rejected" and "Tampered" in result.reason
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, result.feed_id)
        assert feed.staged_path == "" and shutil.os.path.exists(feed.raw_path)
        actions = session.scalars(select(AuditEvent.action)).all()
    assert "feed.rejected" in actions
    assert not list(settings.staging_dir.glob("*.parquet"))


def test_replayed_or_older_sequence_is_rejected(settings, district_dir):
    assert _process(settings, _register(settings, district_dir, "deaths", "civil")).status == \
        "accepted"
    # the same signed envelope offered again under a newer listing number
    replay = _process(settings, _register(settings, district_dir, "deaths", "civil",
                                          sequence=999999))
    assert replay.status == "rejected"
    assert "listed as" in replay.reason or "Replayed" in replay.reason


def test_feed_signed_by_an_unknown_partner_key_is_rejected(settings, district_dir):
    ensure_test_keys(settings)
    rogue = keys.generate_signing_key("civil")
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()
    plain = (district_dir / "feeds" / "deaths.csv").read_bytes()
    manifest = envelope.Manifest(partner="civil", feed_kind="deaths", period="2026-10",
                                 sequence=202610, row_count=plain.count(b"\n") - 1,
                                 schema_version="1.0")
    out = io.BytesIO()
    envelope.pack(io.BytesIO(plain), out, manifest=manifest, sender=rogue, recipient=centre)
    result = _process(settings, _register(settings, district_dir, "deaths", "civil",
                                          raw=out.getvalue()))
    assert result.status == "rejected" and "UnknownKey" in result.reason


@pytest.mark.parametrize("claimed_extra", [1, -1])
def test_row_count_that_does_not_match_the_manifest_rejects_the_feed(settings, district_dir,
                                                                     claimed_extra):
    ensure_test_keys(settings)
    signer = keys.insecure_test_signing_key("civil")
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()
    plain = (district_dir / "feeds" / "deaths.csv").read_bytes()
    rows = plain.count(b"\n") - 1
    manifest = envelope.Manifest(partner="civil", feed_kind="deaths", period="2026-10",
                                 sequence=202610, row_count=rows + claimed_extra,
                                 schema_version="1.0")
    out = io.BytesIO()
    envelope.pack(io.BytesIO(plain), out, manifest=manifest, sender=signer, recipient=centre)
    result = _process(settings, _register(settings, district_dir, "deaths", "civil",
                                          raw=out.getvalue()))
    assert result.status == "rejected" and "RowCountMismatch" in result.reason
