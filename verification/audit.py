"""Append-only audit trail, hash-chained: each event's hash covers its content and the previous
event's hash, so changing or deleting any event breaks every hash after it. Details never carry
raw personal data — only tokens, ids, counts and codes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from verification.storage.models import AuditEvent, utcnow


def _digest(prev: str, at: str, actor: str, action: str, subject: str, detail: dict) -> str:
    body = json.dumps([prev, at, actor, action, subject, detail], ensure_ascii=False,
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def record(session: Session, actor: str, action: str, subject: str = "",
           detail: dict[str, Any] | None = None) -> AuditEvent:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        # One writer at a time extends the chain (SQLite serialises writers by itself).
        from sqlalchemy import text

        session.execute(text("SELECT pg_advisory_xact_lock(4242)"))
    last = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or ""
    at = utcnow()
    detail = json.loads(json.dumps(detail or {}, default=str))
    event = AuditEvent(at=at, actor=actor, action=action, subject=subject, detail=detail,
                       prev_hash=last)
    event.hash = _digest(last, at.isoformat(), actor, action, subject, detail)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainCheck:
    events: int
    first_break: int | None  # id of the first event whose hash does not hold

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify_chain(session: Session) -> ChainCheck:
    prev = ""
    count = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        count += 1
        expected = _digest(prev, event.at.isoformat(), event.actor, event.action, event.subject,
                           event.detail)
        if event.prev_hash != prev or event.hash != expected:
            return ChainCheck(count, event.id)
        prev = event.hash
    return ChainCheck(count, None)
