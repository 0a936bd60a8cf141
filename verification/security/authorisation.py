"""Authorisations (授权书): no authorisation, no query.

Every member whose data a check would obtain must have signed an authorisation naming the
departments it may be obtained from. One is valid on a date when it was signed on or before that
date, has not expired (an authorisation without an expiry date stays valid while the household
is assisted, applying or monitored — 在保/监测期间持续有效), and its scope covers the partner or
feed kind asked (``all``, or a list of partner codes and feed kinds separated by ``,``/``;``).

``require_authorised`` refuses a check as a whole, naming every member concerned (masked) and
why; a batch check calls it before any evidence is gathered. ``query_references`` is what a
query-list transport calls before it sends a partner a list of persons: it returns, per person
token, the reference of the authorisation the query relies on (to be sent with the query), and
records the access in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from verification.config import Settings
from verification.security import audit
from verification.storage import bulk, session_scope
from verification.storage.models import Authorisation, Household, Member

ONGOING_STATUSES = frozenset({"recipient", "applicant", "monitored"})
_SCOPE_SPLIT = re.compile(r"[,;，；\s]+")


@dataclass(frozen=True)
class MemberStatus:
    """One member and the authorisation a query about them would rely on (or why none)."""

    member_id: int
    household_code: str
    person_token: int
    name_masked: str
    id_masked: str
    reference: str  # "" when there is no valid authorisation
    problem: str  # "" when authorised

    @property
    def ok(self) -> bool:
        return not self.problem

    def describe(self) -> str:
        return f"{self.household_code} {self.name_masked} ({self.id_masked}): {self.problem}"


class NotAuthorised(PermissionError):
    """Some members lack a valid authorisation; ``members`` lists them (masked)."""

    def __init__(self, members: Sequence[MemberStatus], what: str) -> None:
        self.members = list(members)
        shown = "; ".join(m.describe() for m in self.members[:20])
        more = f"; and {len(self.members) - 20} more" if len(self.members) > 20 else ""
        super().__init__(
            f"{what} refused: {len(self.members)} member(s) have no valid authorisation (授权书) "
            f"— {shown}{more}. Obtain a signed authorisation from each and submit it with the "
            "batch.")


def scope_covers(scope: str, partner: str | None, feed_kind: str | None) -> bool:
    """Whether an authorisation's scope names the partner or feed kind asked (or is ``all``)."""
    items = {s.lower() for s in _SCOPE_SPLIT.split(scope or "") if s}
    if "all" in items or "*" in items:
        return True
    asked = {x.lower() for x in (partner, feed_kind) if x}
    return bool(asked) and bool(asked & items)


def problem_with(auth: Authorisation, household_status: str, as_of: dt.date,
                 partner: str | None, feed_kind: str | None) -> str:
    """"" if ``auth`` is valid for this query on ``as_of``, else the reason in plain words."""
    if auth.signed_on > as_of:
        return f"authorisation {auth.reference} is dated {auth.signed_on}, after {as_of}"
    if auth.expires_on is not None and auth.expires_on < as_of:
        return f"authorisation {auth.reference} expired on {auth.expires_on}"
    if auth.expires_on is None and household_status not in ONGOING_STATUSES:
        return (f"authorisation {auth.reference} was valid while the household was assisted or "
                f"monitored; its status is now {household_status}")
    if not scope_covers(auth.scope, partner, feed_kind):
        asked = " / ".join(x for x in (partner, feed_kind) if x)
        return f"authorisation {auth.reference} does not cover {asked} (scope: {auth.scope})"
    return ""


def member_statuses(session: Session, household_ids: Iterable[int], as_of: dt.date, *,
                    partner: str | None = None,
                    feed_kind: str | None = None) -> list[MemberStatus]:
    """Every member of the households, with the authorisation that covers them or the reason."""
    members, auths = _members_and_authorisations(session, household_ids)
    return [_status(m, auths.get(m.id, []), as_of, partner, feed_kind) for m in members]


def _members_and_authorisations(session: Session, household_ids: Iterable[int]):  # noqa: ANN202
    """The members of the households (rows, in household code order) and their authorisations
    by member id, read as plain rows: a batch of 20,000 members asked about 17 kinds would
    otherwise build three quarters of a million ORM objects."""
    ids = sorted({int(h) for h in household_ids})
    if not ids:
        return [], {}
    query = (select(Member.id, Member.person_token, Member.name_masked, Member.id_masked,
                    Household.household_code, Household.status)
             .join(Household, Household.id == Member.household_id))
    members = sorted((row for chunk in bulk.in_chunks(ids)
                      for row in session.execute(query.where(Member.household_id.in_(chunk)))),
                     key=lambda m: (m.household_code, m.id))
    auths: dict[int, list] = {}
    for chunk in bulk.in_chunks(m.id for m in members):
        for auth in session.execute(select(
                Authorisation.id, Authorisation.member_id, Authorisation.reference,
                Authorisation.signed_on, Authorisation.expires_on, Authorisation.scope)
                .where(Authorisation.member_id.in_(chunk))):
            auths.setdefault(auth.member_id, []).append(auth)
    for found in auths.values():  # newest first: the most recent signature is relied on
        found.sort(key=lambda a: (a.signed_on, a.id), reverse=True)
    return members, auths


def _status(member, auths: list, as_of: dt.date,  # noqa: ANN001 (a row of the query above)
            partner: str | None, feed_kind: str | None) -> MemberStatus:
    problem, reference = "no authorisation on file", ""
    for auth in auths:
        found = problem_with(auth, member.status, as_of, partner, feed_kind)
        if not found:
            problem, reference = "", auth.reference
            break
        if problem == "no authorisation on file":
            problem = found
    return MemberStatus(member.id, member.household_code, int(member.person_token),
                        member.name_masked, member.id_masked, reference, problem)


def require_authorised(settings: Settings, household_ids: Iterable[int], as_of: dt.date, *,
                       what: str = "the check", partner: str | None = None,
                       feed_kind: str | None = None,
                       asks: Sequence[tuple[str | None, str | None]] | None = None
                       ) -> dict[int, str]:
    """Member id → authorisation reference for every member; raises ``NotAuthorised`` naming
    every member without a valid one (nothing is queried then). ``asks``: several (partner,
    feed kind) at once, the members read once — the first refused ask raises; the references
    returned are those of the last ask (none asked: none checked, ``{}``)."""
    with session_scope(settings.database_url) as session:
        members, auths = _members_and_authorisations(session, household_ids)
    references: dict[int, str] = {}
    for asked_partner, asked_kind in [(partner, feed_kind)] if asks is None else asks:
        statuses = [_status(m, auths.get(m.id, []), as_of, asked_partner, asked_kind)
                    for m in members]
        missing = [s for s in statuses if not s.ok]
        if missing:
            raise NotAuthorised(missing, what)
        references = {s.member_id: s.reference for s in statuses}
    return references


def query_references(settings: Settings, partner: str, feed_kind: str,
                     person_tokens: Iterable[int], as_of: dt.date, *, purpose: str,
                     actor: str) -> dict[int, str]:
    """Person token → the authorisation reference a query to ``partner`` relies on.

    Refuses (``NotAuthorised``) if any person lacks a valid authorisation covering the partner
    or feed kind, or is not a member of any household on file; on success records the access
    (partner, persons by token, purpose such as ``batch:<code>``, actor) in the audit trail.
    """
    tokens = sorted({int(t) for t in person_tokens})
    with session_scope(settings.database_url) as session:
        household_ids = set()
        for chunk in bulk.in_chunks(tokens):
            household_ids.update(session.scalars(select(Member.household_id).where(
                Member.person_token.in_(chunk))))
        wanted = set(tokens)
        statuses = [s for s in member_statuses(session, household_ids, as_of, partner=partner,
                                               feed_kind=feed_kind)
                    if s.person_token in wanted]
        by_token: dict[int, str] = {}
        for s in statuses:
            if s.ok:
                by_token.setdefault(s.person_token, s.reference)
        missing = [s for s in statuses if not s.ok and s.person_token not in by_token]
        known = {s.person_token for s in statuses}
        unknown = [t for t in tokens if t not in known]
        if missing or unknown:
            extra = [MemberStatus(0, "-", t, "-", "-", "", "not a member of any household on "
                                  "file") for t in unknown]
            raise NotAuthorised([*missing, *extra], f"query to {partner} ({feed_kind})")
        audit.record_access(session, actor, partner, purpose, tokens,
                            {"feed_kind": feed_kind, "as_of": as_of.isoformat(),
                             "authorisations": len(set(by_token.values()))})
    return by_token
