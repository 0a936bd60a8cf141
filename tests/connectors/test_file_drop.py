"""File-drop transport: complete files only, the same intake, archive/rejected with receipts."""

import datetime as dt
import io
import json

import pandas as pd
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors import envelope, keys
from connectors.file_drop import complete_files, drop_file, drop_folders
from verification.cli.drop import app
from verification.intake.file_drop import scan_drop_folder
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Feed
from verification.synthetic.exchange import ensure_test_keys, publish_district


@pytest.fixture
def packed(sqlite_settings, district_dir):
    catalogue = publish_district(sqlite_settings, district_dir)
    return next(f for f in catalogue._feeds.values() if f.kind == "wages")


def _scan(settings, root, partner="hrss", **kw):
    centre = ensure_test_keys(settings)
    return scan_drop_folder(settings, root, partner, keyring=centre.keyring,
                            trusted=centre.trusted, **kw)


def test_dropped_file_is_taken_in_archived_with_a_receipt(sqlite_settings, packed, tmp_path):
    root = tmp_path / "drop"
    inbox = drop_folders(root, "hrss")["inbox"]
    # Still being written: no marker yet, so it is left alone.
    (inbox / "wages-202610.hedui").write_bytes(packed.path.read_bytes())
    assert _scan(sqlite_settings, root) == []
    assert (inbox / "wages-202610.hedui").exists()
    (inbox / "wages-202610.hedui.done").touch()
    [result] = _scan(sqlite_settings, root)
    assert result.status == "accepted", result
    assert result.received == result.accepted + result.quarantined > 0
    archived = root / "hrss" / "archive" / "wages-202610.hedui"
    assert archived.read_bytes() == packed.path.read_bytes()
    assert not list(inbox.iterdir()) and not list((root / "hrss" / "processing").iterdir())
    receipt = json.loads((archived.parent / "wages-202610.hedui.receipt.json").read_text())
    assert receipt["status"] == "accepted" and receipt["accepted"] == result.accepted
    assert receipt["kind"] == "wages" and receipt["sequence"] == packed.sequence
    with session_scope(sqlite_settings.database_url) as session:
        feed = session.get(Feed, result.feed_id)
        assert feed.status == "accepted" and feed.raw_path == str(archived)
        staged = feed.staged_path
    assert len(pd.read_parquet(staged)) == result.accepted


def test_tampered_file_goes_to_rejected_and_nothing_is_staged(sqlite_settings, packed, tmp_path):
    root = tmp_path / "drop"
    data = bytearray(packed.path.read_bytes())
    data[-100] ^= 0x40  # a byte in the last chunk
    bad = tmp_path / "wages-202610.hedui"
    bad.write_bytes(bytes(data))
    drop_file(bad, root, "hrss")
    [result] = _scan(sqlite_settings, root)
    assert result.status == "rejected" and result.reason.startswith("Tampered:")
    rejected = root / "hrss" / "rejected" / "wages-202610.hedui"
    assert rejected.read_bytes() == bytes(data)  # kept exactly as received
    receipt = json.loads((rejected.parent / (rejected.name + ".receipt.json")).read_text())
    assert receipt["status"] == "rejected" and "Tampered" in receipt["reason"]
    with session_scope(sqlite_settings.database_url) as session:
        feed = session.get(Feed, result.feed_id)
        assert feed.status == "rejected" and feed.staged_path == ""
        assert feed.raw_path == str(rejected)
    assert not sqlite_settings.staging_dir.exists() or not list(
        sqlite_settings.staging_dir.glob("*.parquet"))


def test_without_markers_only_complete_files_are_taken(sqlite_settings, packed, tmp_path):
    root = tmp_path / "drop"
    inbox = drop_folders(root, "hrss")["inbox"]
    data = packed.path.read_bytes()
    (inbox / "half.hedui").write_bytes(data[: len(data) // 2])
    (inbox / "copying.hedui.part").write_bytes(data[:100])
    assert complete_files(inbox, require_marker=False) == []
    [result] = _scan(sqlite_settings, root, require_marker=False,
                     stale_after=dt.timedelta(0))  # the half file is now given up on
    assert result.status == "rejected" and result.reason.startswith("Truncated:")
    assert (inbox / "copying.hedui.part").exists()
    (inbox / "full.hedui").write_bytes(data)
    [result] = _scan(sqlite_settings, root, require_marker=False)
    assert result.status == "accepted" and result.file == "full.hedui"


def test_file_in_another_partners_folder_is_rejected(sqlite_settings, packed, tmp_path):
    root = tmp_path / "drop"
    drop_file(packed.path, root, "police")
    [result] = _scan(sqlite_settings, root, partner="police")
    assert result.status == "rejected" and result.reason.startswith("WrongPartner:")
    assert "文件所署的报送单位与投放目录不符" in result.reason  # Chinese first, as intake's
    assert result.feed_id is None
    with session_scope(sqlite_settings.database_url) as session:
        assert session.scalar(select(func.count(Feed.id))) == 0
        # no feed row, but a record the centre can review: who dropped what, and why refused
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "drop.rejected")).one()
    assert event.detail["partner"] == "police" and len(event.detail["sha256"]) == 64
    assert event.detail["reason"].startswith("WrongPartner:")
    assert (root / "police" / "rejected" / packed.path.name).exists()


def test_a_different_file_with_an_accepted_sequence_is_rejected_as_replay(
        sqlite_settings, packed, district_dir, tmp_path):
    root = tmp_path / "drop"
    drop_file(packed.path, root, "hrss")
    [first] = _scan(sqlite_settings, root)
    assert first.status == "accepted"
    # The partner re-packs (new key material, new bytes) with the same sequence number.
    centre = ensure_test_keys(sqlite_settings).keyring.current.public()
    plain = (district_dir / "feeds" / "wages.csv").read_bytes()
    manifest = envelope.Manifest(partner="hrss", feed_kind="wages", period="2026-10",
                                 sequence=packed.sequence, row_count=plain.count(b"\n") - 1,
                                 schema_version="1.0")
    again = tmp_path / packed.path.name
    with again.open("wb") as out:
        envelope.pack(io.BytesIO(plain), out, manifest=manifest,
                      sender=keys.insecure_test_signing_key("hrss"), recipient=centre)
    drop_file(again, root, "hrss")
    [second] = _scan(sqlite_settings, root)
    assert second.status == "rejected" and second.reason.startswith("Replayed:")
    assert (root / "hrss" / "rejected" / second.file).read_bytes() == again.read_bytes()
    assert (root / "hrss" / "archive" / packed.path.name).exists()  # the first stays archived
    with session_scope(sqlite_settings.database_url) as session:
        assert session.get(Feed, first.feed_id).status == "accepted"


def test_cli_scan_reports_and_fails_on_a_rejection(sqlite_settings, packed, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv("HEDUI_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", sqlite_settings.database_url)
    ensure_test_keys(sqlite_settings)
    root = tmp_path / "drop"
    drop_file(packed.path, root, "hrss")
    ok = CliRunner().invoke(app, ["scan", str(root)])
    assert ok.exit_code == 0, ok.output
    assert f"hrss {packed.path.name}: accepted" in ok.output
    (tmp_path / "junk.hedui").write_bytes(b"not an envelope")
    drop_file(tmp_path / "junk.hedui", root, "hrss")
    bad = CliRunner().invoke(app, ["scan", str(root), "--partner", "hrss"])
    assert bad.exit_code == 1 and "junk.hedui: rejected MalformedEnvelope" in bad.output


def test_scan_from_the_partners_airflow_connection(sqlite_settings, packed, tmp_path,
                                                   monkeypatch):
    from connectors.hooks import PartnerHook
    from verification.pipeline import FeedRejected
    from verification.pipeline import scan_drop_and_report as scan_and_report

    ensure_test_keys(sqlite_settings)
    root = tmp_path / "drop"
    monkeypatch.setenv("AIRFLOW_CONN_HEDUI_PARTNER_HRSS", json.dumps(
        {"conn_type": "fs", "extra": {"drop_root": str(root)}}))
    with pytest.raises(FileNotFoundError, match="投递目录 .* 不存在"):
        PartnerHook("hedui_partner_hrss").drop_folder()  # not there yet: one clear line
    drop_file(packed.path, root, "hrss")
    drop = PartnerHook("hedui_partner_hrss").drop_folder()
    assert drop.root == root and drop.require_marker
    [summary] = scan_and_report(sqlite_settings, "hrss", drop)
    assert summary["status"] == "accepted" and summary["kind"] == "wages"
    assert scan_and_report(sqlite_settings, "hrss", drop) == []
    (tmp_path / "junk.hedui").write_bytes(b"junk")
    drop_file(tmp_path / "junk.hedui", root, "hrss")
    with pytest.raises(FeedRejected, match="junk.hedui: MalformedEnvelope"):
        scan_and_report(sqlite_settings, "hrss", drop)
