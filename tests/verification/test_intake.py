"""Intake: a packed feed becomes staged rows with tokens only; bad feeds are rejected whole."""

import io
import shutil

import pandas as pd
import pytest
from sqlalchemy import func, select

from connectors import envelope, keys
from verification.intake import feeds as intake
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Feed, QuarantinedRow
from verification.synthetic.exchange import ensure_test_keys, publish_district


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
    # the generator plants bad rows: the wage row whose only fault is its ID number is accepted
    # with its identity unresolved
    assert result.quarantined + result.identity_unresolved > 0
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


# ---- decoding by content type: encodings and formats through process_feed ---------------------
def _staged_from_plain(settings, district_dir, plain: bytes, content_type: str, rows: int,
                       kind="deaths", partner="civil"):
    ensure_test_keys(settings)
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()
    manifest = envelope.Manifest(partner=partner, feed_kind=kind, period="2026-10",
                                 sequence=202610, row_count=rows, schema_version="1.0",
                                 content_type=content_type)
    out = io.BytesIO()
    envelope.pack(io.BytesIO(plain), out, manifest=manifest,
                  sender=keys.insecure_test_signing_key(partner), recipient=centre)
    return _process(settings, _register(settings, district_dir, kind, partner,
                                        raw=out.getvalue()))


def _staged_rows(settings, result):
    with session_scope(settings.database_url) as session:
        path = session.get(Feed, result.feed_id).staged_path
    return pd.read_parquet(path).drop(columns=["_line"], errors="ignore")


def _utf8_baseline(settings, district_dir):
    """The deaths feed as the generator wrote it (UTF-8 CSV): its result and staged rows; then
    the feed is set aside so the same sequence can be taken in again in another form."""
    text = (district_dir / "feeds" / "deaths.csv").read_text("utf-8")
    result = _staged_from_plain(settings, district_dir, text.encode(), "text/csv",
                                text.count("\n") - 1)
    assert result.status == "accepted", result.reason
    rows = _staged_rows(settings, result)
    with session_scope(settings.database_url) as session:
        session.execute(Feed.__table__.update().values(status="rejected"))
    return result, rows


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_gbk_gb18030_and_bom_feeds_are_accepted_with_the_same_rows(settings, district_dir,
                                                                   encoding):
    baseline, rows = _utf8_baseline(settings, district_dir)
    text = (district_dir / "feeds" / "deaths.csv").read_text("utf-8")
    result = _staged_from_plain(settings, district_dir, text.encode(encoding), "text/csv",
                                baseline.received)
    assert result.status == "accepted", result.reason
    assert (result.received, result.accepted, result.quarantined) == (
        baseline.received, baseline.accepted, baseline.quarantined)
    pd.testing.assert_frame_equal(_staged_rows(settings, result), rows)


def _deaths_frame(district_dir) -> pd.DataFrame:
    return pd.read_csv(district_dir / "feeds" / "deaths.csv", dtype=str, keep_default_na=False)


def test_xlsx_feed_is_accepted(settings, district_dir, tmp_path):
    import openpyxl

    frame = _deaths_frame(district_dir)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        sheet.append(list(row))  # every cell as text, as the contract asks
    path = tmp_path / "deaths.xlsx"
    book.save(path)
    baseline, csv_rows = _utf8_baseline(settings, district_dir)
    result = _staged_from_plain(
        settings, district_dir, path.read_bytes(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", len(frame))
    assert result.status == "accepted", result.reason
    assert (result.received, result.accepted, result.quarantined) == (
        baseline.received, baseline.accepted, baseline.quarantined)
    pd.testing.assert_frame_equal(_staged_rows(settings, result), csv_rows)


def test_jsonl_feed_is_accepted_and_an_unreadable_line_is_quarantined(settings, district_dir):
    import json

    frame = _deaths_frame(district_dir)
    lines = [json.dumps(rec, ensure_ascii=False) for rec in frame.to_dict("records")]
    lines.insert(1, "{not json")  # line 2: cannot be read, so it is quarantined, not dropped
    plain = ("\n".join(lines) + "\n").encode()
    result = _staged_from_plain(settings, district_dir, plain, "application/jsonl", len(lines))
    assert result.status == "accepted", result.reason
    assert result.received == len(lines) == result.accepted + result.quarantined
    with session_scope(settings.database_url) as session:
        bad = session.scalars(select(QuarantinedRow).where(
            QuarantinedRow.feed_id == result.feed_id, QuarantinedRow.line == 2)).all()
        assert [(q.field, q.reason) for q in bad] == [("_row", "BAD_JSON")]


def test_csv_row_with_missing_fields_is_quarantined_with_its_line(settings, district_dir):
    text = (district_dir / "feeds" / "deaths.csv").read_text("utf-8")
    head, first, *rest = text.splitlines()
    # line 3 too short, line 4 blank (no row), line 5 repeats line 2's record
    broken = "\n".join([head, first, "only,three,fields", "", first, *rest]) + "\n"
    rows = len(rest) + 3
    result = _staged_from_plain(settings, district_dir, broken.encode("gbk"), "text/csv", rows)
    assert result.status == "accepted", result.reason
    assert result.received == rows == result.accepted + result.quarantined
    with session_scope(settings.database_url) as session:
        lines = dict(session.execute(select(QuarantinedRow.line, QuarantinedRow.reason).where(
            QuarantinedRow.feed_id == result.feed_id)).all())
    assert lines[3] == "FIELD_COUNT"
    assert 4 not in lines and lines[5] == "DUPLICATE_KEY"  # lines counted as in an editor


def test_a_file_in_no_known_encoding_is_rejected_whole(settings, district_dir):
    plain = "person_id,姓名\n".encode() + b"\xff\xfe\xfa\n"
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", 1)
    assert result.status == "rejected" and result.reason.startswith("DecodeError:")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_fast_csv_reader_gives_the_decoders_values(district_dir, tmp_path, encoding):
    from connectors.decoding import LINE, PROBLEM, decode_file

    path = tmp_path / "wages.csv"
    path.write_bytes((district_dir / "feeds" / "wages.csv").read_text("utf-8").encode(encoding))
    fast = intake.read_plain_feed(path, "text/csv")
    assert str(fast["id_number"].dtype) == "string"  # Arrow-backed: the fast path was taken
    slow = decode_file(path, "text/csv")
    assert (slow[PROBLEM] == "").all()
    assert fast[LINE].tolist() == slow[LINE].tolist()
    pd.testing.assert_frame_equal(fast.drop(columns=[LINE]).astype(object),
                                  slow.drop(columns=[LINE, PROBLEM]).astype(object))


def _quarantine(settings, result) -> dict[int, tuple[str, str]]:
    with session_scope(settings.database_url) as session:
        return {q.line: (q.field, q.reason) for q in session.scalars(select(QuarantinedRow).where(
            QuarantinedRow.feed_id == result.feed_id))}


def test_lines_in_a_second_encoding_are_quarantined_line_by_line(settings, district_dir):
    text = (district_dir / "feeds" / "wages.csv").read_text("utf-8")
    head, *rows = text.splitlines()
    # Rows pasted together from two exports: the first rows UTF-8, the last two GBK.
    plain = (("\n".join([head, *rows[:-2]]) + "\n").encode("utf-8")
             + ("\n".join(rows[-2:]) + "\n").encode("gbk"))
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(rows),
                                kind="wages", partner="hrss")
    assert result.status == "accepted", result.reason
    assert result.received == len(rows) == result.accepted + result.quarantined
    odd = {len(rows), len(rows) + 1}  # the GBK rows' lines
    quarantine = _quarantine(settings, result)
    assert {line for line, (_f, reason) in quarantine.items() if reason == "MIXED_ENCODING"} == odd
    staged = _staged_rows(settings, result)
    assert len(staged) == result.accepted


def test_a_feed_mostly_in_a_second_encoding_is_rejected_with_an_alert_naming_the_partner(
        settings, district_dir, caplog):
    import logging

    text = (district_dir / "feeds" / "wages.csv").read_text("utf-8")
    head, *rows = text.splitlines()
    half = len(rows) // 2
    plain = (("\n".join([head, *rows[:half]]) + "\n").encode("utf-8")
             + ("\n".join(rows[half:]) + "\n").encode("gbk"))
    with caplog.at_level(logging.ERROR):
        result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(rows),
                                    kind="wages", partner="hrss")
    assert result.status == "rejected" and result.reason.startswith("QuarantineLimit: ")
    assert "ALERT feed wages" in caplog.text and "from partner hrss" in caplog.text
    with session_scope(settings.database_url) as session:
        assert session.get(Feed, result.feed_id).staged_path == ""
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "feed.rejected")).one()
    assert event.detail["partner"] == "hrss"
    assert event.detail["quarantined_by_reason"]["MIXED_ENCODING"] >= len(rows) - half - 1
    assert not list(settings.staging_dir.glob("*.parquet"))


@pytest.mark.parametrize("reader", ["arrow", "decoder"])
def test_a_field_over_131072_bytes_quarantines_its_row_only(settings, district_dir, reader):
    text = (district_dir / "feeds" / "wages.csv").read_text("utf-8")
    head, *rows = text.splitlines()
    fields = rows[0].split(",")
    at = head.split(",").index("employer_name")
    fields[at] = "某" * 50_000  # 150,000 bytes in UTF-8
    # a trailing blank line sends the file to the line-exact decoder instead of Arrow's reader
    tail = "\n\n" if reader == "decoder" else "\n"
    plain = ("\n".join([head, ",".join(fields), *rows[1:]]) + tail).encode()
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(rows),
                                kind="wages", partner="hrss")
    assert result.status == "accepted", result.reason
    assert _quarantine(settings, result)[2] == ("employer_name", "FIELD_TOO_LONG")
    assert result.received == len(rows) == result.accepted + result.quarantined


def test_hostile_text_in_any_field_is_quarantined_with_its_reason(settings, district_dir):
    text = (district_dir / "feeds" / "wages.csv").read_text("utf-8")
    head, *rows = text.splitlines()
    names = head.split(",")
    hostile = {2: ("name", "\u202e"), 3: ("employer_name", "\u200b"),
               4: ("employer_name", "\x00"), 5: ("record_id", "\x1b")}
    for line, (field, char) in hostile.items():
        cells = rows[line - 2].split(",")
        cells[names.index(field)] = cells[names.index(field)][:1] + char + "x"
        rows[line - 2] = ",".join(cells)
    cells = rows[4].split(",")  # line 6: a wage for a month that has not happened
    cells[names.index("period")] = "2099-01"
    rows[4] = ",".join(cells)
    plain = ("\n".join([head, *rows]) + "\n").encode()
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(rows),
                                kind="wages", partner="hrss")
    assert result.status == "accepted", result.reason
    quarantine = _quarantine(settings, result)
    for line, (field, _char) in hostile.items():
        assert quarantine[line] == (field, "INVISIBLE_CHARACTER")
    assert quarantine[6] == ("period", "FUTURE_DATE")
    assert result.received == result.accepted + result.quarantined


def test_a_correctly_signed_feed_dated_2099_is_rejected(settings, district_dir):
    import datetime as dt

    ensure_test_keys(settings)
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()
    plain = (district_dir / "feeds" / "deaths.csv").read_bytes()
    manifest = envelope.Manifest(partner="civil", feed_kind="deaths", period="2026-10",
                                 sequence=202610, row_count=plain.count(b"\n") - 1,
                                 schema_version="1.0")
    for created, error in ((dt.datetime(2099, 1, 1, tzinfo=dt.UTC), "CreatedInFuture: "),
                           (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "TooOld: ")):
        out = io.BytesIO()
        envelope.pack(io.BytesIO(plain), out, manifest=manifest, now=created,
                      sender=keys.insecure_test_signing_key("civil"), recipient=centre)
        result = _process(settings, _register(settings, district_dir, "deaths", "civil",
                                              raw=out.getvalue()))
        assert result.status == "rejected" and result.reason.startswith(error), result.reason


def test_a_feed_with_far_fewer_rows_than_the_last_is_rejected_not_taken_as_nobody_earning(
        settings, district_dir):
    """A partner that sends a header alone (a broken extract) has not told us that nobody
    earns anything: rejected (RowCountDrop), the last accepted feed stays the one in use."""
    import dataclasses

    first = _process(settings, _register(settings, district_dir))
    assert first.status == "accepted" and first.accepted >= 100
    with session_scope(settings.database_url) as session:
        last = session.get(Feed, first.feed_id)
        period, sequence = last.period, last.sequence
    head = (district_dir / "feeds" / "wages.csv").read_text("utf-8").splitlines()[0]
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()

    def header_only(at: int) -> int:
        manifest = envelope.Manifest(partner="hrss", feed_kind="wages", period=period,
                                     sequence=at, row_count=0, schema_version="1.0",
                                     content_type="text/csv")
        out = io.BytesIO()
        envelope.pack(io.BytesIO((head + "\n").encode()), out, manifest=manifest,
                      sender=keys.insecure_test_signing_key("hrss"), recipient=centre)
        return _register(settings, district_dir, sequence=at, raw=out.getvalue())

    empty = _process(settings, header_only(sequence + 1))
    assert empty.status == "rejected" and empty.reason.startswith("RowCountDrop: ")
    assert "行数骤降" in empty.reason and f"{first.accepted}" in empty.reason
    with session_scope(settings.database_url) as session:
        assert session.scalars(select(AuditEvent).where(
            AuditEvent.action == "feed.rejected")).one().detail["partner"] == "hrss"
    # a centre that expects such a drop turns the check off (HEDUI_INTAKE_MIN_ROW_SHARE=0)
    allowing = dataclasses.replace(settings, intake=dataclasses.replace(settings.intake,
                                                                       min_row_share=0))
    assert _process(allowing, header_only(sequence + 2)).status == "accepted"


@pytest.mark.parametrize("change", ["sequence", "period"])
def test_the_listing_limits_hold_for_what_the_partner_signed_on_every_transport(
        settings, district_dir, change):
    """A file dropped in a folder has no listing to refuse: a signed sequence far past the last
    accepted one (which would refuse every real feed after it) or a period years ahead is
    refused at intake, as a listing would be over HTTP."""
    first = _process(settings, _register(settings, district_dir))
    assert first.status == "accepted"
    with session_scope(settings.database_url) as session:
        last = session.get(Feed, first.feed_id)
        period, sequence = last.period, last.sequence
    text = (district_dir / "feeds" / "wages.csv").read_bytes()
    rows = len(text.decode().splitlines()) - 1
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()

    def signed(at: int, when: str) -> int:
        manifest = envelope.Manifest(partner="hrss", feed_kind="wages", period=when,
                                     sequence=at, row_count=rows, schema_version="1.0",
                                     content_type="text/csv")
        out = io.BytesIO()
        envelope.pack(io.BytesIO(text), out, manifest=manifest,
                      sender=keys.insecure_test_signing_key("hrss"), recipient=centre)
        return _register(settings, district_dir, sequence=at, raw=out.getvalue())

    at, when = (sequence + 50_000, period) if change == "sequence" else (sequence + 1, "2099-01")
    result = _process(settings, signed(at, when))
    assert result.status == "rejected" and "ListingRefused" in result.reason
    # the next real feed is still taken in (the replay bound did not move)
    nxt = _process(settings, signed(sequence + 2, period))
    assert nxt.status == "accepted", nxt.reason


@pytest.mark.parametrize("path", ["whole", "blocks"])
def test_a_feed_without_a_required_column_is_refused_naming_it(settings, district_dir,
                                                                monkeypatch, path):
    """Not a quarantine limit over every row: the one thing the partner must fix, in Chinese and
    English; an optional column left out (the identity fields) is no reason to refuse."""
    if path == "blocks":
        monkeypatch.setattr(intake, "CHUNK_ROWS", 1)  # any feed is staged block by block
    frame = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str, keep_default_na=False)
    plain = frame.drop(columns=["wage_amount"]).to_csv(index=False).encode()
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(frame),
                                kind="wages", partner="hrss")
    assert result.status == "rejected"
    assert "MissingColumns" in result.reason and "wage_amount（应发工资）" in result.reason
    assert "the header lacks the required column(s) wage_amount" in result.reason
    assert not list(settings.staging_dir.glob("*.parquet"))
    optional = [f["name"] for f in intake.contract_for("wages").fields if "x-identity" in f]
    plain = frame.drop(columns=[c for c in optional if c in frame]).to_csv(index=False).encode()
    # the refused feed does not hold its sequence: the same one is taken in when corrected
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(frame),
                                kind="wages", partner="hrss")
    assert result.status == "accepted", result.reason


def test_a_birth_date_in_the_future_is_dropped_with_a_warning_not_the_row(settings,
                                                                           district_dir):
    """A mistyped optional identity field must not cost the row its income: the value is left
    out and the row stays evidence (its birth date read off the ID number for the matcher)."""
    frame = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "birth_date"] = "2099-01-01"
    plain = frame.to_csv(index=False).encode()
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(frame),
                                kind="wages", partner="hrss")
    assert result.status == "accepted", result.reason
    assert (result.received, result.quarantined) == (len(frame), 0)
    staged = _staged_rows(settings, result)
    row = staged[staged["record_id"] == frame.loc[0, "record_id"]].iloc[0]
    assert str(pd.Timestamp(row["birth_date"]).date()) != "2099-01-01"


@pytest.mark.parametrize("path", ["whole", "blocks"])
def test_a_payment_sent_twice_under_a_new_record_id_is_quarantined_once(settings, district_dir,
                                                                        monkeypatch, path):
    """Counted twice, a wage exported twice would double the family's income: the later copy
    is quarantined (DUPLICATE_ROW) with its line; a row differing in any payment field stays."""
    if path == "blocks":
        monkeypatch.setattr(intake, "CHUNK_ROWS", 1)
        monkeypatch.setattr(intake, "_BLOCK_BYTES", 4096)  # the copy lands in a later block
    frame = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str, keep_default_na=False)
    copy = frame.iloc[[0]].assign(record_id="WA-COPY-1", name=frame.loc[0, "name"] + " ")
    other_month = frame.iloc[[0]].assign(record_id="WA-OTHER-1", period="2020-01")
    plain = pd.concat([frame, copy, other_month], ignore_index=True).to_csv(
        index=False).encode()
    result = _staged_from_plain(settings, district_dir, plain, "text/csv", len(frame) + 2,
                                kind="wages", partner="hrss")
    assert result.status == "accepted", result.reason
    assert result.received == len(frame) + 2 == result.accepted + result.quarantined
    quarantined = _quarantine(settings, result)
    assert quarantined[len(frame) + 2] == ("record_id", "DUPLICATE_ROW")
    assert len(frame) + 3 not in quarantined  # another month's wage is another payment
    staged = set(_staged_rows(settings, result)["record_id"])
    assert frame.loc[0, "record_id"] in staged and "WA-COPY-1" not in staged


def test_a_feed_for_a_period_before_the_last_accepted_one_is_refused(settings, district_dir):
    """Correctly signed, a newer sequence, but for 2001: as the newest feed it would replace
    this month's wages and leave every household without its income (outside probe)."""
    ensure_test_keys(settings)
    centre = keys.CentreKeyring.load(settings.keys_dir).current.public()
    plain = (district_dir / "feeds" / "deaths.csv").read_bytes()
    rows = plain.count(b"\n") - 1

    def packed(period: str, sequence: int) -> int:
        manifest = envelope.Manifest(partner="civil", feed_kind="deaths", period=period,
                                     sequence=sequence, row_count=rows, schema_version="1.0")
        out = io.BytesIO()
        envelope.pack(io.BytesIO(plain), out, manifest=manifest,
                      sender=keys.insecure_test_signing_key("civil"), recipient=centre)
        return _register(settings, district_dir, "deaths", "civil", sequence=sequence,
                         raw=out.getvalue())

    assert _process(settings, packed("2026-10", 202610)).status == "accepted"
    old = _process(settings, packed("2001-01", 202611))
    assert old.status == "rejected" and old.reason.startswith("PeriodBehind: 所属期早于")
    assert "period 2001-01 is before 2026-10" in old.reason
    assert _process(settings, packed("2026-10", 202612)).status == "accepted"  # same month: ok


def test_a_feed_naming_nobody_of_the_caseload_is_refused_as_another_districts(settings,
                                                                                district_dir):
    """Outside probe: a wages feed whose every ID was another district's was accepted whole and
    replaced the district's wages. Once a caseload is loaded, a feed none of whose persons is
    on it is refused (NoCaseloadPersons), Chinese first; the district's own is accepted."""
    from verification.intake.identifiers import canonicalise_ids
    from verification.intake.roster import load_roster

    load_roster(settings, district_dir / "roster.csv")
    frame = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str, keep_default_na=False)
    other = frame[frame["id_number"].str.fullmatch(r"\d{17}[\dX]")].copy()
    body = "110105" + other["id_number"].str[6:17]  # another area: 北京市朝阳区
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    other["id_number"] = [b + "10X98765432"[sum(int(c) * w for c, w in zip(b, weights,
                                                                             strict=True)) % 11]
                          for b in body]
    assert canonicalise_ids(other["id_number"]).reasons.eq("").all()  # valid numbers
    result = _staged_from_plain(settings, district_dir, other.to_csv(index=False).encode(),
                                "text/csv", len(other), kind="wages", partner="hrss")
    assert result.status == "rejected", result.reason
    assert result.reason.startswith("NoCaseloadPersons: 文件所涉人员均不在本辖区在册名单中")
    own = _staged_from_plain(settings, district_dir, frame.to_csv(index=False).encode(),
                             "text/csv", len(frame), kind="wages", partner="hrss")
    assert own.status == "accepted", own.reason
