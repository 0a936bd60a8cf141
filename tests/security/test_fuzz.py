"""Hostile input, generated: the batch-file reader, the feed decoders and validators, the
amount and date parsers validation runs and the envelope parser never fail with an uncontrolled
exception; every rejection is explained; counts reconcile (received = accepted + quarantined)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connectors import envelope as env
from connectors import keys
from connectors.decoding import CSV, JSONL, LINE, PROBLEM, XLSX, DecodeError, decode_bytes
from schemas import contract_for, feed_kinds, load_contract
from verification.intake.identifiers import (
    InvalidIdentifier,
    canonical_id,
    canonicalise_ids,
    is_valid_id,
    make_id,
    mask_id,
)
from verification.intake.roster import validate_roster
from verification.intake.validate import Validated, parse_date, parse_number, validate_frame
from verification.security import audit
from verification.security.privacy import mask_text

FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BATCH_FIELDS = [f["name"] for f in load_contract("batch")["fields"]]
VALID_ROW = ["HN-F-0001", "210112", "210112001", "210112001001", "applicant", "none", "urban", "0",
             "21011219561114631X", "张伟明", "户主", "", "0", "", "SQ-F-1", "2026-04-15", "", ""]

# Text that real exports contain, and text that attackers write.
_nasty = st.sampled_from(["", " ", '"', '""', ",", "\n", "\r\n", "\x00", "\u202e", "\ufeff",
                          "=1+1", "@SUM(A1)", "-", "+", "１２３", "210112195611146310",
                          "2026-13-45", "NaN", "inf", "1e309", "万", "¥", "\t", "户主", "X"])
_cell = st.one_of(_nasty, st.text(max_size=30),
                  st.text(alphabet="0123456789Xx-/年月日,. ", max_size=20))


def _check(checked: Validated) -> None:
    counts = checked.counts
    assert counts["received"] == counts["accepted"] + counts["quarantined"]
    assert set(checked.accepted["_line"]).isdisjoint(set(checked.quarantine["line"]))
    assert checked.quarantine["reason"].str.fullmatch(r"[A-Z_0-9]+").all()
    assert (checked.quarantine["message"].astype(str).str.len() > 5).all()


def _write(data: bytes, suffix: str = ".csv") -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115
    handle.write(data)
    handle.close()
    return Path(handle.name)


def _roster(data: bytes, suffix: str = ".csv") -> None:
    path = _write(data, suffix)
    try:
        checked = validate_roster(path)
    except DecodeError as err:  # the one controlled refusal of a whole file
        assert len(str(err)) > 10
        return
    finally:
        path.unlink()
    _check(checked)


@FUZZ
@given(st.binary(max_size=2000))
def test_batch_reader_on_arbitrary_bytes(data: bytes) -> None:
    _roster(data)


@FUZZ
@given(rows=st.lists(st.lists(_cell, min_size=0, max_size=20), max_size=8),
       drop=st.sets(st.sampled_from(BATCH_FIELDS), max_size=2),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16"]),
       keep_valid=st.booleans())
def test_batch_reader_on_hostile_rows(rows: list[list[str]], drop: set[str], encoding: str,
                                      keep_valid: bool) -> None:
    header = [f for f in [*BATCH_FIELDS, "authorisation_scope", "authorisation_expires_on"]
              if f not in drop]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    if keep_valid:
        writer.writerow(VALID_ROW[: len(header)])
    for row in rows:
        writer.writerow(row)
    try:
        data = out.getvalue().encode(encoding)
    except UnicodeEncodeError:
        assume(False)
    _roster(data)


@FUZZ
@given(st.binary(max_size=1500), st.sampled_from([CSV, JSONL, XLSX, None]))
def test_decoder_on_arbitrary_bytes(data: bytes, content_type: str | None) -> None:
    try:
        frame = decode_bytes(data, content_type)
    except DecodeError as err:
        assert str(err)
        return
    assert list(frame.columns[:2]) == [LINE, PROBLEM]
    assert frame[LINE].is_monotonic_increasing
    assert all(isinstance(v, str) for col in frame.columns[1:] for v in frame[col])


@FUZZ
@given(st.binary(max_size=600))
def test_decoder_on_damaged_workbooks(noise: bytes) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["a", "b"])
    book.active.append(["1", "2"])
    raw = io.BytesIO()
    book.save(raw)
    data = raw.getvalue()
    cut = len(noise) % len(data)
    damaged = data[:cut] + noise + data[cut + len(noise):]
    try:
        decode_bytes(damaged, XLSX)
    except DecodeError as err:
        assert "XLSX" in str(err) or "sheet" in str(err)


@FUZZ
@given(kind=st.sampled_from(sorted(feed_kinds())), data=st.data())
def test_feed_validation_on_hostile_cells(kind: str, data: st.DataObject) -> None:
    fields = [f["name"] for f in load_contract(kind)["fields"]]
    rows = data.draw(st.lists(st.lists(_cell, min_size=len(fields), max_size=len(fields)),
                              max_size=10))
    frame = pd.DataFrame(rows, columns=fields, dtype=object)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    _check(validate_frame(frame, contract_for(kind)))


@FUZZ
@given(st.lists(st.one_of(_cell, st.none()), max_size=25), st.booleans())
def test_amount_and_date_parsers_never_raise_and_never_guess(texts: list, month: bool) -> None:
    """The parsers validation runs on every number and date field (``parse_number``,
    ``parse_date``): a value comes out only for text they read, a bad one is marked, a blank is
    missing and not bad."""
    raw = pd.Series(texts, dtype=object)
    for values, bad in (parse_number(raw), parse_date(raw, yearmonth=month)):
        assert len(values) == len(bad) == len(raw)
        assert values[bad].isna().all()
        blank = raw.map(lambda t: t is None or str(t).strip() == "")
        assert (~bad[blank]).all() and values[blank].isna().all()


@FUZZ
@given(st.lists(st.one_of(_cell, st.none()), max_size=25))
def test_identifier_column_agrees_with_the_scalar_rule(texts: list) -> None:
    today = dt.date(2026, 11, 1)
    result = canonicalise_ids(pd.Series(texts, dtype=object), today=today)
    for raw, value, reason in zip(texts, result.values, result.reasons, strict=True):
        try:
            expected = canonical_id(raw, today=today)
        except InvalidIdentifier as err:
            assert value is None and reason == err.reason
        else:
            assert value == expected and reason == "" and is_valid_id(value)


id_numbers = st.builds(lambda d, s: make_id("210112", d, s),
                       st.dates(dt.date(1900, 1, 1), dt.date(2025, 12, 31)),
                       st.integers(0, 999))


@FUZZ
@given(id_numbers, st.text(max_size=20), st.text(max_size=20))
def test_masking_removes_every_id_from_any_text(number: str, before: str, after: str) -> None:
    assume(not (before[-1:].isdigit() or after[:1].isdigit() or after[:1] in "Xx"))
    masked = mask_text(f"{before}{number}{after}")
    assert number not in masked
    assert mask_id(number) in masked or number[:6] in masked
    assert audit.holds_resident_id(f"{before}{number}{after}")


# ---- envelope parser -----------------------------------------------------------------------
SIGNER = keys.insecure_test_signing_key("hrss")
CENTRE = keys.insecure_test_recipient_key(keys.KEM_X25519)
PLAIN = "record_id,id_number\n" + "".join(f"R{i},21011219561114631X\n" for i in range(30))


def _envelope() -> bytes:
    out = io.BytesIO()
    env.pack(io.BytesIO(PLAIN.encode()), out,
             manifest=env.Manifest(partner="hrss", feed_kind="wages", period="2026-10",
                                   sequence=1, row_count=30, schema_version="1.0"),
             sender=SIGNER, recipient=CENTRE.public(), chunk_size=128)
    return out.getvalue()


ENVELOPE = _envelope()


def _open(blob: bytes) -> bytes:
    out = io.BytesIO()
    env.unpack(io.BytesIO(blob), out, keyring=keys.CentreKeyring([CENTRE], current=CENTRE.key_id),
               trusted=keys.PartnerDirectory([SIGNER.public()]))
    return out.getvalue()


@FUZZ
@given(st.binary(max_size=3000))
def test_envelope_parser_on_arbitrary_bytes(data: bytes) -> None:
    for prefix in (b"", ENVELOPE[:8], ENVELOPE[:40]):
        with pytest.raises(env.EnvelopeError) as refused:
            env.read_manifest(io.BytesIO(prefix + data),
                              trusted=keys.PartnerDirectory([SIGNER.public()]))
        assert str(refused.value)


@FUZZ
@given(position=st.integers(0, len(ENVELOPE) - 1), junk=st.binary(min_size=1, max_size=40),
       how=st.sampled_from(["replace", "insert", "delete", "truncate"]))
def test_damaged_envelopes_never_yield_data(position: int, junk: bytes, how: str) -> None:
    if how == "replace":
        blob = ENVELOPE[:position] + junk + ENVELOPE[position + len(junk):]
    elif how == "insert":
        blob = ENVELOPE[:position] + junk + ENVELOPE[position:]
    elif how == "delete":
        blob = ENVELOPE[:position] + ENVELOPE[position + len(junk):]
    else:
        blob = ENVELOPE[:position]
    assume(blob != ENVELOPE)
    try:
        plain = _open(blob)
    except env.EnvelopeError as err:
        assert str(err)
        return
    assert plain == PLAIN.encode()  # only a change that alters nothing may pass


def test_the_untouched_envelope_opens():
    assert _open(ENVELOPE) == PLAIN.encode()
