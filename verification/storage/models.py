"""The operational state of hedui. Personal fields are stored only encrypted (``*_enc``) or masked;
joins use ``person_token``. Every table that a rerun could fill twice has a natural unique key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Partner(Base):
    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    feeds: Mapped[list[Feed]] = relationship(back_populates="partner")


class Feed(Base):
    """One delivery from a partner, with provenance and reconciled row counts."""

    __tablename__ = "feeds"
    __table_args__ = (UniqueConstraint("partner_id", "kind", "sequence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    period: Mapped[str] = mapped_column(String(20))
    sequence: Mapped[int] = mapped_column(Integer)
    schema_version: Mapped[str] = mapped_column(String(20), default="")
    envelope_sha256: Mapped[str] = mapped_column(String(64))
    plaintext_digest: Mapped[str] = mapped_column(String(80), default="")
    sender_key_id: Mapped[str] = mapped_column(String(80), default="")
    rows_received: Mapped[int] = mapped_column(Integer, default=0)
    rows_accepted: Mapped[int] = mapped_column(Integer, default=0)
    rows_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    # of rows_accepted: rows whose ID number was unusable (typo, missing), token <NA>, matched
    # by name and birth date at best probable (never a REMOVE)
    rows_identity_unresolved: Mapped[int] = mapped_column(Integer, default=0)
    # received (registered, not yet taken in: a crash leaves it so, and the next pull or
    # housekeeping takes it in again) → accepted | rejected (verification/intake.py)
    status: Mapped[str] = mapped_column(String(20), default="received")
    reason: Mapped[str] = mapped_column(Text, default="")
    raw_path: Mapped[str] = mapped_column(Text, default="")
    staged_path: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # When retention removed the raw and staged files (verification/security/retention.py); None:
    # kept.
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # When the partner acknowledged our receipt for the current outcome; None: still to send
    # (the next pull sends it before anything else).
    receipt_sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    partner: Mapped[Partner] = relationship(back_populates="feeds")


class QuarantinedRow(Base):
    """A row that failed validation: where it was and why. The value itself stays only in the
    encrypted feed as received (feeds.raw_path), so nothing is lost and nothing leaks."""

    __tablename__ = "quarantined_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text)


class Household(Base):
    __tablename__ = "households"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_code: Mapped[str] = mapped_column(String(40), unique=True)
    area_code: Mapped[str] = mapped_column(String(6))
    street_code: Mapped[str] = mapped_column(String(9), index=True)
    community_code: Mapped[str] = mapped_column(String(12), index=True)
    status: Mapped[str] = mapped_column(String(20))  # recipient | applicant | monitored
    category: Mapped[str] = mapped_column(String(20), default="none")
    urban_rural: Mapped[str] = mapped_column(String(10), default="urban")
    current_benefit: Mapped[float] = mapped_column(Float, default=0.0)
    # the household's address, encrypted like members' names (None: the file gave none)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    members: Mapped[list[Member]] = relationship(
        back_populates="household", cascade="all, delete-orphan"
    )


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("household_id", "person_token"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    person_token: Mapped[int] = mapped_column(BigInteger, index=True)
    token_key_id: Mapped[str] = mapped_column(String(40))
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    id_masked: Mapped[str] = mapped_column(String(18))
    name_masked: Mapped[str] = mapped_column(String(20))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, default=None)
    birth_date: Mapped[dt.date] = mapped_column(Date)
    gender: Mapped[str] = mapped_column(String(1))
    relation: Mapped[str] = mapped_column(String(10))
    exclusion: Mapped[str] = mapped_column(String(20), default="")
    disability_grade: Mapped[int] = mapped_column(Integer, default=0)
    disability_type: Mapped[str] = mapped_column(String(20), default="")
    labour_capacity: Mapped[bool] = mapped_column(Boolean, default=True)
    household: Mapped[Household] = relationship(back_populates="members")


class Authorisation(Base):
    """A signed 授权书 for one member: no authorisation, no query."""

    __tablename__ = "authorisations"
    __table_args__ = (UniqueConstraint("member_id", "reference"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(60))
    signed_on: Mapped[dt.date] = mapped_column(Date)
    scope: Mapped[str] = mapped_column(Text, default="all")
    expires_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # None: while assisted
    # The batch (or caseload file) the authorisation was submitted with; None for older rows.
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), nullable=True)


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_code: Mapped[str] = mapped_column(String(40), unique=True)
    requester: Mapped[str] = mapped_column(String(100), default="")
    category: Mapped[str] = mapped_column(String(20), default="dibao")
    file_name: Mapped[str] = mapped_column(Text, default="")
    file_sha256: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(20), default="received")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # where the batch is: the stored copy, its stage and a timestamped log of every stage
    notes: Mapped[str] = mapped_column(Text, default="")
    stored_path: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(40), default="received")
    progress: Mapped[list[Any]] = mapped_column(JSON, default=list)
    households: Mapped[int] = mapped_column(Integer, default=0)
    dag_run_id: Mapped[str] = mapped_column(String(250), default="")
    reports_dir: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Run(Base):
    """One review or batch check; names the exact feed versions and policy version it used."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="review")
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), nullable=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    region: Mapped[str] = mapped_column(String(6))
    policy_version: Mapped[str] = mapped_column(String(80), default="")
    feed_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running")
    stage: Mapped[str] = mapped_column(String(40), default="")
    households: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reports_dir: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The audit chain's head when the run finished: an anchor `hedui audit verify` checks, so
    # a cut-off tail of the trail shows (verification/security/audit.py).
    audit_head: Mapped[str] = mapped_column(String(128), default="")
    # The evidence of the run's flags, one Parquet file (storage/evidence_files.py): its path
    # under $HEDUI_HOME, SHA-256 and row count. Empty for runs finished before revision 0005,
    # whose evidence is in ``flag_evidence``.
    evidence_file: Mapped[str] = mapped_column(Text, default="")
    evidence_digest: Mapped[str] = mapped_column(String(64), default="")
    evidence_rows: Mapped[int] = mapped_column(Integer, default=0)


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (UniqueConstraint("run_id", "household_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    benefit: Mapped[float] = mapped_column(Float, default=0.0)
    household_size: Mapped[int] = mapped_column(Integer, default=0)
    per_capita_income: Mapped[float] = mapped_column(Float, default=0.0)
    financial_assets_per_capita: Mapped[float] = mapped_column(Float, default=0.0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (
        UniqueConstraint("run_id", "household_id"),
        Index("ix_flags_jurisdiction", "street_code", "community_code"),
        # the same household and evidence across runs: carrying resolutions, ageing open flags
        Index("ix_flags_household_digest", "household_id", "evidence_digest"),
        # the inbox's orders off an index holding every column it filters on (migration 0004)
        Index("ix_flags_due_order", text("(due_date IS NULL)"), "due_date", "id", "status",
              "kind", "run_id", "street_code", "community_code"),
        Index("ix_flags_raised_order", "created_at", "id", "status", "kind", "run_id",
              "street_code", "community_code", "due_date"),
        Index("ix_flags_household_order", "household_code", "id", "status", "kind", "run_id",
              "street_code", "community_code", "due_date"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"))
    # the household's code (it never changes for an id): the inbox's code order without a join
    household_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    street_code: Mapped[str] = mapped_column(String(9))
    community_code: Mapped[str] = mapped_column(String(12))
    due_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    evidence_digest: Mapped[str] = mapped_column(String(64), default="")
    policy_version: Mapped[str] = mapped_column(String(80), default="")
    # open | acknowledged | resolved | superseded (a later re-check replaced it: DONE_STATES)
    status: Mapped[str] = mapped_column(String(20), default="open")
    resolution: Mapped[str] = mapped_column(String(20), default="")
    resolution_note: Mapped[str] = mapped_column(Text, default="")
    resolved_by: Mapped[str] = mapped_column(String(60), default="")
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The earlier flag whose resolution this one carries (same household, kind and evidence
    # digest): no foreign key, so replacing or deleting the earlier run leaves this row intact.
    carried_from_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    reasons: Mapped[list[FlagReason]] = relationship(cascade="all, delete-orphan")
    evidence: Mapped[list[FlagEvidence]] = relationship(cascade="all, delete-orphan")


class FlagCount(Base):
    """How many flags a run has per (resolved, kind, street, community, due date): the inbox's
    counts beside each filter, summed from here instead of counted over every flag. Kept by
    triggers on ``flags`` (migration 0004), never written by the application."""

    __tablename__ = "flag_counts"
    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resolved: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    street_code: Mapped[str] = mapped_column(String(9), primary_key=True)
    community_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    due_key: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # NO_DUE_KEY: none
    n: Mapped[int] = mapped_column(Integer)


NO_DUE_KEY = dt.date(9999, 12, 31)
# A flag needs nothing more from an officer once resolved, or once a re-check replaced it with
# the household's new outcome (``superseded``); flag_counts' ``resolved`` is "in these states"
# (migration 0004 states them again: a migration does not import the models).
DONE_STATES = ("resolved", "superseded")


class FlagReason(Base):
    __tablename__ = "flag_reasons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FlagEvidence(Base):
    __tablename__ = "flag_evidence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"), index=True)
    source_kind: Mapped[str] = mapped_column(String(40))
    feed_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    record_ref: Mapped[str] = mapped_column(String(80))
    item: Mapped[str] = mapped_column(String(40))
    amount: Mapped[float] = mapped_column(Float, default=0.0)
    period_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    period_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    match_grade: Mapped[str] = mapped_column(String(20), default="certain")


class AuditEvent(Base):
    """Append-only, hash-chained: each row's hash covers its content and the previous hash."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str] = mapped_column(String(120), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), default="")
    hash: Mapped[str] = mapped_column(String(64), default="")
    # sha256 | sm3 | hmac-sha256 | hmac-sm3 (keyed: hash_key_id names the HEDUI_AUDIT_KEYS key)
    hash_alg: Mapped[str] = mapped_column(String(16), default="sha256", server_default="sha256")
    hash_key_id: Mapped[str] = mapped_column(String(40), default="", server_default="")


class AuditSubject(Base):
    """The persons (by keyed token only) a data-access event concerned; the event's hash covers
    their digest, so adding or removing one breaks the chain. Append-only like the events."""

    __tablename__ = "audit_subjects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("audit_events.id"), index=True)
    person_token: Mapped[int] = mapped_column(BigInteger, index=True)
