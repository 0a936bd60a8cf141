"""Intake: a packed feed as received → verified, decrypted, decoded, validated, staged.

verify+decrypt (connectors/envelope.py) → decode (bytes → strings) → validate against the
contract (verification/validation.py, which canonicalises IDs) → tokens → staged Parquet holding
no raw ID or name. Rows that fail go to quarantine with line and reason; the feed's counts
reconcile (received = accepted + quarantined) or the feed is rejected. A feed that fails as a whole
(bad signature, wrong key, truncated, replayed, row count off) is kept exactly as received, marked
rejected with the reason, and audited; nothing downstream treats its absence as data.

The plaintext exists only in a private temporary file for the length of one intake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from connectors import envelope
from connectors.keys import CentreKeyring, PartnerDirectory
from connectors.registry import load_partners
from schemas import load_contract
from verification import audit
from verification.config import Settings
from verification.decode import read_feed_table
from verification.storage import session_scope
from verification.storage.models import Feed, Partner, QuarantinedRow
from verification.tokens import person_tokens
from verification.validation import validate_frame

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

    def receipt(self) -> dict[str, object]:
        """What the partner is told back."""
        return {"status": self.status, "received": self.received, "accepted": self.accepted,
                "quarantined": self.quarantined, "reason": self.reason}


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
    digest = _sha256(raw_path)
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
        try:
            with tempfile.TemporaryDirectory(dir=_tmp_dir(settings)) as tmp:
                plain = Path(tmp) / "plain"
                manifest = envelope.unpack_to_path(
                    raw_path, plain, keyring=keyring, trusted=trusted,
                    freshness=DbFreshness(session, exclude_feed=feed_id))
                _check_manifest(feed, partner_code, manifest)
                frame = read_feed_table(plain, manifest.content_type)
        except (envelope.EnvelopeError, IntakeRejected, UnicodeDecodeError, ValueError) as err:
            return _reject(session, feed, f"{type(err).__name__}: {err}")
        if len(frame) != manifest.row_count:
            return _reject(session, feed, f"RowCountMismatch: manifest says {manifest.row_count} "
                                          f"rows, the file holds {len(frame)}")
        _stage(settings, session, feed, frame, manifest)
        return _result(feed)


class IntakeRejected(ValueError):
    pass


def _check_manifest(feed: Feed, partner: str, manifest: envelope.Manifest) -> None:
    expected = (partner, feed.kind, feed.sequence)
    got = (manifest.partner, manifest.feed_kind, manifest.sequence)
    if got != expected:
        raise IntakeRejected(f"the signed manifest names {got}, but the feed was listed as "
                             f"{expected}")
    feed.period = manifest.period
    feed.schema_version = manifest.schema_version
    feed.plaintext_digest = manifest.plaintext_digest
    feed.sender_key_id = manifest.sender_key_id
    contract_version = load_contract(feed.kind)["version"]
    if manifest.schema_version.split(".")[0] != contract_version.split(".")[0]:
        raise IntakeRejected(f"schema version {manifest.schema_version} is not compatible with "
                             f"contract {feed.kind} {contract_version}")


def _stage(settings: Settings, session: Session, feed: Feed, frame: pd.DataFrame,
           manifest: envelope.Manifest) -> None:
    checked = validate_frame(frame, feed.kind)
    staged = checked.accepted.drop(columns=["name"], errors="ignore")
    id_field = load_contract(feed.kind)["x-hedui"]["person_id_field"]
    staged.insert(0, "person_token", _tokens(settings, staged.pop(id_field)))
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    path = settings.staging_dir / f"feed-{feed.id}.parquet"
    staged.to_parquet(path, index=False)
    session.execute(delete(QuarantinedRow).where(QuarantinedRow.feed_id == feed.id))
    if len(checked.quarantine):
        rows = checked.quarantine.assign(feed_id=feed.id).to_dict("records")
        session.execute(insert(QuarantinedRow), rows)
    counts = checked.counts
    if counts["received"] != counts["accepted"] + counts["quarantined"]:
        raise AssertionError(f"feed {feed.id}: counts do not reconcile: {counts}")
    feed.rows_received, feed.rows_accepted = counts["received"], counts["accepted"]
    feed.rows_quarantined = counts["quarantined"]
    feed.staged_path, feed.status, feed.reason = str(path), "accepted", ""
    feed.processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    audit.record(session, "intake", "feed.accepted", f"feed:{feed.id}",
                 {"partner": manifest.partner, "kind": feed.kind, "sequence": feed.sequence,
                  **counts})
    log.info("feed %s %s #%s accepted: %s", manifest.partner, feed.kind, feed.sequence, counts)


def _tokens(settings: Settings, canonical_ids: pd.Series) -> pd.Series:
    """``person_tokens`` computed once per distinct ID (a monthly feed names each person twelve
    times) and put back by position."""
    codes, distinct = pd.factorize(canonical_ids, use_na_sentinel=True)
    tokens = person_tokens(settings.token_key,
                           pd.Series([*np.asarray(distinct, dtype=object), None], dtype=object))
    positions = np.where(codes < 0, len(distinct), codes)
    return tokens.iloc[positions].set_axis(canonical_ids.index)


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
                        feed.rows_received, feed.rows_accepted, feed.rows_quarantined, feed.reason)


def _tmp_dir(settings: Settings) -> Path:
    path = settings.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
