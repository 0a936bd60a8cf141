"""Intake: a packed feed as received → verified, decrypted, decoded, validated, staged.

verify+decrypt (connectors/envelope.py) → decode (bytes → strings by the manifest's content
type: CSV in UTF-8, UTF-8 with BOM or GBK/GB18030, XLSX, JSON Lines; connectors/decoding.py; a row
the decoder could not read as the header says is quarantined with its line) → validate against the
contract (verification/intake/validate.py, which canonicalises IDs) → tokens → staged Parquet
holding
no raw ID or name. Rows that fail go to quarantine with line and reason — except a row whose only
fault is an unusable ID number and which has a name: it is accepted as *identity unresolved*
(token <NA>, counted in ``identity_unresolved``) for the matcher's fallback. The feed's counts
reconcile (received = accepted + quarantined) or the feed is rejected. A feed that fails as a whole
(bad signature, wrong key, truncated, replayed, row count off) is kept exactly as received, marked
rejected with the reason, and audited; nothing downstream treats its absence as data.

The plaintext exists only in a private temporary file for the length of one intake.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from connectors import decoding, envelope
from connectors.digests import sha256_file
from connectors.keys import CentreKeyring, PartnerDirectory
from connectors.registry import load_partners
from schemas import Contract, contract_for
from verification.config import Settings
from verification.intake.textcheck import describe_mixed, mixed_encoding_line
from verification.intake.tokens import TokenKey, person_tokens
from verification.intake.validate import Validated, stripped_text, validate_frame
from verification.matching import name_keys
from verification.security import audit
from verification.storage import session_scope
from verification.storage.models import Feed, Partner, QuarantinedRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    feed_id: int
    partner: str
    kind: str
    sequence: int
    status: str  # accepted | rejected
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    reason: str = ""
    identity_unresolved: int = 0  # accepted rows whose ID number was unusable (token <NA>)

    def receipt(self) -> dict[str, object]:
        """What the partner is told back."""
        return {"status": self.status, "received": self.received, "accepted": self.accepted,
                "quarantined": self.quarantined, "reason": self.reason,
                "identity_unresolved": self.identity_unresolved}


class DbFreshness:
    """Freshness backed by the feeds table: a sequence must be newer than every accepted one."""

    def __init__(self, session: Session, exclude_feed: int | None = None) -> None:
        self.session = session
        self.exclude_feed = exclude_feed

    def check(self, partner: str, feed_kind: str, sequence: int) -> None:
        last = self.session.scalar(
            select(func.max(Feed.sequence)).join(Partner)
            .where(Partner.code == partner, Feed.kind == feed_kind, Feed.status == "accepted",
                   Feed.id != (self.exclude_feed or -1)))
        envelope.MemoryFreshness({(partner, feed_kind): last} if last is not None else {}).check(
            partner, feed_kind, sequence)

    def record(self, partner: str, feed_kind: str, sequence: int) -> None:
        """The feeds row marked accepted is the record."""


def ensure_partners(session: Session) -> dict[str, int]:
    """Partner rows from the registry; returns code → id."""
    existing = {p.code: p.id for p in session.scalars(select(Partner))}
    for code, spec in load_partners().items():
        if code not in existing:
            partner = Partner(code=code, name_zh=spec.name_zh, name_en=spec.name_en)
            session.add(partner)
            session.flush()
            existing[code] = partner.id
    return existing


def last_sequence(settings: Settings, partner: str, kind: str) -> int:
    """The highest sequence already received (accepted or rejected), so it is not pulled again."""
    with session_scope(settings.database_url) as session:
        value = session.scalar(select(func.max(Feed.sequence)).join(Partner)
                               .where(Partner.code == partner, Feed.kind == kind))
    return int(value or 0)


def register_feed(settings: Settings, partner: str, kind: str, period: str, sequence: int,
                  raw_path: Path) -> int:
    """Record a downloaded feed (idempotent on partner, kind, sequence); returns its id."""
    digest = sha256_file(raw_path)
    with session_scope(settings.database_url) as session:
        partner_id = ensure_partners(session)[partner]
        feed = session.scalar(select(Feed).where(Feed.partner_id == partner_id, Feed.kind == kind,
                                                 Feed.sequence == sequence))
        if feed is None:
            feed = Feed(partner_id=partner_id, kind=kind, period=period, sequence=sequence,
                        envelope_sha256=digest, raw_path=str(raw_path), status="received")
            session.add(feed)
            session.flush()
        elif feed.status != "accepted":
            feed.envelope_sha256, feed.raw_path = digest, str(raw_path)
        return feed.id


def process_feed(settings: Settings, feed_id: int, keyring: CentreKeyring,
                 trusted: PartnerDirectory) -> IntakeResult:
    """Verify, decrypt, validate and stage one registered feed. Safe to call again: an accepted
    feed is returned as it is; a half-done one is redone from the file as received."""
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, feed_id)
        if feed.status == "accepted":
            return _result(feed)
        partner_code, raw_path = feed.partner.code, Path(feed.raw_path)
        contract = contract_for(feed.kind)  # loaded once, handed to every step below
        try:
            with tempfile.TemporaryDirectory(dir=_tmp_dir(settings)) as tmp:
                plain = Path(tmp) / "plain"
                manifest = envelope.unpack_to_path(
                    raw_path, plain, keyring=keyring, trusted=trusted,
                    freshness=DbFreshness(session, exclude_feed=feed_id))
                _check_manifest(feed, contract, partner_code, manifest)
                _refuse_mixed_encodings(plain, manifest.content_type)
                chunked = _stage_in_chunks(settings, feed, contract, plain) if (
                    manifest.row_count > CHUNK_ROWS and manifest.content_type == "text/csv"
                ) else None
                if chunked is None:
                    frame = read_plain_feed(plain, manifest.content_type)
        except (envelope.EnvelopeError, IntakeRejected, UnicodeDecodeError, ValueError) as err:
            return _reject(session, feed, f"{type(err).__name__}: {err}")
        received = chunked.counts["received"] if chunked else len(frame)
        if received != manifest.row_count:
            if chunked:
                chunked.path.unlink(missing_ok=True)
            return _reject(session, feed, f"RowCountMismatch: manifest says {manifest.row_count} "
                                          f"rows, the file holds {received}")
        if chunked:
            _record_staged(settings, session, feed, chunked, manifest)
        else:
            _stage(settings, session, feed, contract, frame, manifest)
        return _result(feed)


class IntakeRejected(ValueError):
    pass


def _check_manifest(feed: Feed, contract: Contract, partner: str,
                    manifest: envelope.Manifest) -> None:
    expected = (partner, feed.kind, feed.sequence)
    got = (manifest.partner, manifest.feed_kind, manifest.sequence)
    if got != expected:
        raise IntakeRejected(f"the signed manifest names {got}, but the feed was listed as "
                             f"{expected}")
    feed.period = manifest.period
    feed.schema_version = manifest.schema_version
    feed.plaintext_digest = manifest.plaintext_digest
    feed.sender_key_id = manifest.sender_key_id
    if manifest.schema_version.split(".")[0] != contract.version.split(".")[0]:
        raise IntakeRejected(f"schema version {manifest.schema_version} is not compatible with "
                             f"contract {feed.kind} {contract.version}")


def read_plain_feed(path: Path, content_type: str = decoding.CSV) -> pd.DataFrame:
    """A decrypted feed as a frame of strings with ``_line`` (and ``_problem`` when decoded by
    connectors/decoding.py), by content type: CSV, XLSX or JSON Lines.

    A CSV in which every line is one row is read by Arrow's multi-threaded reader (Arrow-backed
    strings, the same values, a fraction of the memory); any other file — blank lines, values
    spanning lines, a row with too few or too many fields, UTF-16 — by connectors/decoding.py,
    which numbers lines exactly and marks unreadable rows.
    """
    if content_type == decoding.CSV:
        fast = _arrow_csv(path)
        if fast is not None:
            return fast
    return decoding.decode_file(path, content_type)


# A GB18030 file is read whole for this check only up to this size (such feeds are small; a
# larger one is taken as its decoder reads it).
MIXED_CHECK_BYTES = 1 << 29


def _refuse_mixed_encodings(path: Path, content_type: str) -> None:
    """A text feed whose lines are partly UTF-8 and partly GBK decodes "successfully" as GB18030
    into garbled names: refuse it whole, naming the lines (verification/intake/textcheck.py)."""
    if content_type == decoding.XLSX or path.stat().st_size > MIXED_CHECK_BYTES:
        return
    try:
        if decoding.detect_file_encoding(path) != "gb18030":
            return  # UTF-8 (with or without BOM) or UTF-16 throughout: not mixed
    except decoding.DecodeError:
        pass  # neither as a whole: say so precisely if it is two encodings pasted together
    if found := mixed_encoding_line(path.read_bytes()):
        raise decoding.DecodeError(describe_mixed(found))


def _arrow_encoding(encoding: str) -> str | None:
    """Arrow's name for an encoding from ``decoding.detect_file_encoding`` (None: not by Arrow,
    as in UTF-16 a 0x0A byte is not always a line end)."""
    if encoding in ("utf-8", "utf-8-sig"):
        return "utf8"  # Arrow skips a UTF-8 BOM
    return None if encoding == "utf-16" else encoding


def _arrow_csv(path: Path) -> pd.DataFrame | None:
    encoding = _arrow_encoding(decoding.detect_file_encoding(path))
    if encoding is None:
        return None
    try:
        header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(
            encoding=encoding)).schema.names
        if not _plain_header(header):
            return None
        table = pacsv.read_csv(
            path, read_options=pacsv.ReadOptions(encoding=encoding, block_size=_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None
    if not _one_line_per_row(path, table.num_rows):
        return None
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def _plain_header(header: list[str]) -> bool:
    """A header the decoder would take as it is: named, unique, untrimmed, not reserved."""
    return bool(header) and len(set(header)) == len(header) and all(
        name and name == name.strip() and name not in (decoding.LINE, decoding.PROBLEM)
        for name in header)


def _one_line_per_row(path: Path, rows: int) -> bool:
    """Whether the file's lines are the header and ``rows`` rows (so row i is on line i + 2)."""
    newlines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            newlines += block.count(b"\n")
    return newlines in (rows, rows + 1)


def _validate(frame: pd.DataFrame, contract: Contract) -> Validated:
    """``validate_frame``, with rows the decoder could not read (``_problem``) quarantined under
    the decoder's reason: they count as received and quarantined, never silently dropped."""
    if decoding.PROBLEM not in frame:
        return validate_frame(frame, contract, identity_unresolved=True)
    problem = frame[decoding.PROBLEM].astype(str)
    bad = (problem != "").to_numpy()
    checked = validate_frame(frame.loc[~bad].drop(columns=[decoding.PROBLEM]), contract,
                             identity_unresolved=True)
    if not bad.any():
        return checked
    parts = problem[bad].str.partition(": ")
    unreadable = pd.DataFrame({"line": frame.loc[bad, "_line"].to_numpy(), "field": "_row",
                               "reason": parts[0].to_numpy(), "message": parts[2].to_numpy()})
    quarantine = pd.concat([q for q in (checked.quarantine, unreadable) if len(q)],
                           ignore_index=True).sort_values(["line", "field"]).reset_index(
                               drop=True)
    return Validated(accepted=checked.accepted, quarantine=quarantine,
                     received=checked.received + int(bad.sum()), warnings=checked.warnings,
                     unresolved=checked.unresolved)


@dataclass
class _Staged:
    """A feed validated and written to staging: where, what was quarantined, the counts."""

    path: Path
    quarantine: pd.DataFrame
    counts: dict[str, int]


def _stage(settings: Settings, session: Session, feed: Feed, contract: Contract,
           frame: pd.DataFrame, manifest: envelope.Manifest) -> None:
    checked = _validate(frame, contract)
    staged = _staged_rows(settings, checked.accepted, contract.person_id_field,
                          lambda ids: _tokens(settings, ids))
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    path = settings.staging_dir / f"feed-{feed.id}.parquet"
    staged.to_parquet(path, index=False)
    counts = {**checked.counts, "identity_unresolved": checked.unresolved}
    _record_staged(settings, session, feed, _Staged(path, checked.quarantine, counts), manifest)


def _staged_rows(settings: Settings, accepted: pd.DataFrame, id_field: str,
                 tokens: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    """Accepted rows as staged: the keyed token instead of the ID number (<NA>: identity
    unresolved), keyed name forms (``name_keys`` under the token key: codes, not names) instead
    of the name, and ``birth_date``/``gender`` — the row's own when the partner sent them, else
    read off the ID (``birth_date_from_id``/``gender_from_id`` say which) — so the matcher can
    place a row without a usable ID and doubt a valid ID typed into someone else's record."""
    # Address and phone help only to place a row the roster cannot check them against yet
    # (members carry neither): not staged, so no raw address or number sits in staging.
    staged = accepted.drop(columns=["name", "address", "phone"], errors="ignore")
    staged.insert(0, "person_token", tokens(staged.pop(id_field)))
    if "name" in accepted:
        keyed = name_keys(accepted["name"], TokenKey.from_settings(settings))
        staged = pd.concat([staged, keyed.astype("string")], axis=1)
    return staged


def _record_staged(settings: Settings, session: Session, feed: Feed, staged: _Staged,
                   manifest: envelope.Manifest) -> None:
    path = staged.path
    session.execute(delete(QuarantinedRow).where(QuarantinedRow.feed_id == feed.id))
    if len(staged.quarantine):
        rows = staged.quarantine.assign(feed_id=feed.id).to_dict("records")
        session.execute(insert(QuarantinedRow), rows)
    counts = staged.counts
    if counts["received"] != counts["accepted"] + counts["quarantined"]:
        raise AssertionError(f"feed {feed.id}: counts do not reconcile: {counts}")
    feed.rows_received, feed.rows_accepted = counts["received"], counts["accepted"]
    feed.rows_quarantined = counts["quarantined"]
    feed.rows_identity_unresolved = counts.get("identity_unresolved", 0)
    feed.staged_path, feed.status, feed.reason = str(path), "accepted", ""
    feed.processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    audit.record(session, "intake", "feed.accepted", f"feed:{feed.id}",
                 {"partner": manifest.partner, "kind": feed.kind, "sequence": feed.sequence,
                  **counts})
    log.info("feed %s %s #%s accepted: %s", manifest.partner, feed.kind, feed.sequence, counts)


# ---- large feeds, chunk by chunk -----------------------------------------------------------------
# A feed of ten million rows validated as one frame needs several GB. Above CHUNK_ROWS rows (as the
# signed manifest says) a CSV feed is read by Arrow in blocks and each block validated by the same
# validate_frame; what a block cannot see alone is done across blocks: a primary key repeating a
# row of an earlier block is a DUPLICATE_KEY like any other, and tokens are computed once per ID.
# The staged file and the quarantine are the ones the whole-frame path gives.
CHUNK_ROWS = 1_000_000
_BLOCK_BYTES = 1 << 28  # ≈ 2 million rows: a person's monthly rows mostly share a block


def _stage_in_chunks(settings: Settings, feed: Feed, contract: Contract,
                     plain: Path) -> _Staged | None:
    """Validate and stage ``plain`` block by block; None when Arrow cannot read it as it is
    (the caller then reads it whole, which gives every file read_table's answer)."""
    keys = list(contract.primary_key)
    types = {f["name"]: f.get("type", "string") for f in contract.fields}
    if any(types.get(k) != "string" for k in keys):
        return None
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    path = settings.staging_dir / f"feed-{feed.id}.parquet"
    partial = path.with_name(path.name + ".partial")
    try:
        staged = _write_chunks(settings, contract, plain, keys, partial)
    except pa.ArrowInvalid:
        partial.unlink(missing_ok=True)
        return None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return _Staged(path, staged.quarantine, staged.counts)


def _write_chunks(settings: Settings, contract: Contract, plain: Path, keys: list[str],
                  out: Path) -> _Staged:
    id_field = contract.person_id_field
    encoding = _arrow_encoding(decoding.detect_file_encoding(plain))
    if encoding is None:
        raise pa.ArrowInvalid("not an encoding read by Arrow block by block")
    reader = _csv_blocks(plain, encoding)
    seen: list[pa.Array] = []  # every earlier row's typed key, for duplicates across blocks
    cache: dict[str, int] = {}
    id_fields = contract.identifier_fields("resident_id")
    first_messages: dict[tuple[str, str], str] = {}
    quarantines = []
    counts = {"received": 0, "accepted": 0, "quarantined": 0, "identity_unresolved": 0}
    writer = None
    try:
        for batch in reader:
            frame = batch.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
            frame.insert(0, "_line", range(counts["received"] + 2,
                                           counts["received"] + 2 + len(frame)))
            checked = validate_frame(frame, contract, identity_unresolved=True)
            if keys:
                _earlier_duplicates(checked, frame, keys, seen)
            _same_id_messages(checked, id_fields, first_messages)
            staged = _staged_rows(settings, checked.accepted, id_field,
                                  lambda ids: _cached_tokens(settings, ids, cache))
            table = pa.Table.from_pandas(staged, preserve_index=False,
                                         schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            quarantines.append(checked.quarantine)
            for name, value in checked.counts.items():
                counts[name] += value
            counts["identity_unresolved"] += checked.unresolved
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no rows at all: the whole-frame path handles an empty file
        raise pa.ArrowInvalid("empty feed")
    if not _one_line_per_row(plain, counts["received"]):  # line numbers would be off
        raise pa.ArrowInvalid("blank lines or values spanning lines")
    filled = [q for q in quarantines if len(q)]
    quarantine = pd.concat(filled, ignore_index=True).sort_values(["line", "field"]).reset_index(
        drop=True) if filled else quarantines[0]
    return _Staged(out, quarantine, counts)


def _csv_blocks(plain: Path, arrow_encoding: str):  # noqa: ANN202 (Arrow batch iterator)
    header = pacsv.open_csv(plain, read_options=pacsv.ReadOptions(
        encoding=arrow_encoding)).schema.names
    if not _plain_header(header):
        raise pa.ArrowInvalid("repeated, missing, padded or reserved column names")
    return pacsv.open_csv(
        plain,
        read_options=pacsv.ReadOptions(encoding=arrow_encoding, block_size=_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
            quoted_strings_can_be_null=False))


def _earlier_duplicates(checked: Validated, frame: pd.DataFrame, keys: list[str],
                        seen: list[pa.Array]) -> None:
    """Quarantine rows whose key repeats a row of an earlier block (as the whole-frame check
    would: the first row with a key is kept; a line already quarantined on the key's first field
    keeps that reason); then remember this block's keys."""
    parts = [pa.array(stripped_text(frame[k]).astype(object), pa.string(), from_pandas=True)
             if k in frame else pa.nulls(len(frame), pa.string()) for k in keys]
    key = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    if seen:
        earlier = pc.is_in(key, value_set=pa.concat_arrays(seen), skip_nulls=True)
        hit = pc.fill_null(earlier, False).to_numpy(zero_copy_only=False)
        lines = frame["_line"].to_numpy()[hit]
        q = checked.quarantine
        taken = set(zip(q["line"], q["field"], strict=True))
        new = [line for line in lines if (line, keys[0]) not in taken]
        if new:
            extra = pd.DataFrame({"line": new, "field": keys[0], "reason": "DUPLICATE_KEY",
                                  "message": f"{'+'.join(keys)} repeats an earlier row"})
            checked.quarantine = pd.concat([q, extra], ignore_index=True).sort_values(
                ["line", "field"]).reset_index(drop=True)
            checked.accepted = checked.accepted[~checked.accepted["_line"].isin(new)]
    seen.append(key.drop_null())


def _same_id_messages(checked: Validated, id_fields: list[str],
                      first: dict[tuple[str, str], str]) -> None:
    """An invalid ID's message names the file's first example of its reason, in every block."""
    q = checked.quarantine
    if not len(q) or not id_fields:
        return
    rows = q["field"].isin(id_fields).to_numpy()
    for (field, reason), group in q[rows].groupby(["field", "reason"], sort=False):
        first.setdefault((field, reason), group["message"].iloc[0])
    if rows.any():
        pairs = zip(q.loc[rows, "field"], q.loc[rows, "reason"], strict=True)
        q.loc[rows, "message"] = [first[pair] for pair in pairs]


def _cached_tokens(settings: Settings, canonical_ids: pd.Series,
                   cache: dict[str, int]) -> pd.Series:
    """``_tokens`` with a cache across blocks (a person's monthly rows are spread over them)."""
    codes, distinct = pd.factorize(canonical_ids, use_na_sentinel=True)
    distinct = np.asarray(distinct, dtype=object)
    missing = [v for v in distinct if v not in cache]
    if missing:
        made = person_tokens(settings.token_key, pd.Series(missing, dtype=object))
        cache.update(zip(missing, made.astype("int64").tolist(), strict=True))
    values = np.array([cache[v] for v in distinct] + [0], dtype=np.int64)
    out = pd.Series(values[np.where(codes < 0, len(distinct), codes)],
                    index=canonical_ids.index, dtype="Int64")
    out[codes < 0] = pd.NA
    return out


def _tokens(settings: Settings, canonical_ids: pd.Series) -> pd.Series:
    """``person_tokens`` computed once per distinct ID (a monthly feed names each person twelve
    times) and put back by position."""
    codes, distinct = pd.factorize(canonical_ids, use_na_sentinel=True)
    tokens = person_tokens(settings.token_key,
                           pd.Series([*np.asarray(distinct, dtype=object), None], dtype=object))
    positions = np.where(codes < 0, len(distinct), codes)
    return tokens.iloc[positions].set_axis(canonical_ids.index)


def reject_feed(settings: Settings, feed_id: int, reason: str) -> IntakeResult:
    """Mark a registered feed rejected as a whole for a reason found outside intake (e.g. an
    answer to a query list naming persons who were not asked); kept as received, audited."""
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, feed_id)
        if feed.status == "accepted":
            raise ValueError(f"feed {feed_id} is already accepted")
        return _reject(session, feed, reason)


def _reject(session: Session, feed: Feed, reason: str) -> IntakeResult:
    feed.status, feed.reason = "rejected", reason
    feed.processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    audit.record(session, "intake", "feed.rejected", f"feed:{feed.id}",
                 {"kind": feed.kind, "sequence": feed.sequence, "reason": reason})
    log.error("ALERT feed %s #%s from %s rejected: %s", feed.kind, feed.sequence,
              feed.partner.code, reason)
    return _result(feed)


def _result(feed: Feed) -> IntakeResult:
    return IntakeResult(feed.id, feed.partner.code, feed.kind, feed.sequence, feed.status,
                        feed.rows_received, feed.rows_accepted, feed.rows_quarantined, feed.reason,
                        feed.rows_identity_unresolved or 0)


def _tmp_dir(settings: Settings) -> Path:
    path = settings.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
