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
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from connectors import decoding, envelope
from connectors.digests import sha256_file
from connectors.keys import CentreKeyring, PartnerDirectory
from connectors.registry import load_partners
from schemas import Contract, contract_for
from verification import codes
from verification.config import IntakeLimits, Settings
from verification.intake import problems as row_problems
from verification.intake.digests import digests_path, write_person_digests
from verification.intake.earlier_keys import EarlierHashes, EarlierKeys
from verification.intake.textcheck import (
    arrow_chunks,
    future_date_problems,
    invisible_character_problems,
    mixed_encoding_line,
    split_encodings,
)
from verification.intake.tokens import TokenKey, near_miss_tokens, person_tokens
from verification.intake.validate import (
    NEAR_MISS_NUMBERS,
    Validated,
    validate_frame,
)
from verification.matching.address import contact_keys
from verification.matching.names import name_key_text
from verification.security import audit
from verification.sorting import distinct
from verification.storage import session_scope
from verification.storage.models import Feed, Member, Partner, QuarantinedRow

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
        last = last_accepted(self.session, partner, feed_kind, self.exclude_feed)
        envelope.MemoryFreshness({(partner, feed_kind): last.sequence} if last else {}).check(
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


def last_accepted(session: Session, partner: str, kind: str,
                  exclude_feed: int | None = None) -> Feed | None:
    """The partner's accepted feed of ``kind`` with the highest sequence (other than
    ``exclude_feed``): the replay bound, the listing limits' base, the row-count drop's."""
    return session.scalars(
        select(Feed).join(Partner)
        .where(Partner.code == partner, Feed.kind == kind, Feed.status == "accepted",
               Feed.id != (exclude_feed or -1))
        .order_by(Feed.sequence.desc()).limit(1)).first()


def last_accepted_sequence(settings: Settings, partner: str, kind: str) -> int:
    """The highest sequence accepted. A pull asks for the feeds after it, so a feed registered
    but not yet taken in (a crash) or rejected (the partner may send it again) is offered again;
    an accepted one never is (docs/partners.md, "Sequence numbers")."""
    with session_scope(settings.database_url) as session:
        last = last_accepted(session, partner, kind)
        return last.sequence if last else 0


@dataclass(frozen=True)
class KnownFeed:
    """What intake already holds under a listed sequence number."""

    feed_id: int
    status: str  # received | accepted | rejected
    envelope_sha256: str
    receipt_sent: bool


def known_feed(settings: Settings, partner: str, kind: str, sequence: int) -> KnownFeed | None:
    with session_scope(settings.database_url) as session:
        feed = session.scalar(select(Feed).join(Partner).where(
            Partner.code == partner, Feed.kind == kind, Feed.sequence == sequence))
        if feed is None:
            return None
        return KnownFeed(feed.id, feed.status, feed.envelope_sha256,
                         feed.receipt_sent_at is not None)


def listing_problem(limits: IntakeLimits, sequence: int, period: str, last_accepted: int,
                    today: dt.date) -> str:
    """Why a listed feed is refused before it is downloaded ("" if it is not): a sequence far
    past the last accepted one, or a period months after the current one. Taking such a feed in
    would move the replay bound so far that every later real feed is refused."""
    if last_accepted and sequence - last_accepted > limits.max_sequence_gap:
        return (f"ListingRefused: sequence {sequence} is {sequence - last_accepted} past the "
                f"last accepted {last_accepted} (at most {limits.max_sequence_gap} allowed); "
                "list the feed under the next sequence number")
    ahead = _months_ahead(period, today)
    if ahead is not None and ahead > limits.max_months_ahead:
        return (f"ListingRefused: period {period} is {ahead} months after {today:%Y-%m} (at "
                f"most {limits.max_months_ahead} allowed); check the period and list it again")
    return ""


def period_problem(period: str, last_period: str) -> str:
    """Why a feed is refused for its period ("" if it is not): a period before that of the
    partner's last accepted feed of the kind. The newest sequence is the one a review uses, so a
    correctly signed feed for 2001 would replace this month's and leave every household without
    its income; a correction of a past month comes as a whole current feed."""
    # a period without a month ("2026") covers its whole year: compared by its last month
    first, last = _month_number(period, last_of_year=True), _month_number(last_period)
    if first is None or last is None or first >= last:
        return ""
    return (f"PeriodBehind: period {period} is before {last_period}, the period of the last "
            f"feed of this kind accepted from you; send the current period, with any "
            "correction of a past month in it")


def _month_number(period: str, last_of_year: bool = False) -> int | None:
    """year × 12 + month of the first month in ``period`` ("2026-10", "2026-10-31", "2026Q4",
    "2026") — of its last, for a period naming no month when ``last_of_year`` — or None when no
    year can be read from it."""
    digits = "".join(c for c in period[:7] if c.isdigit())
    if len(digits) < 4:
        return None
    named = len(digits) >= 6 and 1 <= int(digits[4:6]) <= 12
    month = int(digits[4:6]) if named else (12 if last_of_year else 1)
    return int(digits[:4]) * 12 + month


def _months_ahead(period: str, today: dt.date) -> int | None:
    """Months from ``today``'s month to the first month in ``period`` (``_month_number``)."""
    first = _month_number(period)
    return None if first is None else first - (today.year * 12 + today.month)


def register_feed(settings: Settings, partner: str, kind: str, period: str, sequence: int,
                  raw_path: Path, now: dt.datetime | None = None) -> int:
    """Record a downloaded feed (idempotent on partner, kind, sequence); returns its id.

    The feed is ``received`` until ``process_feed`` commits its outcome. A rejected feed sent
    again with other bytes goes back to ``received`` (its earlier file stays where it was, named
    in the rejection's audit event); an accepted feed is never replaced."""
    digest = sha256_file(raw_path)
    received_at = _naive_utc(now)
    with session_scope(settings.database_url) as session:
        partner_id = ensure_partners(session)[partner]
        feed = session.scalar(select(Feed).where(Feed.partner_id == partner_id, Feed.kind == kind,
                                                 Feed.sequence == sequence))
        if feed is None:
            feed = Feed(partner_id=partner_id, kind=kind, period=period, sequence=sequence,
                        envelope_sha256=digest, raw_path=str(raw_path), status="received",
                        received_at=received_at)
            session.add(feed)
            session.flush()
        elif feed.status == "rejected" and (feed.envelope_sha256, feed.raw_path) != (
                digest, str(raw_path)):
            feed.envelope_sha256, feed.raw_path, feed.period = digest, str(raw_path), period
            feed.status, feed.reason, feed.received_at = "received", "", received_at
            feed.processed_at = feed.receipt_sent_at = None
            audit.record(session, "intake", "feed.resent", f"feed:{feed.id}",
                         {"kind": kind, "sequence": sequence, "envelope_sha256": digest})
        elif feed.status == "received":
            feed.envelope_sha256, feed.raw_path = digest, str(raw_path)
        return feed.id


def _naive_utc(now: dt.datetime | None) -> dt.datetime:
    """Naive UTC, as the database stores times."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


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
            with tempfile.TemporaryDirectory(dir=settings.private_tmp_dir()) as tmp:
                plain = Path(tmp) / "plain"
                # created_at is judged against when the feed was received, so a feed taken in
                # again after a crash gets the answer it would have got then
                manifest = envelope.unpack_to_path(
                    raw_path, plain, keyring=keyring, trusted=trusted,
                    freshness=DbFreshness(session, exclude_feed=feed_id),
                    now=_aware(feed.received_at), max_age=settings.intake.max_age,
                    max_skew=settings.intake.clock_skew)
                _check_manifest(feed, contract, partner_code, manifest)
                # the limits a listing is held to, on what the partner signed, whatever the
                # transport (a file drop has no listing; a listing is not signed)
                before = last_accepted(session, partner_code, feed.kind, feed_id)
                if problem := listing_problem(
                        settings.intake, manifest.sequence, manifest.period,
                        before.sequence if before else 0, _aware(feed.received_at).date()
                ) or period_problem(manifest.period, before.period if before else ""):
                    raise IntakeRejected(problem)
                encoding = _EncodingOnce(plain)
                frame = _read_mixed_encodings(plain, manifest.content_type, encoding)
                chunked = _stage_in_chunks(settings, feed, contract, plain, encoding) if (
                    frame is None and manifest.row_count > CHUNK_ROWS
                    and manifest.content_type == "text/csv") else None
                if chunked is None and frame is None:
                    frame = read_plain_feed(plain, manifest.content_type, encoding)
                if frame is not None:
                    _require_columns(frame.columns, contract)
        except (envelope.EnvelopeError, IntakeRejected, UnicodeDecodeError, ValueError) as err:
            return _reject(session, feed, f"{type(err).__name__}: {err}")
        received = chunked.counts["received"] if chunked else len(frame)
        if received != manifest.row_count:
            if chunked:
                chunked.path.unlink(missing_ok=True)
            return _reject(session, feed, f"RowCountMismatch: manifest says {manifest.row_count} "
                                          f"rows, the file holds {received}")
        staged = chunked or _stage(settings, feed, contract, frame)
        if problem := (_over_quarantine_limit(settings, staged.counts, staged.quarantine)
                       or _sharp_drop(settings, before, staged.counts)
                       or _nobody_on_the_caseload(session, settings, staged)):
            staged.path.unlink(missing_ok=True)
            return _reject(session, feed, problem, staged.quarantine)
        write_person_digests(staged.path, contract)  # what a later re-check's diff compares
        _record_staged(settings, session, feed, staged, manifest)
        return _result(feed)


def _require_columns(columns: Iterable[str], contract: Contract) -> None:
    """Refuse a file whose header lacks a required field: every row would be quarantined for
    it, and the partner would read a quarantine limit instead of the one thing to fix."""
    if missing := contract.missing_columns(columns):
        named = "、".join(f"{name}（{contract.titles[name]}）" for name in missing)
        raise IntakeRejected(
            f"MissingColumns: 文件表头缺少必填列 {named}；`hedui partner template {contract.kind}` "
            f"可打印合同要求的表头 / the header lacks the required column(s) "
            f"{', '.join(missing)}; `hedui partner template {contract.kind}` prints the header "
            "the contract expects")


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


class _EncodingOnce:
    """``decoding.detect_file_encoding`` of one file, detected at most once: the mixed-encoding
    check, the block reader and the whole-file reader each ask, and each detection decodes the
    whole file (a failure is kept and raised again, as a second detection would)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._found: str | decoding.DecodeError | None = None

    def __call__(self) -> str:
        if self._found is None:
            try:
                self._found = decoding.detect_file_encoding(self.path)
            except decoding.DecodeError as err:
                self._found = err
        if isinstance(self._found, decoding.DecodeError):
            raise self._found
        return self._found


def read_plain_feed(path: Path, content_type: str = decoding.CSV,
                    encoding: Callable[[], str] | None = None) -> pd.DataFrame:
    """A decrypted feed as a frame of strings with ``_line`` (and ``_problem`` when decoded by
    connectors/decoding.py), by content type: CSV, XLSX or JSON Lines.

    A CSV in which every line is one row is read by Arrow's multi-threaded reader (Arrow-backed
    strings, the same values, a fraction of the memory); any other file — blank lines, values
    spanning lines, a row with too few or too many fields, UTF-16 — by connectors/decoding.py,
    which numbers lines exactly and marks unreadable rows.
    """
    if content_type == decoding.CSV:
        fast = _arrow_csv(path, encoding or _EncodingOnce(path))
        if fast is not None:
            return fast
    with decoding.wide_fields():  # an oversize field is quarantined with its row (_validate)
        return decoding.decode_file(path, content_type)


# A GB18030 file is read whole for this check only up to this size (such feeds are small; a
# larger one is taken as its decoder reads it).
MIXED_CHECK_BYTES = 1 << 29


def _read_mixed_encodings(path: Path, content_type: str,
                          encoding: Callable[[], str] | None = None) -> pd.DataFrame | None:
    """A text feed whose lines are partly UTF-8 and partly GBK decodes "successfully" as GB18030
    into garbled names. Such a feed is read line by line in the encoding most of its lines are
    in, and each row holding a line in the other is marked (``MIXED_ENCODING``) for quarantine:
    one pasted block does not void the feed unless it passes the quarantine limit. None when the
    file is in one encoding (verification/intake/textcheck.py)."""
    if content_type == decoding.XLSX or path.stat().st_size > MIXED_CHECK_BYTES:
        return None
    try:
        if (encoding or _EncodingOnce(path))() != "gb18030":
            return None  # UTF-8 (with or without BOM) or UTF-16 throughout: not mixed
    except decoding.DecodeError:
        pass  # neither as a whole: read it line by line if it is two encodings pasted together
    data = path.read_bytes()
    split = split_encodings(data) if mixed_encoding_line(data) else None
    if split is None:
        return None
    text, odd = split
    repaired = path.with_name(path.name + ".lines")
    repaired.write_text(text, encoding="utf-8", newline="")
    try:
        with decoding.wide_fields():
            frame = decoding.decode_file(repaired, content_type)
    finally:
        repaired.unlink(missing_ok=True)
    starts = frame[decoding.LINE].to_numpy()
    rows = np.searchsorted(starts, np.asarray(sorted(odd)), side="right") - 1
    problem = frame[decoding.PROBLEM].astype(object).to_numpy()
    for row, line in zip(rows, sorted(odd), strict=True):
        if row >= 0 and not problem[row]:
            problem[row] = (f"MIXED_ENCODING: line {line} is not in the encoding of the rest of "
                            "the file (rows pasted from another export?); save it as UTF-8 and "
                            "send it again")
    frame[decoding.PROBLEM] = problem
    return frame


def _arrow_encoding(encoding: str) -> str | None:
    """Arrow's name for an encoding from ``decoding.detect_file_encoding`` (None: not by Arrow,
    as in UTF-16 a 0x0A byte is not always a line end)."""
    if encoding in ("utf-8", "utf-8-sig"):
        return "utf8"  # Arrow skips a UTF-8 BOM
    return None if encoding == "utf-16" else encoding


def _arrow_csv(path: Path, detected: Callable[[], str]) -> pd.DataFrame | None:
    encoding = _arrow_encoding(detected())
    if encoding is None:
        return None
    try:
        table = pacsv.read_csv(path, **_csv_options(path, encoding, _READ_BYTES))
    except pa.ArrowInvalid:
        return None
    if not _one_line_per_row(path, table.num_rows):
        return None
    frame = _text_frame(table)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def _text_frame(table: pa.Table) -> pd.DataFrame:
    """CSV text as validated: Arrow-backed strings, each column in one piece (the reader gives
    one chunk per block it parsed; the checks that take a column as one Arrow array would
    otherwise join the chunks again each time)."""
    return table.combine_chunks().to_pandas(
        types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


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


# A field longer than this (in UTF-8 bytes) is no name, code or amount: its row is quarantined.
MAX_FIELD_BYTES = 131_072


def _validate(frame: pd.DataFrame, contract: Contract, not_after: dt.date | None = None,
              earlier: EarlierKeys | None = None,
              earlier_payments: EarlierHashes | None = None) -> Validated:
    """``validate_frame``, with rows quarantined before it that cannot be trusted as text (the
    decoder's ``_problem``: unreadable, another encoding; a control, bidirectional or zero-width
    character or NUL in any field; a field over ``MAX_FIELD_BYTES``) and rows after it with a
    date or month after ``not_after``: they count as received and quarantined, never silently
    dropped, and each has its reason code. ``earlier``: the keys of a feed's earlier blocks
    (``validate_frame(repeats_earlier=…)``), ``earlier_payments`` their payments
    (``row_repeats_earlier``); a row quarantined before validation owns no key, as in the whole
    file."""
    before = _text_problems(frame, contract)
    bad = frame["_line"].isin(before["line"]).to_numpy() if len(before) else np.zeros(
        len(frame), bool)
    # no row copied when every row is readable text (the common case: a full take of every
    # column otherwise)
    body = (frame.loc[~bad] if bad.any() else frame).drop(columns=[decoding.PROBLEM],
                                                          errors="ignore")
    checked = validate_frame(body, contract, identity_unresolved=True,
                             repeats_earlier=None if earlier is None else earlier.repeats,
                             not_after=not_after,
                             row_repeats_earlier=None if earlier_payments is None
                             else earlier_payments.repeats)
    if not_after is not None:
        checked = _quarantine_lines(checked, contract, future_date_problems(
            checked.accepted, contract, not_after))
    if not bad.any():
        return checked
    quarantine = pd.concat([q for q in (checked.quarantine, before) if len(q)],
                           ignore_index=True).sort_values(["line", "field"]).reset_index(
                               drop=True)
    return Validated(accepted=checked.accepted, quarantine=quarantine,
                     received=checked.received + int(bad.sum()), warnings=checked.warnings,
                     unresolved=checked.unresolved)


def _text_problems(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """(line, field, reason, message) of rows to quarantine before validation; one per row."""
    parts = []
    if decoding.PROBLEM in frame:
        problem = frame[decoding.PROBLEM].astype(str)
        bad = (problem != "").to_numpy()
        if bad.any():
            split = problem[bad].str.partition(": ")
            parts.append(pd.DataFrame({"line": frame.loc[bad, "_line"].to_numpy(),
                                       "field": "_row", "reason": split[0].to_numpy(),
                                       "message": split[2].to_numpy()}))
    fields = [name for name in contract.field_names if name in frame]
    titles = contract.titles
    parts.append(_oversize_problems(frame, fields, titles))
    parts.append(invisible_character_problems(frame, fields, titles))
    found = [p for p in parts if len(p)]
    if not found:
        return pd.DataFrame(columns=["line", "field", "reason", "message"])
    return pd.concat(found, ignore_index=True).drop_duplicates("line", keep="first")


def _oversize_problems(frame: pd.DataFrame, fields: list[str],
                       titles: dict[str, str]) -> pd.DataFrame:
    rows = []
    for name in fields:
        chunks = arrow_chunks(frame[name])
        sizes = np.concatenate([pc.fill_null(pc.binary_length(c), 0).to_numpy()
                                for c in chunks]) if chunks is not None else (
            np.array([len(v.encode("utf-8", "surrogatepass")) if isinstance(v, str) else 0
                      for v in frame[name]], dtype=np.int64))  # UTF-8 bytes
        for at in np.flatnonzero(sizes > MAX_FIELD_BYTES):
            rows.append({"line": int(frame["_line"].iat[at]), "field": name,
                         "reason": "FIELD_TOO_LONG",
                         "message": row_problems.message(
                             "FIELD_TOO_LONG", {"name": name, "title": titles.get(name, name)},
                             detail=f"{int(sizes[at]):,} > {MAX_FIELD_BYTES:,} bytes")})
    return pd.DataFrame(rows, columns=["line", "field", "reason", "message"])


def _quarantine_lines(checked: Validated, contract: Contract,
                      problems: pd.DataFrame) -> Validated:
    """``checked`` with the accepted rows on ``problems``' lines moved to quarantine."""
    if not len(problems):
        return checked
    id_field = contract.person_id_field
    moved = checked.accepted["_line"].isin(problems["line"]).to_numpy()
    unresolved = int(checked.accepted.loc[moved, id_field].isna().sum()) if (
        id_field in checked.accepted) else 0
    quarantine = pd.concat([q for q in (checked.quarantine, problems) if len(q)],
                           ignore_index=True).sort_values(["line", "field"]).reset_index(
                               drop=True)
    return Validated(accepted=checked.accepted[~moved], quarantine=quarantine,
                     received=checked.received, warnings=checked.warnings,
                     unresolved=checked.unresolved - unresolved)


@dataclass
class _Staged:
    """A feed validated and written to staging: where, what was quarantined, the counts."""

    path: Path
    quarantine: pd.DataFrame
    counts: dict[str, int]


def _stage(settings: Settings, feed: Feed, contract: Contract, frame: pd.DataFrame) -> _Staged:
    """Validate and write the staged file (``.partial``, then renamed: a crash never leaves a
    half-written file under the staged name); the outcome is committed by the caller."""
    checked = _validate(frame, contract, _not_after(feed))
    staged = _staged_rows(settings, checked.accepted, contract.person_id_field,
                          lambda ids: _tokens(settings, ids))
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    path = settings.staging_dir / f"feed-{feed.id}.parquet"
    partial = path.with_name(path.name + ".partial")
    table = _staged_table(staged)
    pq.write_table(table, partial, use_dictionary=_dictionary_columns(contract, table.schema))
    partial.replace(path)
    counts = {**checked.counts, "identity_unresolved": checked.unresolved}
    return _Staged(path, checked.quarantine, counts)


def _not_after(feed: Feed) -> dt.date:
    """The last date a feed's rows may carry: the day it was received."""
    return feed.received_at.date()


def _sharp_drop(settings: Settings, before: Feed | None, counts: dict[str, int]) -> str:
    """Why the feed is rejected for holding far fewer rows than ``before``, the last accepted
    feed of its kind from the same partner ("" otherwise; ``IntakeLimits.min_row_share``): a
    header alone, or a tenth of last month's wages, is a broken extract, not a district where
    nobody earns.
    Rejected, the kind's last accepted feed stays in use until it is stale, then its households
    wait (REVIEW); the partner sends the full feed again under the same sequence."""
    share, least = settings.intake.min_row_share, settings.intake.drop_min_previous
    if share <= 0:
        return ""
    if before is None or (before.rows_accepted or 0) < least:
        return ""
    accepted = counts["accepted"]
    if accepted >= share * before.rows_accepted:
        return ""
    return (f"RowCountDrop: 行数骤降：本批接收 {accepted} 行，上一批（第 {before.sequence} 批）"
            f"{before.rows_accepted} 行，低于 {share:.0%}；请核对导出后以同一批次号重新发送 / "
            f"{accepted} rows accepted against {before.rows_accepted} in the last accepted "
            f"feed (#{before.sequence}), under {share:.0%} of it; check the extract and send "
            "the feed again under the same sequence")


# How many of a feed's distinct persons are looked up on the caseload to tell that it is about
# the district at all: one found is enough, so a feed of the district stops at the first chunk.
CASELOAD_SAMPLE = 20_000
_LOOKUP_CHUNK = 2_000


def _nobody_on_the_caseload(session: Session, settings: Settings, staged: _Staged) -> str:
    """Why the feed is rejected for naming nobody of the caseload ("" otherwise): a wages feed
    of another district (every ID another area's), correctly signed, would replace the
    district's own as its newest and leave every household without its income. Asked only of
    a feed of at least ``IntakeLimits.drop_min_previous`` rows once a caseload is loaded; up to
    ``CASELOAD_SAMPLE`` of its distinct persons are looked up."""
    if staged.counts["accepted"] < settings.intake.drop_min_previous or session.scalar(
            select(Member.id).limit(1)) is None:
        return ""
    column = pq.read_table(staged.path, columns=["person_token"]).column(0)
    tokens = distinct(pc.drop_null(column).to_numpy())
    if not len(tokens):
        return ""  # every ID unusable: the matcher places such rows, or not
    if len(tokens) > CASELOAD_SAMPLE:
        tokens = np.random.default_rng(len(tokens)).choice(tokens, CASELOAD_SAMPLE,
                                                             replace=False)
    for at in range(0, len(tokens), _LOOKUP_CHUNK):
        chunk = [int(t) for t in tokens[at:at + _LOOKUP_CHUNK]]
        if session.scalar(select(Member.id).where(Member.person_token.in_(chunk)).limit(1)):
            return ""
    return (f"NoCaseloadPersons: 文件所涉人员均不在本辖区在册名单中（本批 "
            f"{staged.counts['accepted']} 行，抽查 {len(tokens)} 人），疑为其他辖区的文件；请核对后"
            f"重新发送 / none of the "
            f"{len(tokens)} persons looked up of the {staged.counts['accepted']} rows accepted is "
            "on the caseload: a file for another district? check it and send the right one")


def _over_quarantine_limit(settings: Settings, counts: dict[str, int],
                           quarantine: pd.DataFrame) -> str:
    """Why the feed is rejected whole for the share of rows quarantined ("" when within the
    limit): more than ``IntakeLimits.quarantine_limit`` of its rows, counting at least
    ``quarantine_min_rows`` rows (or every row). A feed mostly unreadable is no evidence of
    anyone's income; rejected, it is a missing source, which puts households on REVIEW."""
    received, quarantined = counts["received"], counts["quarantined"]
    limit = settings.intake.quarantine_limit
    if not received or quarantined / received <= limit or (
            quarantined < settings.intake.quarantine_min_rows and counts["accepted"]):
        return ""
    by_reason = quarantine.drop_duplicates("line")["reason"].value_counts()
    reasons = ", ".join(f"{reason} {n}" for reason, n in by_reason.head(5).items())
    return (f"QuarantineLimit: {quarantined} of {received} rows "
            f"({quarantined / received:.0%}) failed the checks ({reasons}), more than the "
            f"{limit:.0%} allowed; correct them and send the feed again under the same sequence")


def _staged_rows(settings: Settings, accepted: pd.DataFrame, id_field: str,
                 tokens: Callable[[pd.Series], pd.Series]) -> pd.DataFrame:
    """Accepted rows as staged: the keyed token instead of the ID number (<NA>: identity
    unresolved), keyed name forms (``name_key_text`` under the token key: codes, not names) instead
    of the name, and ``birth_date``/``gender`` — the row's own when the partner sent them, else
    read off the ID (``birth_date_from_id``/``gender_from_id`` say which) — so the matcher can
    place a row without a usable ID and doubt a valid ID typed into someone else's record."""
    # Address and phone help only to place a row whose ID is unusable: those rows (and only
    # those) get their keyed parts (verification/matching/address.py); the raw text is dropped,
    # so no address or number sits in staging.
    # the staged frame is put together from the columns as they are (no copy of every row, as
    # dropping and concatenating frames made)
    columns = {name: accepted[name] for name in accepted.columns
               if name not in ("name", "address", "phone")}
    if "address" in accepted or "phone" in accepted:
        columns.update(_contact_keys(settings, accepted, id_field).items())
    columns = {"person_token": tokens(columns.pop(id_field)), **columns}
    if NEAR_MISS_NUMBERS in columns:  # the numbers an unusable ID may have meant: tokens only
        columns["id_near"] = near_miss_tokens(TokenKey.from_settings(settings),
                                              columns.pop(NEAR_MISS_NUMBERS))
    if "name" in accepted:
        columns.update(name_key_text(accepted["name"], TokenKey.from_settings(settings)).items())
    return pd.DataFrame(columns, index=accepted.index, copy=False)


def _dictionary_columns(contract: Contract, schema: pa.Schema) -> list[str]:
    """The staged columns to write dictionary-encoded: all but the record key, the line and the
    contract's numbers, whose values are nearly all distinct — Parquet's writer would build a
    dictionary for each and then drop it (wages at 100,000 households: 0.73 → 0.52 CPU-s)."""
    plain = {*contract.primary_key, "_line", *(f["name"] for f in contract.fields
                                                if f.get("type") in ("number", "integer"))}
    return [name for name in schema.names if name not in plain]


def _staged_table(staged: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """The staged rows as the Arrow table written to staging: text as ``string`` whether the
    column was Arrow-backed (``large_string``) or not, so every staged file of a kind has one
    schema."""
    table = pa.Table.from_pandas(staged, preserve_index=False)
    if schema is None:
        schema = table.schema
        for at, column in enumerate(schema):
            if column.type == pa.large_string():
                schema = schema.set(at, column.with_type(pa.string()))
    return table.cast(schema)


def _contact_keys(settings: Settings, accepted: pd.DataFrame, id_field: str) -> pd.DataFrame:
    """Keyed address and phone parts of the accepted rows whose ID is unusable (<NA> on every
    other row: a valid ID is matched on its token, and its address would only be one more
    copy of personal data)."""
    from verification.matching.address import ADDRESS_KEY_COLUMNS, PHONE_KEY_COLUMNS

    out = {c: pd.Series(pd.NA, index=accepted.index, dtype="string")
           for c in (*ADDRESS_KEY_COLUMNS, *PHONE_KEY_COLUMNS)}
    unresolved = (accepted[id_field].isna() if id_field in accepted
                  else pd.Series(True, index=accepted.index)).to_numpy(bool)
    if unresolved.any():
        rows = accepted.index[unresolved]
        keys = contact_keys(accepted.loc[rows, "address"] if "address" in accepted else None,
                            accepted.loc[rows, "phone"] if "phone" in accepted else None,
                            TokenKey.from_settings(settings), rows)
        at = np.flatnonzero(unresolved)
        for column in keys.columns:  # set by position: no index alignment over every row
            out[column].iloc[at] = keys[column].astype("string").to_numpy(dtype=object,
                                                                          na_value=pd.NA)
    return pd.DataFrame(out)


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
    feed.receipt_sent_at = None
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
# what Arrow's CSV reader parses at a time: a quarter of the CPU of parsing 256 MiB blocks (a
# wages feed's million rows: 0.3 s instead of 1.3 s); its batches are validated together, about
# _BLOCK_BYTES at a time
_READ_BYTES = 1 << 24


def _stage_in_chunks(settings: Settings, feed: Feed, contract: Contract, plain: Path,
                     encoding: Callable[[], str] | None = None) -> _Staged | None:
    """Validate and stage ``plain`` block by block; None when Arrow cannot read it as it is
    (the caller then reads it whole, which gives every file read_table's answer)."""
    types = {f["name"]: f.get("type", "string") for f in contract.fields}
    if any(types.get(k) != "string" for k in contract.primary_key):
        return None
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    path = settings.staging_dir / f"feed-{feed.id}.parquet"
    partial = path.with_name(path.name + ".partial")
    try:
        staged = _write_chunks(settings, contract, plain, partial, _not_after(feed),
                               encoding or _EncodingOnce(plain))
    except pa.ArrowInvalid:
        partial.unlink(missing_ok=True)
        return None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return _Staged(path, staged.quarantine, staged.counts)


@dataclass
class _Blocks:
    """What staging block by block carries from one block to the next."""

    out: Path
    not_after: dt.date
    earlier: EarlierKeys = field(default_factory=EarlierKeys)  # the earlier blocks' keys
    earlier_payments: EarlierHashes = field(default_factory=EarlierHashes)  # their payments
    cache: dict[str, int] = field(default_factory=dict)  # tokens by canonical ID
    quarantines: list[pd.DataFrame] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {
        "received": 0, "accepted": 0, "quarantined": 0, "identity_unresolved": 0})
    writer: pq.ParquetWriter | None = None


def _write_chunks(settings: Settings, contract: Contract, plain: Path, out: Path,
                  not_after: dt.date, detected: Callable[[], str]) -> _Staged:
    encoding = _arrow_encoding(detected())
    if encoding is None:
        raise pa.ArrowInvalid("not an encoding read by Arrow block by block")
    blocks = _Blocks(out, not_after)
    try:
        for block in _csv_blocks(plain, encoding, _BLOCK_BYTES):
            _stage_block(settings, contract, block, blocks)
            del block  # let go of this block's text before the next is read
    finally:
        blocks.earlier.close()
        if blocks.writer is not None:
            blocks.writer.close()
    counts, quarantines = blocks.counts, blocks.quarantines
    if blocks.writer is None:  # no rows at all: the whole-frame path handles an empty file
        raise pa.ArrowInvalid("empty feed")
    if not _one_line_per_row(plain, counts["received"]):  # line numbers would be off
        raise pa.ArrowInvalid("blank lines or values spanning lines")
    filled = [q for q in quarantines if len(q)]
    quarantine = pd.concat(filled, ignore_index=True).sort_values(["line", "field"]).reset_index(
        drop=True) if filled else quarantines[0]
    return _Staged(out, quarantine, counts)


def _stage_block(settings: Settings, contract: Contract, block: pa.Table,
                 blocks: _Blocks) -> None:
    """Validate one block and append its accepted rows to the staged file. Its frames are this
    call's own: none of them is still held while the next block is read and validated."""
    counts = blocks.counts
    if not counts["received"]:
        _require_columns(block.column_names, contract)
    frame = _text_frame(block)
    frame.insert(0, "_line", range(counts["received"] + 2, counts["received"] + 2 + len(frame)))
    checked = _validate(frame, contract, blocks.not_after, blocks.earlier,
                        blocks.earlier_payments)
    staged = _staged_rows(settings, checked.accepted, contract.person_id_field,
                          lambda ids: _cached_tokens(settings, ids, blocks.cache))
    table = _staged_table(staged, blocks.writer.schema if blocks.writer else None)
    blocks.writer = blocks.writer or pq.ParquetWriter(
        blocks.out, table.schema, use_dictionary=_dictionary_columns(contract, table.schema))
    blocks.writer.write_table(table)
    blocks.quarantines.append(checked.quarantine)
    for name, value in checked.counts.items():
        counts[name] += value
    counts["identity_unresolved"] += checked.unresolved


def _csv_blocks(plain: Path, arrow_encoding: str, block_bytes: int) -> Iterator[pa.Table]:
    """The file's rows as text, in tables of about ``block_bytes`` of CSV each."""
    read = min(_READ_BYTES, block_bytes)
    pending: list[pa.RecordBatch] = []
    for batch in _csv_reader(plain, arrow_encoding, read):
        pending.append(batch)
        if len(pending) * read >= block_bytes:
            yield _joined(pending)
    if pending:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.Table:
    """The batches as one table of one chunk per column; the list is emptied, so that the
    batches (a second copy of the block's text) are not held while the block is validated."""
    table = pa.Table.from_batches(batches).combine_chunks()
    batches.clear()
    return table


def _csv_reader(plain: Path, arrow_encoding: str,
                read_bytes: int) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(plain, **_csv_options(plain, arrow_encoding, read_bytes))


def _csv_options(path: Path, arrow_encoding: str, read_bytes: int) -> dict[str, object]:
    """How Arrow reads a feed's CSV: every field as text, empty never null, ``read_bytes`` at a
    time, on the calling thread (ArrowInvalid when the header is not one the decoder would take
    as it is). Intake takes feeds in on parallel processes, one feed each: the reader's own
    threads added a third to its CPU (wages at 100k: 0.3 CPU-s on one thread, 0.5 on two)."""
    header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(
        encoding=arrow_encoding, use_threads=False)).schema.names
    if not _plain_header(header):
        raise pa.ArrowInvalid("repeated, missing, padded or reserved column names")
    return {"read_options": pacsv.ReadOptions(encoding=arrow_encoding, block_size=read_bytes,
                                              use_threads=False),
            "parse_options": pacsv.ParseOptions(newlines_in_values=True),
            "convert_options": pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False)}


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


# ---- the state machine: what a crash or a lost receipt leaves, taken up again ----------------
# A feed is ``received`` from register_feed until process_feed commits ``accepted`` or
# ``rejected`` (staged file and quarantine in the same transaction), then its receipt is sent
# (``receipt_sent_at``). A kill at any point leaves one of those states; the next pull (and the
# housekeeping DAG) takes ``received`` feeds in again from the file as received, and the next pull
# sends any receipt still owed. Staged files no committed feed names are removed.


def pending_feeds(settings: Settings, partner: str | None = None) -> list[int]:
    """Feeds registered but not yet taken in (oldest first)."""
    with session_scope(settings.database_url) as session:
        query = select(Feed.id).join(Partner).where(Feed.status == "received")
        if partner:
            query = query.where(Partner.code == partner)
        return list(session.scalars(query.order_by(Feed.kind, Feed.sequence)))


def resume_pending(settings: Settings, keyring: CentreKeyring | None = None,
                   trusted: PartnerDirectory | None = None, partner: str | None = None,
                   now: dt.datetime | None = None) -> list[IntakeResult]:
    """Take in again every ``received`` feed of a feed-delivering partner whose file as received
    is still there (the pull downloads the others again); alert for each feed that has waited
    longer than ``IntakeLimits.max_wait``. Idempotent: an outcome already committed is not
    redone."""
    from verification.alerts import raise_alert

    results = []
    for feed_id in pending_feeds(settings, partner):
        waiting = _waiting(settings, feed_id, now)
        if waiting is None:
            continue  # taken in meanwhile by another worker
        (code, kind, sequence, raw, waited) = waiting
        if waited > settings.intake.max_wait:
            raise_alert(settings, "feed.waited", f"feed:{feed_id}",
                        {"partner": code, "kind": kind, "sequence": sequence,
                         "waited_minutes": int(waited.total_seconds() // 60),
                         "file_present": raw.exists()})
        if not raw.exists() or not _resumable(code, raw):
            continue
        if keyring is None or trusted is None:
            keyring = keyring or CentreKeyring.load(settings.keys_dir)
            trusted = trusted or PartnerDirectory.load(settings.keys_dir)
        log.warning("feed %s %s #%s was left received (interrupted intake): taking it in again",
                    code, kind, sequence)
        results.append(process_feed(settings, feed_id, keyring, trusted))
    return results


_QUERY_ANSWER = "-answer-"


def query_answer_name(kind: str, query_id: str) -> str:
    """The file name an answer to a query list is kept under (verification/intake/query_list.py)."""
    return f"{kind}{_QUERY_ANSWER}{query_id}.hedui"


def _resumable(partner: str, raw: Path) -> bool:
    """Whether intake may take a feed in again on its own: a registered partner's delivery. An
    answer to a query list, or to another centre's request, is first checked against what was
    asked (query_list.py, linkage.py): its own flow takes it up again; left waiting, it is only
    alerted."""
    return partner in load_partners() and _QUERY_ANSWER not in raw.name


def _waiting(settings: Settings, feed_id: int, now: dt.datetime | None
             ) -> tuple[str, str, int, Path, dt.timedelta] | None:
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, feed_id)
        if feed is None or feed.status != "received":
            return None
        return (feed.partner.code, feed.kind, feed.sequence, Path(feed.raw_path),
                _naive_utc(now) - feed.received_at)


def unsent_receipts(settings: Settings, partner: str, kind: str) -> list[IntakeResult]:
    """Outcomes committed whose receipt the partner has not acknowledged."""
    with session_scope(settings.database_url) as session:
        feeds = session.scalars(select(Feed).join(Partner).where(
            Partner.code == partner, Feed.kind == kind, Feed.status.in_(["accepted", "rejected"]),
            Feed.receipt_sent_at.is_(None)).order_by(Feed.sequence)).all()
        return [_result(feed) for feed in feeds]


def mark_receipt_sent(settings: Settings, feed_id: int) -> None:
    with session_scope(settings.database_url) as session:
        session.get(Feed, feed_id).receipt_sent_at = _naive_utc(None)


def clean_orphan_staging(settings: Settings, older_than: dt.timedelta | None = None,
                         now: dt.datetime | None = None) -> list[str]:
    """Remove staged files no accepted feed names (``*.partial`` of a killed write, the file of
    a feed killed before its commit and since rejected), once older than ``older_than``
    (default ``IntakeLimits.max_wait``: an intake still running is never disturbed)."""
    folder = settings.staging_dir
    if not folder.is_dir():
        return []
    with session_scope(settings.database_url) as session:
        staged = [Path(p) for p in session.scalars(
            select(Feed.staged_path).where(Feed.status == "accepted", Feed.staged_path != ""))]
    named = {p.name for p in staged} | {digests_path(p).name for p in staged}
    before = _naive_utc(now) - (older_than if older_than is not None
                                else settings.intake.max_wait)
    removed = []
    for path in sorted(folder.glob("feed-*")):
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
        if path.is_file() and path.name not in named and modified <= before:
            path.unlink()
            removed.append(str(path))
    if removed:
        with session_scope(settings.database_url) as session:
            audit.record(session, "intake", "staging.orphans_removed", "staging",
                         {"files": len(removed)})
    return removed


def reject_feed(settings: Settings, feed_id: int, reason: str) -> IntakeResult:
    """Mark a registered feed rejected as a whole for a reason found outside intake (e.g. an
    answer to a query list naming persons who were not asked); kept as received, audited."""
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, feed_id)
        if feed.status == "accepted":
            raise ValueError(f"feed {feed_id} is already accepted")
        return _reject(session, feed, reason)


def _reject(session: Session, feed: Feed, reason: str,
            quarantine: pd.DataFrame | None = None) -> IntakeResult:
    """Mark the feed rejected whole, kept as received (its file and digest are in the audit
    event, so a later re-send under the same sequence loses nothing), and alert naming the
    partner; ``quarantine``: the rows that made it fail, counted by reason. The reason is told
    in Chinese first, then the English detail (codes.rejection_reason)."""
    reason = codes.rejection_reason(reason)
    feed.status, feed.reason = "rejected", reason
    feed.processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    feed.receipt_sent_at = None
    feed.staged_path = ""
    detail = {"partner": feed.partner.code, "kind": feed.kind, "sequence": feed.sequence,
              "reason": reason, "envelope_sha256": feed.envelope_sha256,
              "raw_path": feed.raw_path}
    if quarantine is not None and len(quarantine):
        detail["quarantined_by_reason"] = {str(k): int(v) for k, v in quarantine.drop_duplicates(
            "line")["reason"].value_counts().items()}
    audit.record(session, "intake", "feed.rejected", f"feed:{feed.id}", detail)
    log.error("ALERT feed %s #%s from partner %s rejected: %s", feed.kind, feed.sequence,
              feed.partner.code, reason)
    return _result(feed)


def feed_result(settings: Settings, feed_id: int) -> IntakeResult:
    """The committed outcome of a feed, as its receipt tells it."""
    with session_scope(settings.database_url) as session:
        return _result(session.get(Feed, feed_id))


def _result(feed: Feed) -> IntakeResult:
    return IntakeResult(feed.id, feed.partner.code, feed.kind, feed.sequence, feed.status,
                        feed.rows_received, feed.rows_accepted, feed.rows_quarantined, feed.reason,
                        feed.rows_identity_unresolved or 0)


