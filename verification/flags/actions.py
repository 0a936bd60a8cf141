"""What officers do with flags: list them, open one, acknowledge it, resolve it.

Every call takes the acting ``Principal`` (verification/security/access.py): officers see and act
only
within their jurisdiction, and asking for a flag outside it is refused, not silently hidden.
Acknowledgements and resolutions are written to the audit trail. Views carry masked identities
only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from verification import codes, jurisdictions
from verification.config import Settings
from verification.security import audit
from verification.security.access import AccessDenied, Principal
from verification.storage import evidence_files, session_scope
from verification.storage.models import Flag, Household, Member, Run, utcnow

RESOLUTIONS = {
    "confirmed": {"zh": "确认", "en": "Confirmed"},
    "overridden": {"zh": "不予采纳（须说明理由）", "en": "Overridden (reason required)"},
    "home_visit": {"zh": "转入户核查", "en": "Referred for a home visit"},
}


class FlagActionError(ValueError):
    pass


def _view(flag: Flag, household: Household, head: Member | None) -> dict[str, Any]:
    return {
        "id": flag.id, "run_id": flag.run_id, "kind": flag.kind,
        "kind_zh": codes.label("flags", flag.kind), "status": flag.status,
        "due_date": flag.due_date.isoformat() if flag.due_date else None,
        "household_code": household.household_code,
        "household_status": household.status,
        "street_code": flag.street_code, "street": jurisdictions.street_name(flag.street_code),
        "community_code": flag.community_code,
        "community": jurisdictions.community_name(flag.community_code),
        "head_name": head.name_masked if head else "", "head_id": head.id_masked if head else "",
        "resolution": flag.resolution, "resolution_note": flag.resolution_note,
        "resolved_by": flag.resolved_by, "carried_from_id": flag.carried_from_id,
        "evidence_digest": flag.evidence_digest,
        "reasons": [{"code": r.code, "zh": codes.label("reasons", r.code),
                     "en": codes.label("reasons", r.code, "en"), **r.detail,
                     "text_zh": codes.reason_sentence(r.code, r.detail, "zh"),
                     "text_en": codes.reason_sentence(r.code, r.detail, "en")}
                    for r in flag.reasons],
    }


def list_flags(settings: Settings, who: Principal, *, run_id: int | None = None,
               status: str | None = None, kind: str | None = None,
               street: str | None = None) -> list[dict[str, Any]]:
    """Flags within ``who``'s jurisdiction, soonest due first (latest run by default).

    ``status`` is open, acknowledged, resolved, or ``unresolved`` (open or acknowledged)."""
    who.require("flags.read")
    if street and not who.covers_street(street):
        refuse(settings, who, "flags.list", f"street:{street}",
               f"{who.username} 的辖区不含街道 {street}，不能查看该街道的核对结论 / "
               f"{who.username} serves {_served(who)}; street {street} is outside that "
               "jurisdiction")
    with session_scope(settings.database_url) as session:
        if run_id is None:
            run_id = session.scalar(select(Run.id).where(Run.status == "done")
                                    .order_by(Run.finished_at.desc()).limit(1))
        query = (select(Flag, Household).join(Household, Household.id == Flag.household_id)
                 .where(Flag.run_id == run_id))
        if status == "unresolved":  # everything still waiting for an officer
            query = query.where(Flag.status.in_(["open", "acknowledged"]))
        elif status:
            query = query.where(Flag.status == status)
        if kind:
            query = query.where(Flag.kind == kind)
        if street:
            query = query.where(Flag.street_code == street)
        if not who.district_wide:
            query = query.where(Flag.street_code.in_(who.streets)
                                | Flag.community_code.in_(who.communities))
        rows = session.execute(query.order_by(Flag.due_date.is_(None), Flag.due_date,
                                              Flag.id)).all()
        heads = _heads(session, [h.id for _, h in rows])
        return [_view(f, h, heads.get(h.id)) for f, h in rows]


def get_flag(settings: Settings, who: Principal, flag_id: int) -> dict[str, Any]:
    """One flag with its reasons and evidence; refused outside ``who``'s jurisdiction."""
    who.require("flags.read")
    with session_scope(settings.database_url) as session:
        flag, household = _load(session, who, flag_id)
        view = _view(flag, household, _heads(session, [household.id]).get(household.id))
        view["evidence"] = [{"source_kind": e.source_kind,
                             "source_zh": codes.label("feed_kinds", e.source_kind),
                             "item": e.item, "item_zh": codes.label("items", e.item),
                             "record_ref": e.record_ref, "amount": e.amount,
                             "period_start": _iso(e.period_start),
                             "period_end": _iso(e.period_end), "match_grade": e.match_grade}
                            for e in evidence_files.run_evidence(
                                session, settings.home, flag.run_id, [flag.id]).itertuples()]
        audit.record(session, who.username, "flag.viewed", f"flag:{flag_id}")
        return view


def authorise_flag(settings: Settings, who: Principal, flag_id: int, action: str) -> int:
    """The run of flag ``flag_id`` when ``who`` may read it (as ``get_flag`` decides: refused,
    and the refusal audited, outside their jurisdiction; ``FlagActionError`` if there is no such
    flag); ``action`` (e.g. ``report.viewed``) goes to the audit trail."""
    who.require("flags.read")
    with session_scope(settings.database_url) as session:
        flag, _ = _load(session, who, flag_id)
        audit.record(session, who.username, action, f"flag:{flag_id}")
        return flag.run_id


def acknowledge_flag(settings: Settings, who: Principal, flag_id: int) -> None:
    who.require("flags.resolve")
    with session_scope(settings.database_url) as session:
        flag, _ = _load(session, who, flag_id)
        if flag.status == "open":
            flag.status = "acknowledged"
            audit.record(session, who.username, "flag.acknowledged", f"flag:{flag_id}")


def resolve_flag(settings: Settings, who: Principal, flag_id: int, resolution: str,
                 note: str = "") -> None:
    """Close a flag: confirmed, overridden (a written reason is required) or home visit."""
    who.require("flags.resolve")
    if resolution not in RESOLUTIONS:
        raise FlagActionError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if resolution == "overridden" and not note.strip():
        raise FlagActionError("an override needs a written reason (减发/停发须书面说明理由)")
    with session_scope(settings.database_url) as session:
        flag, _ = _load(session, who, flag_id)
        if flag.status == "resolved":
            raise FlagActionError(f"flag {flag_id} is already resolved ({flag.resolution} by "
                                  f"{flag.resolved_by})")
        if flag.status == "superseded":
            raise FlagActionError(f"该核对结论已被动态复核的新结论取代，请办理新结论 / flag "
                                  f"{flag_id} was superseded by a re-check's new outcome: act "
                                  "on the household's current flag")
        flag.status, flag.resolution, flag.resolution_note = "resolved", resolution, note.strip()
        flag.resolved_by, flag.resolved_at = who.username, utcnow()
        audit.record(session, who.username, "flag.resolved", f"flag:{flag_id}",
                     {"resolution": resolution, "kind": flag.kind,
                      "evidence_digest": flag.evidence_digest})


def _load(session, who: Principal, flag_id: int) -> tuple[Flag, Household]:  # noqa: ANN001
    row = session.execute(select(Flag, Household).join(Household, Household.id ==
                                                        Flag.household_id)
                          .where(Flag.id == flag_id)).first()
    if row is None:
        raise FlagActionError(f"no flag {flag_id}")
    flag, household = row
    try:
        who.require_covers(flag.street_code, flag.community_code)
    except AccessDenied as err:
        # nothing of the refused request is kept, but the refusal is, whatever the caller does
        session.rollback()
        _record_refusal(session, who, "flag.open", f"flag:{flag_id}")
        session.commit()
        raise AccessDenied(f"核对结论 #{flag_id} 不在 {who.username} 的辖区内 / {err}") from None
    return flag, household


def _served(who: Principal) -> str:
    return ", ".join(sorted(who.streets | who.communities)) or "nothing"


def refuse(settings: Settings, who: Principal, action: str, subject: str, message: str) -> None:
    """Record a refused request in the audit trail (in its own transaction, so the refusal
    stays recorded although the request fails) and raise ``AccessDenied`` with ``message``."""
    with session_scope(settings.database_url) as session:
        _record_refusal(session, who, action, subject)
    raise AccessDenied(message)


def _record_refusal(session, who: Principal, action: str, subject: str) -> None:  # noqa: ANN001
    audit.record(session, who.username, "access.refused", subject,
                 {"request": action, "role": who.role})


def _heads(session, household_ids: list[int]) -> dict[int, Member]:  # noqa: ANN001
    if not household_ids:
        return {}
    members = session.scalars(select(Member).where(Member.household_id.in_(household_ids),
                                                   Member.relation == "户主"))
    return {m.household_id: m for m in members}


# For listings that page in SQL (verification/portal/views.py): the same view of a flag.
flag_view = _view
household_heads = _heads


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


# ---- carrying officers' work from one run to the next -----------------------------------------
@dataclass(frozen=True)
class EarlierOutcome:
    """What an officer did with a flag: carried to the next run's flag on the same evidence."""

    flag_id: int
    run_id: int
    status: str
    resolution: str
    note: str
    resolved_by: str
    resolved_at: dt.datetime | None
    origin_id: int | None  # the flag an officer actually acted on


def earlier_outcomes(session, run_id: int) -> dict[tuple[int, str], EarlierOutcome]:  # noqa: ANN001
    """(household, evidence digest) → the latest acknowledged or resolved flag, from any run.

    Read before a run's flags are replaced, so a rerun keeps its own resolutions too; a flag of
    the run itself wins over earlier runs'."""
    rows = session.execute(
        select(Flag.id, Flag.run_id, Flag.household_id, Flag.evidence_digest, Flag.status,
               Flag.resolution, Flag.resolution_note, Flag.resolved_by, Flag.resolved_at,
               Flag.carried_from_id)
        .where(Flag.status != "open").order_by(Flag.id)).all()
    found: dict[tuple[int, str], EarlierOutcome] = {}
    for r in rows:
        key = (r.household_id, r.evidence_digest)
        if key in found and found[key].run_id == run_id and r.run_id != run_id:
            continue
        own = r.run_id == run_id
        found[key] = EarlierOutcome(r.id, r.run_id, r.status, r.resolution, r.resolution_note,
                                    r.resolved_by, r.resolved_at,
                                    r.carried_from_id if own else (r.carried_from_id or r.id))
    return found


def carry_forward(session, run_id: int,  # noqa: ANN001
                  earlier: dict[tuple[int, str], EarlierOutcome]) -> int:
    """Give this run's flags the outcome of an earlier flag on the same evidence.

    Each run keeps one flag per household; a flag already resolved on the same records comes
    back resolved (with a note saying so) instead of asking the officer again. New evidence
    means a new digest, so the flag is open again. Returns how many flags were carried."""
    fresh = session.execute(select(Flag.id, Flag.household_id, Flag.evidence_digest)
                            .where(Flag.run_id == run_id)).all()
    updates, pairs = [], []
    for flag_id, household_id, digest in fresh:
        before = earlier.get((household_id, digest))
        if before is None:
            continue
        note = before.note if before.run_id == run_id else (
            f"沿用运行 {before.run_id} 的处理结果（证据未变）/ carried from run {before.run_id}, "
            f"same evidence" + (f": {before.note}" if before.note else ""))
        updates.append({"id": flag_id, "status": before.status,
                        "resolution": before.resolution, "resolution_note": note,
                        "resolved_by": before.resolved_by, "resolved_at": before.resolved_at,
                        "carried_from_id": before.origin_id})
        pairs.append([flag_id, before.origin_id])
    if updates:
        session.execute(update(Flag), updates)
        audit.record(session, "pipeline", "flag.carried_forward", f"run:{run_id}",
                     {"flags": pairs})
    return len(updates)


def keep_first_due_dates(session, run: Run) -> int:  # noqa: ANN001
    """A flag a review raises again (same household, same kind) while the previous review's is
    still unresolved keeps that flag's due date: the date is counted from the day the flag was
    first raised, so a flag nobody acts on becomes overdue instead of moving on each month.

    Only the previous finished review counts (every household it assessed has a flag there,
    KEEP included), so a flag that went away in between starts afresh. A stricter date the new
    run set (a death's re-check) stays. Batch checks are one-off and keep their own dates.
    One statement; returns how many flags kept an earlier date."""
    if run.kind != "review":
        return 0
    previous = session.scalar(
        select(Run.id).where(Run.kind == "review", Run.status == "done", Run.id < run.id,
                             Run.as_of <= run.as_of)
        .order_by(Run.as_of.desc(), Run.id.desc()).limit(1))
    if previous is None:
        return 0
    earlier = aliased(Flag)
    first = (select(earlier.household_id, earlier.kind, earlier.due_date)
             .where(earlier.run_id == previous, earlier.status != "resolved",
                    earlier.kind.not_in(codes.no_action_kinds()),
                    earlier.due_date.is_not(None)).subquery())
    result = session.execute(
        update(Flag).where(Flag.run_id == run.id, Flag.household_id == first.c.household_id,
                           Flag.kind == first.c.kind, Flag.due_date > first.c.due_date)
        .values(due_date=first.c.due_date).execution_options(synchronize_session=False))
    return result.rowcount or 0
