"""Append-only audit trail, hash-chained: each event's hash covers its content and the previous
event's hash, so changing or deleting any event breaks every hash after it.

Three layers keep it honest:

* the chain (``verify_chain``, ``hedui audit verify``) detects any change, insertion or deletion
  before the last event, and names the first event that does not hold;
* the database refuses UPDATE, DELETE and TRUNCATE on ``audit_events`` and ``audit_subjects``
  (triggers installed at every upgrade, ``install_append_only_guard``), so only someone who can
  drop triggers — a database owner, whose action the chain then exposes — can alter it;
* details never carry raw personal data — only tokens, ids, counts and codes: ``record`` refuses a
  detail that holds a resident ID number (``AuditPersonalData``). Persons concerned by a data
  access are recorded by keyed token in ``audit_subjects`` (``record_access``), and the event's
  hash covers their digest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.orm import Session

from verification.sorting import distinct
from verification.storage.models import AuditEvent, AuditSubject, utcnow

APPEND_ONLY_TABLES = ("audit_events", "audit_subjects")
_ID_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")


class AuditPersonalData(ValueError):
    """An audit detail would have held a raw ID number: refused, nothing written."""


def _sm3(data: bytes) -> str:
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


# The chain's hash function is configuration (HEDUI_AUDIT_HASH); each event records its own, so a
# deployment can switch to the national algorithm SM3 (GB/T 32905) without rewriting history.
HASH_ALGORITHMS = {"sha256": lambda data: hashlib.sha256(data).hexdigest(), "sm3": _sm3}


def hash_algorithm() -> str:
    name = os.environ.get("HEDUI_AUDIT_HASH", "sha256").strip().lower()
    if name not in HASH_ALGORITHMS:
        raise ValueError(f"HEDUI_AUDIT_HASH={name!r}: use one of {', '.join(HASH_ALGORITHMS)}")
    return name


@dataclass(frozen=True)
class AuditKeys:
    """HMAC keys for the chain (HEDUI_AUDIT_KEYS="id:hex,…", last is current), held outside the
    database: whoever can rewrite the table cannot recompute a keyed chain. Every event from id
    ``keyed_from`` on (HEDUI_AUDIT_KEYED_FROM, default 1) must be keyed, so a rewrite cannot
    fall back to plain hashes."""

    keys: dict[str, bytes] = field(repr=False)
    current: str
    keyed_from: int = 1


def audit_keys() -> AuditKeys | None:
    spec = os.environ.get("HEDUI_AUDIT_KEYS", "").strip()
    if not spec:
        return None
    keys: dict[str, bytes] = {}
    for part in (p.strip() for p in spec.split(",")):
        kid, _, hexkey = part.partition(":")
        try:
            secret = bytes.fromhex(hexkey)
        except ValueError:
            raise ValueError(f"HEDUI_AUDIT_KEYS: key {kid!r} is not hexadecimal") from None
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", kid) or len(secret) < 16:
            raise ValueError(f"HEDUI_AUDIT_KEYS: entry {kid!r} needs an id (letters, digits, "
                             "'.', '_', '-') and a key of at least 16 bytes")
        keys[kid] = secret
    since = os.environ.get("HEDUI_AUDIT_KEYED_FROM", "1")
    if not since.isdigit():
        raise ValueError(f"HEDUI_AUDIT_KEYED_FROM={since!r} must be an audit event id")
    return AuditKeys(keys, kid, int(since))


def _hmac(base: str, key: bytes, data: bytes) -> str:
    if base == "sha256":
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize().hex()


def _digest(prev: str, at: str, actor: str, action: str, subject: str, detail: dict,
            algorithm: str = "sha256", key: bytes | None = None) -> str:
    body = json.dumps([prev, at, actor, action, subject, detail], ensure_ascii=False,
                      sort_keys=True, separators=(",", ":"), default=str).encode()
    if algorithm.startswith("hmac-"):
        if key is None:
            raise ValueError(f"{algorithm} needs a key")
        return _hmac(algorithm.removeprefix("hmac-"), key, body)
    return HASH_ALGORITHMS[algorithm](body)


# A SHA-256 in hex: 64 characters, about 40 of them digits, so one in a few thousand digests
# holds a run of 15 or 18 digits that reads as a valid resident ID by chance. A digest is not
# personal data; scanning it made a review fail at random (seen at 10,000 households).
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if not _HEX_DIGEST.fullmatch(value):
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def holds_resident_id(text: str) -> bool:
    """Whether ``text`` contains a checksum-valid 18-digit (or legacy 15-digit) resident ID."""
    from verification.intake.identifiers import is_valid_id

    return any(is_valid_id(m.group()) for m in _ID_CANDIDATE.finditer(text))


def _refuse_personal_data(actor: str, action: str, subject: str, detail: dict) -> None:
    for value in (actor, action, subject, *_strings(detail)):
        if holds_resident_id(value):
            raise AuditPersonalData(f"audit event {action!r} would record a resident ID number; "
                                    "record the person token (or a masked form) instead")


def record(session: Session, actor: str, action: str, subject: str = "",
           detail: dict[str, Any] | None = None) -> AuditEvent:
    """Append one event to the chain (in the caller's transaction)."""
    detail = json.loads(json.dumps(detail or {}, default=str))
    _refuse_personal_data(actor, action, subject, detail)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # One writer at a time extends the chain (SQLite serialises writers by itself).
        session.execute(text("SELECT pg_advisory_xact_lock(4242)"))
    last = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or ""
    at = utcnow()
    algorithm, keys = hash_algorithm(), audit_keys()
    key_id = keys.current if keys else ""
    if keys:
        algorithm = f"hmac-{algorithm}"
    event = AuditEvent(at=at, actor=actor, action=action, subject=subject, detail=detail,
                       prev_hash=last, hash_alg=algorithm, hash_key_id=key_id)
    event.hash = _digest(last, at.isoformat(), actor, action, subject, detail, algorithm,
                         keys.keys[key_id] if keys else None)
    session.add(event)
    session.flush()
    return event


def _distinct_tokens(tokens: Iterable[int]) -> np.ndarray:
    """Sorted distinct tokens as int64 (a review's accesses are millions of tokens: numpy)."""
    values = tokens if isinstance(tokens, np.ndarray | pd.Series | pd.Index) else list(tokens)
    return distinct(np.asarray(values, dtype=np.int64))


def subjects_digest(tokens: Iterable[int]) -> str:
    """SHA-256 over the sorted, distinct tokens (what an event's hash covers)."""
    ordered = _distinct_tokens(tokens).tolist()
    return hashlib.sha256(",".join(map(str, ordered)).encode()).hexdigest()


def record_access(session: Session, actor: str, partner: str, purpose: str,
                  tokens: Iterable[int], detail: dict[str, Any] | None = None) -> AuditEvent:
    """A data access: ``partner``'s data about the persons ``tokens``, for ``purpose``
    (``batch:<code>``, ``run:<id>``, ``export:<run>``…), by ``actor``."""
    distinct = _distinct_tokens(tokens)
    event = record(session, actor, "data.access", purpose,
                   {"partner": partner, "subjects": len(distinct),
                    "subjects_sha256": subjects_digest(distinct), **(detail or {})})
    if len(distinct):  # a review touches millions of persons: written in bulk (COPY/executemany)
        from verification.storage import bulk

        bulk.insert_frame(session.connection(), AuditSubject.__table__, pd.DataFrame(
            {"event_id": event.id, "person_token": distinct}))
    return event


def record_evidence_access(session: Session, actor: str, purpose: str, evidence: Any,
                           partners: dict[str, str]) -> list[AuditEvent]:
    """One ``data.access`` event per partner whose records were matched to persons for
    ``purpose``: ``evidence`` has ``source_kind`` and ``person_token`` columns, ``partners`` maps
    a feed kind to the partner that delivered it."""
    events = []
    by_partner: dict[str, list[np.ndarray]] = {}
    kinds: dict[str, set[str]] = {}
    for kind, group in evidence.groupby("source_kind", observed=True):
        partner = partners.get(str(kind), str(kind))
        by_partner.setdefault(partner, []).append(group["person_token"].to_numpy(np.int64))
        kinds.setdefault(partner, set()).add(str(kind))
    for partner in sorted(by_partner):
        events.append(record_access(session, actor, partner, purpose,
                                    np.concatenate(by_partner[partner]),
                                    {"feed_kinds": sorted(kinds[partner])}))
    return events


@dataclass(frozen=True)
class ChainCheck:
    events: int
    first_break: int | None  # id of the first event that does not hold (0: a recorded head lost)
    reason: str = ""
    head: str = ""  # hash of the last event: record it elsewhere to detect a cut-off tail

    @property
    def ok(self) -> bool:
        return self.first_break is None


@dataclass(frozen=True)
class Anchor:
    """A head recorded when something ended (a run), and where it was recorded."""

    head: str
    where: str


def chain_head(session: Session) -> str:
    """The hash of the last event ("" for an empty trail)."""
    return session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or ""


def append_anchor(anchor_file: Path, anchor: Anchor, run_id: int) -> None:
    """Append an anchor to the file kept beside the database (one JSON object a line)."""
    anchor_file.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"run": run_id, "head": anchor.head, "at": utcnow().isoformat()})
    with anchor_file.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def latest_anchors(session: Session, anchor_file: Path | None = None) -> list[Anchor]:
    """The latest anchors: the head the most recently finished run recorded (``runs``), and
    the last line of ``anchor_file`` (kept outside the database, so a rewrite of both tables
    still shows)."""
    from verification.storage.models import Run

    found = []
    row = session.execute(select(Run.id, Run.audit_head).where(Run.audit_head != "")
                          .order_by(Run.finished_at.desc(), Run.id.desc()).limit(1)).first()
    if row is not None:
        found.append(Anchor(row.audit_head, f"run {row.id}"))
    if anchor_file is not None and anchor_file.exists():
        lines = [ln for ln in anchor_file.read_text("utf-8").splitlines() if ln.strip()]
        if lines:
            last = json.loads(lines[-1])
            found.append(Anchor(str(last["head"]), f"{anchor_file.name} (run {last['run']})"))
    return found


def verify_chain(session: Session, expect_head: str | None = None,
                 anchors: Iterable[Anchor] = ()) -> ChainCheck:
    """Walk the chain from the first event; the first event that does not hold is reported.

    A hash chain alone cannot tell a cut-off tail, or a chain recomputed from scratch by someone
    who can write the table. Anchors close that gap: the head each run ended on
    (``latest_anchors``) and a head recorded earlier outside the database (``expect_head``;
    ``hedui audit verify`` prints it) must still be in the chain."""
    wanted = [Anchor(expect_head, "--expect-head")] if expect_head else []
    wanted += [a for a in anchors if a.head]
    missing = {a.head for a in wanted}
    prev = ""
    count = 0
    keys = audit_keys()
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).yield_per(1000):
        count += 1
        problem, key = _key_problem(event, keys)
        if problem:
            return ChainCheck(count, event.id, problem)
        expected = _digest(prev, event.at.isoformat(), event.actor, event.action, event.subject,
                           event.detail, event.hash_alg, key)
        if event.prev_hash != prev:
            return ChainCheck(count, event.id, "does not link to the event before it: an event "
                              "was deleted or inserted here")
        if event.hash != expected:
            return ChainCheck(count, event.id, "its content no longer matches its hash: the "
                              "event was altered")
        want = (event.detail or {}).get("subjects_sha256")
        if want is not None:
            tokens = session.scalars(select(AuditSubject.person_token)
                                     .where(AuditSubject.event_id == event.id))
            if subjects_digest(tokens) != want:
                return ChainCheck(count, event.id, "the persons recorded for this access were "
                                  "changed")
        prev = event.hash
        missing.discard(event.hash)
    for anchor in wanted:
        if anchor.head in missing:
            return ChainCheck(count, 0, f"the head {anchor.head} anchored by {anchor.where} is "
                              "no longer in the chain: events after it were removed, or the "
                              "chain was rewritten", prev)
    return ChainCheck(count, None, "", prev)


def _key_problem(event: AuditEvent, keys: AuditKeys | None) -> tuple[str, bytes | None]:
    """Why an event cannot be checked (or "") and the HMAC key it needs."""
    keyed = event.hash_alg.startswith("hmac-")
    if event.hash_alg.removeprefix("hmac-") not in HASH_ALGORITHMS:
        return f"unknown hash algorithm {event.hash_alg!r}", None
    if keys and not keyed and event.id >= keys.keyed_from:
        return (f"it is not keyed, yet the trail is keyed from event {keys.keyed_from}: it was "
                "rewritten by someone without the audit key"), None
    if not keyed:
        return "", None
    if keys is None or event.hash_key_id not in keys.keys:
        return (f"it is keyed with audit key {event.hash_key_id!r}, which is not configured; "
                "set HEDUI_AUDIT_KEYS to verify"), None
    return "", keys.keys[event.hash_key_id]


# ---- database guard ------------------------------------------------------------------------
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION hedui_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'hedui: % is append-only (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def install_append_only_guard(connection: Connection) -> list[str]:
    """Triggers refusing UPDATE/DELETE (and TRUNCATE on PostgreSQL) on the audit tables.

    Idempotent; called by the migration environment after every upgrade. Returns the tables
    guarded (none before the tables exist, e.g. during autogenerate)."""
    present = set(inspect(connection).get_table_names())
    tables = [t for t in APPEND_ONLY_TABLES if t in present]
    dialect = connection.dialect.name
    if tables and dialect == "postgresql":
        connection.execute(text(_PG_FUNCTION))
    for table in tables:
        if dialect == "sqlite":
            for op in ("UPDATE", "DELETE"):
                connection.execute(text(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'hedui: {table} is append-only ({op} refused)'); "
                    "END"))
        elif dialect == "postgresql":
            for name, when, level in (
                    (f"{table}_no_change", "BEFORE UPDATE OR DELETE", "ROW"),
                    (f"{table}_no_truncate", "BEFORE TRUNCATE", "STATEMENT")):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
                connection.execute(text(
                    f"CREATE TRIGGER {name} {when} ON {table} FOR EACH {level} "
                    "EXECUTE FUNCTION hedui_audit_append_only()"))
    return tables if dialect in ("sqlite", "postgresql") else []


def drop_append_only_guard(connection: Connection) -> None:
    """Remove the triggers — what a database owner could do; tests use it to show that the chain
    still exposes any change made afterwards."""
    for table in APPEND_ONLY_TABLES:
        if connection.dialect.name == "sqlite":
            for op in ("update", "delete"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        elif connection.dialect.name == "postgresql":
            for name in (f"{table}_no_change", f"{table}_no_truncate"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
