"""What the portal's pages show, read from the application database (no Airflow import here).

Each function takes the acting ``Principal`` where the answer depends on who asks: officers get
their own jurisdiction only, partner accounts their own feeds. Flag listings and actions go
through verification/flag_actions.py (jurisdiction checks and audit live there); this module
only summarises. Names and ID numbers appear masked, as stored.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from croniter import croniter
from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from connectors.registry import load_partners
from verification import codes, jurisdictions
from verification.batches import check as batches
from verification.config import Settings
from verification.localtime import LOCAL_TZ, to_local  # noqa: F401 (to_local: the pages')
from verification.security.access import Principal
from verification.storage import session_scope
from verification.storage.models import (
    DONE_STATES,
    NO_DUE_KEY,
    Assessment,
    Batch,
    Feed,
    Flag,
    FlagCount,
    Household,
    Partner,
    QuarantinedRow,
    Run,
)

FLAG_ORDER = ("REMOVE", "REVIEW", "ADD", "REJECT", "GRADUAL_EXIT", "ADJUST", "KEEP")
# The stages a batch passes in order (verification/batches.py), as the progress bar shows them.
BATCH_STEPS = ("received", "validated", "loaded", "evidence", "assessed", "reported")
AGEING_BUCKETS = ("overdue", "due_week", "due_later", "no_due")
OPEN_FOR_BUCKETS = ("d0_7", "d8_30", "d31_60", "d61")


def _scoped(query, who: Principal):  # noqa: ANN001, ANN202 (SQLAlchemy Select in and out)
    if who.district_wide:
        return query
    return query.where(Flag.street_code.in_(who.streets)
                       | Flag.community_code.in_(who.communities))


def latest_run(settings: Settings, kind: str = "review") -> Run | None:
    with session_scope(settings.database_url) as session:
        run = session.scalar(select(Run).where(Run.status == "done", Run.kind == kind)
                             .order_by(Run.finished_at.desc(), Run.id.desc()).limit(1))
        if run is not None:
            session.expunge(run)
        return run


# ---- officer inbox -----------------------------------------------------------------------------
PAGE_SIZE = 50
DUE_FILTERS = ("overdue", "week", "later", "none")
INBOX_SORTS = ("due", "-due", "household", "-raised")


@dataclass(frozen=True)
class FlagFilter:
    """What an officer asked the inbox (or a batch's results) for: every field is optional; the
    database does the filtering, counting and paging (nothing loads every flag)."""

    status: str = "open"  # open (not resolved) | done (resolved)
    kind: str = ""
    street: str = ""
    community: str = ""
    due: str = ""  # one of DUE_FILTERS
    q: str = ""  # part of a household code
    sort: str = "due"
    page: int = 1

    @classmethod
    def clean(cls, **given: Any) -> FlagFilter:
        """Drop what is not a known value instead of failing on a hand-edited address."""
        kind = given.get("kind") or ""
        due = given.get("due") or ""
        sort = given.get("sort") or "due"
        q = "".join(ch for ch in str(given.get("q") or "") if ch.isalnum() or ch in "-_")[:40]
        try:
            page = max(1, min(int(given.get("page") or 1), 100_000))
        except ValueError:
            page = 1
        return cls(status="done" if given.get("status") == "done" else "open",
                   kind=kind if kind in FLAG_ORDER else "",
                   street=str(given.get("street") or "")[:9],
                   community=str(given.get("community") or "")[:12],
                   due=due if due in DUE_FILTERS else "", q=q,
                   sort=sort if sort in INBOX_SORTS else "due", page=page)

    def link(self, **change: Any) -> str:
        """The query string of this filter with ``change`` applied (back to page 1 unless a
        page is given)."""
        values = {**self.__dict__, "page": 1, **change}
        keep = {k: v for k, v in values.items()
                if v not in ("", None) and not (k == "page" and v == 1)
                and not (k == "sort" and v == "due") and not (k == "status" and v == "open")}
        return "?" + urlencode(keep)


def _inbox_runs(session, review_id: int | None) -> list[int]:  # noqa: ANN001
    """The runs whose flags an officer works on: the latest review's, the re-checks since it
    and every finished batch check's (a short list of ids, so the flag queries below carry no
    run subquery). A re-check that changed a household's outcome marks the flag it replaced
    ``superseded`` (docs/architecture.md, "The incremental path"), so each household shows its
    current flag."""
    runs = session.scalars(select(Run.id).where(Run.status == "done", Run.kind == "batch")).all()
    if review_id is None:
        return sorted(runs)
    rechecks = session.scalars(select(Run.id).where(
        Run.status == "done", Run.kind == "recheck", Run.id > review_id)).all()
    return sorted({*runs, review_id, *rechecks})


def _inbox_scope(table: Any, runs: list[int], who: Principal, q: str = "",
                 dialect: str = "") -> list[Any]:
    """Conditions for the flags an officer works on (``table``: Flag, or FlagCount for their
    counts): the given runs', never KEEP (nothing to do), within ``who``'s jurisdiction,
    matching the household-code search ``q``."""
    # "+ 0" on SQLite: its planner would otherwise page through ix_flags_run_id and sort every
    # flag of the runs instead of reading the page off the ordered index (ix_flags_due_order).
    # PostgreSQL's planner weighs both from its statistics, which "+ 0" would blind.
    run = table.run_id + 0 if dialect == "sqlite" else table.run_id
    found = [run.in_(runs), table.kind.not_in(codes.no_action_kinds())]
    if not who.district_wide:
        found.append(table.street_code.in_(who.streets)
                     | table.community_code.in_(who.communities))
    if q:
        found.append(Flag.household_id.in_(select(Household.id).where(
            Household.household_code.contains(q, autoescape=True))))
    return found


def _filters(want: FlagFilter, today: dt.date) -> list[Any]:
    found = [Flag.status.in_(DONE_STATES) if want.status == "done"
             else Flag.status.not_in(DONE_STATES)]
    if want.kind:
        found.append(Flag.kind == want.kind)
    if want.street:
        found.append(Flag.street_code == want.street)
    if want.community:
        found.append(Flag.community_code == want.community)
    if want.due:
        week = today + dt.timedelta(days=7)
        found.append({"overdue": Flag.due_date < today,
                      "week": Flag.due_date.between(today, week),
                      "later": Flag.due_date > week,
                      "none": Flag.due_date.is_(None)}[want.due])
    return found


def _due_bucket(due: Any, today: dt.date, none: Any = None):  # noqa: ANN202 (SQL expression)
    """The due filter a due date falls in (``none``: the value that stands for no date)."""
    missing = due.is_(None) if none is None else (due == none)
    return case((missing, "none"), (due < today, "overdue"),
                (due <= today + dt.timedelta(days=7), "week"), else_="later")


def _flag_groups(session, runs: list[int], who: Principal, q: str,  # noqa: ANN001
                 today: dt.date) -> list[Any]:
    """(resolved, kind, due bucket, street, community, n) over the inbox's flags. Without a
    search these are sums over flag_counts (a few thousand rows kept by triggers), not a count
    of every flag; a search narrows to a few households, so its flags are counted directly."""
    if q:
        keys = (Flag.status.in_(DONE_STATES), Flag.kind, _due_bucket(Flag.due_date, today),
                Flag.street_code, Flag.community_code)
        return session.execute(select(*keys, func.count())
                               .where(*_inbox_scope(Flag, runs, who, q)).group_by(*keys)).all()
    keys = (FlagCount.resolved, FlagCount.kind,
            _due_bucket(FlagCount.due_key, today, NO_DUE_KEY), FlagCount.street_code,
            FlagCount.community_code)
    return session.execute(select(*keys, func.sum(FlagCount.n))
                           .where(*_inbox_scope(FlagCount, runs, who))
                           .group_by(*keys).having(func.sum(FlagCount.n) > 0)).all()


def inbox_page(settings: Settings, who: Principal, want: FlagFilter, today: dt.date,
               page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of the inbox with its total and the counts beside each filter.

    A fixed number of queries whatever the caseload: the runs, one grouped sum (every filter's
    counts and the total come from it), the page's ids (``page_size`` of them, read off an
    ordered index; a page past the middle is read from the other end, so the deepest page
    skips no more index entries than the middle one), those flags, their heads and reasons."""
    from verification.flags import actions as flag_actions

    who.require("flags.read")
    review = latest_run(settings)
    with session_scope(settings.database_url) as session:
        runs = _inbox_runs(session, review.id if review else None)
        counts, total = _filter_counts(_flag_groups(session, runs, who, want.q, today), want)
        pages = max(1, -(-total // page_size))
        page = min(want.page, pages)
        dialect = session.get_bind().dialect.name
        ids = select(Flag.id).where(*_inbox_scope(Flag, runs, who, want.q, dialect),
                                    *_filters(want, today))
        skip = (page - 1) * page_size
        from_end = total - skip - page_size  # rows after this page
        if 0 <= from_end < skip:
            page_ids = session.scalars(ids.order_by(*_inbox_order(want.sort, reverse=True))
                                       .limit(page_size).offset(from_end)).all()[::-1]
        else:
            page_ids = session.scalars(ids.order_by(*_inbox_order(want.sort))
                                       .limit(page_size).offset(skip)).all()
        rows = session.execute(
            select(Flag, Household, Run.kind, Run.as_of, Batch.batch_code)
            .join(Household, Household.id == Flag.household_id)
            .join(Run, Run.id == Flag.run_id).join(Batch, Batch.id == Run.batch_id, isouter=True)
            .where(Flag.id.in_(page_ids)).options(selectinload(Flag.reasons))).all()
        rows.sort(key=lambda row: page_ids.index(row[0].id))
        heads = flag_actions.household_heads(session, [h.id for _, h, *_ in rows])
        flags = [{**flag_actions.flag_view(f, h, heads.get(h.id)), "run_kind": run_kind,
                  "run_label": code or (f"{as_of:%Y-%m}" if run_kind == "review" else
                                        str(f.run_id)),
                  "raised_at": f.created_at}
                 for f, h, run_kind, as_of, code in rows]
    return {"flags": flags, "total": total, "page": page, "pages": pages,
            "page_size": page_size, "counts": counts,
            "first": (page - 1) * page_size + 1 if total else 0,
            "last": (page - 1) * page_size + len(flags)}


def _inbox_order(sort: str, reverse: bool = False) -> list[Any]:
    """The inbox's orders; each is the exact reverse of its opposite ("-due" lists the flags
    without a due date first), so one index serves both directions."""
    if sort.startswith("-"):
        sort, reverse = sort[1:], not reverse
    keys = {"due": [Flag.due_date.is_(None), Flag.due_date, Flag.id],
            "household": [Flag.household_code, Flag.id],
            "raised": [Flag.created_at, Flag.id]}[sort]
    return [key.desc() for key in keys] if reverse else keys


def _filter_counts(groups: list[Any], want: FlagFilter
                   ) -> tuple[dict[str, dict[Any, int]], int]:
    """From (resolved, kind, due bucket, street, community, n) rows: how many flags each value
    of each filter would show with the other filters kept, and the total the filter shows."""
    chosen = {"status": want.status, "kind": want.kind, "due": want.due,
              "street": want.street, "community": want.community}
    counts: dict[str, dict[Any, int]] = {"status": {"open": 0, "done": 0}, "kind": {},
                                         "due": {}, "street": {}}
    total = 0
    for resolved, kind, due, street, community, n in groups:
        values = {"status": "done" if resolved else "open", "kind": kind, "due": due,
                  "street": street, "community": community}
        misses = {k for k, v in chosen.items() if v and values[k] != v}
        if not misses:
            total += n
        for dimension in ("status", "kind", "due", "street"):
            others = misses - {dimension} - ({"community"} if dimension == "street" else set())
            if not others:
                bucket = counts[dimension]
                bucket[values[dimension]] = bucket.get(values[dimension], 0) + n
    counts["street"] = dict(sorted(counts["street"].items()))
    return counts, total


def batch_results_page(settings: Settings, run_id: int, want: FlagFilter,
                       page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """One page of a batch check's results (every decision, KEEP included), household code
    order, with the count of each decision; paged and counted in SQL."""
    from verification.flags import actions as flag_actions
    from verification.reports.flag_reports import reason_text

    # The run's flags with their household codes (a batch's size), searched by code within
    # the run, not over every household of the district. MATERIALIZED: PostgreSQL would
    # otherwise walk every household in code order probing for the batch's (its plan for a
    # LIMIT). The page's ids come from here, then those rows with their assessments.
    query = (select(Flag.id, Flag.kind, Household.household_code)
             .join(Household, Household.id == Flag.household_id).where(Flag.run_id == run_id))
    if want.street:
        query = query.where(Flag.street_code == want.street)
    if want.q:
        query = query.where(Household.household_code.contains(want.q, autoescape=True))
    run_flags = query.cte("run_flags").prefix_with("MATERIALIZED")
    with session_scope(settings.database_url) as session:
        if want.q:
            by_kind = dict(session.execute(select(run_flags.c.kind, func.count())
                                           .group_by(run_flags.c.kind)).all())
        else:  # the run's counts kept by triggers (flag_counts), not a count of its flags
            sums = select(FlagCount.kind, func.sum(FlagCount.n)).where(FlagCount.run_id == run_id)
            if want.street:
                sums = sums.where(FlagCount.street_code == want.street)
            by_kind = {kind: int(n) for kind, n in session.execute(
                sums.group_by(FlagCount.kind).having(func.sum(FlagCount.n) > 0)).all()}
        total = by_kind.get(want.kind, 0) if want.kind else sum(by_kind.values())
        pages = max(1, -(-total // page_size))
        page = min(want.page, pages)
        ids = select(run_flags.c.id)
        if want.kind:
            ids = ids.where(run_flags.c.kind == want.kind)
        page_ids = session.scalars(
            ids.order_by(run_flags.c.household_code, run_flags.c.id)
            .limit(page_size).offset((page - 1) * page_size)).all()
        rows = session.execute(
            select(Flag, Household, Assessment.household_size, Assessment.per_capita_income,
                   Assessment.benefit)
            .join(Household, Household.id == Flag.household_id)
            .join(Assessment, (Assessment.household_id == Flag.household_id)
                  & (Assessment.run_id == Flag.run_id), isouter=True)
            .where(Flag.id.in_(page_ids)).order_by(Household.household_code, Flag.id)
            .options(selectinload(Flag.reasons))).all()
        heads = flag_actions.household_heads(session, [h.id for _, h, *_ in rows])
        results = []
        for flag, household, size, per_capita, benefit in rows:
            head = heads.get(household.id)
            results.append({
                "flag_id": flag.id, "household_code": household.household_code,
                "kind": flag.kind, "street": jurisdictions.street_name(flag.street_code),
                "community": jurisdictions.community_name(flag.community_code),
                "head_name": head.name_masked if head else "",
                "head_id": head.id_masked if head else "", "household_size": size,
                "per_capita_income": per_capita, "benefit": benefit,
                "reasons": "；".join(reason_text(r.code, r.detail) for r in flag.reasons)})
    return {"results": results, "total": total, "page": page, "pages": pages,
            "counts": {"kind": by_kind}, "first": (page - 1) * page_size + 1 if total else 0,
            "last": (page - 1) * page_size + len(results)}


def evidence_groups(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A flag's evidence grouped by source, item and match grade, oldest record first: twelve
    monthly wage records read as one line with their months and amounts, each still listed."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in evidence:
        groups[(item["source_kind"], item["item"], item["match_grade"])].append(item)
    out = []
    for (source, item, grade), records in groups.items():
        records = sorted(records, key=lambda r: (r["period_start"] or "", r["record_ref"]))
        amounts = [r["amount"] for r in records if r["amount"]]
        out.append({"source_kind": source, "item": item, "match_grade": grade,
                    "records": records, "count": len(records),
                    "amount_min": min(amounts, default=0.0),
                    "amount_max": max(amounts, default=0.0),
                    "period_start": records[0]["period_start"],
                    "period_end": max((r["period_end"] or "" for r in records), default="")})
    return sorted(out, key=lambda g: (g["source_kind"], g["item"]))


# ---- dashboard ---------------------------------------------------------------------------------
def dashboard(settings: Settings, who: Principal, today: dt.date, lang: str,
              runs_shown: int = 12) -> dict[str, Any]:
    """Counts by flag kind and street (latest review), the trend over reviews, open-flag ageing."""
    who.require("flags.read")
    run = latest_run(settings)
    out: dict[str, Any] = {"run": run, "kinds": [], "streets": [], "trend": [], "ageing": {},
                           "days_open": {}, "open_total": 0, "households": 0}
    if run is None:
        return out
    with session_scope(settings.database_url) as session:
        by_street = session.execute(_scoped(
            select(Flag.street_code, Flag.kind, func.count()).where(Flag.run_id == run.id)
            .group_by(Flag.street_code, Flag.kind), who)).all()
        trend_rows = session.execute(_scoped(
            select(Run.id, Run.as_of, Run.run_key, Flag.kind, func.count())
            .join(Flag, Flag.run_id == Run.id)
            .where(Run.status == "done", Run.kind == "review")
            .group_by(Run.id, Run.as_of, Run.run_key, Flag.kind), who)).all()
        open_rows = session.execute(_scoped(
            select(Flag.due_date, Flag.created_at).where(
                Flag.run_id == run.id, Flag.kind.not_in(codes.no_action_kinds()),
                Flag.status.not_in(DONE_STATES)),
            who)).all()
    kinds = Counter()
    streets: dict[str, Counter] = defaultdict(Counter)
    for street, kind, n in by_street:
        kinds[kind] += n
        streets[street][kind] += n
    out["kinds"] = [{"kind": k, "label": codes.label("flags", k, lang), "count": kinds[k]}
                    for k in FLAG_ORDER if kinds[k]]
    out["households"] = sum(kinds.values())  # one flag per household checked, in scope
    out["streets"] = [{"code": s, "name": jurisdictions.street_name(s),
                       "counts": dict(streets[s]), "total": sum(streets[s].values())}
                      for s in sorted(streets)]
    out["trend"] = _trend(trend_rows, runs_shown)
    out["ageing"] = _ageing([due for due, _ in open_rows], today)
    out["days_open"] = _days_open([created for _, created in open_rows], today)
    out["open_total"] = len(open_rows)
    return out


def _trend(rows: list[Any], runs_shown: int) -> list[dict[str, Any]]:
    runs: dict[int, dict[str, Any]] = {}
    for run_id, as_of, run_key, kind, n in rows:
        entry = runs.setdefault(run_id, {"run_id": run_id, "as_of": as_of, "run_key": run_key,
                                         "counts": {}})
        entry["counts"][kind] = n
    ordered = sorted(runs.values(), key=lambda r: (r["as_of"], r["run_id"]))
    return ordered[-runs_shown:]


def _days_open(raised: list[dt.datetime | None], today: dt.date) -> dict[str, int]:
    """Open flags by how long ago they were raised (0–7, 8–30, 31–60, over 60 days)."""
    buckets = dict.fromkeys(OPEN_FOR_BUCKETS, 0)
    for when in raised:
        days = (today - when.date()).days if when else 0
        key = next((name for name, limit in zip(OPEN_FOR_BUCKETS, (7, 30, 60), strict=False)
                    if days <= limit), OPEN_FOR_BUCKETS[-1])
        buckets[key] += 1
    return buckets


def _ageing(due_dates: list[dt.date | None], today: dt.date) -> dict[str, int]:
    buckets = dict.fromkeys(AGEING_BUCKETS, 0)
    for due in due_dates:
        if due is None:
            buckets["no_due"] += 1
        elif due < today:
            buckets["overdue"] += 1
        elif due <= today + dt.timedelta(days=7):
            buckets["due_week"] += 1
        else:
            buckets["due_later"] += 1
    return buckets


def trend_chart(trend: list[dict[str, Any]], kinds: tuple[str, ...] = FLAG_ORDER,
                width: int = 640, height: int = 220) -> dict[str, Any]:
    """Stacked columns per review, as SVG geometry (the template draws it; no script needed)."""
    pad_left, pad_bottom, pad_top = 36, 28, 10
    quiet = set(codes.no_action_kinds())
    top = max((sum(r["counts"].get(k, 0) for k in kinds if k not in quiet) for r in trend),
              default=0)
    scale = (height - pad_bottom - pad_top) / top if top else 0
    slot = (width - pad_left) / max(len(trend), 1)
    bars = []
    for i, run in enumerate(trend):
        y = height - pad_bottom
        bar_width = min(slot * 0.6, 56)
        x = pad_left + (i + 0.5) * slot - bar_width / 2
        for kind in kinds:
            n = run["counts"].get(kind, 0)
            if kind in quiet or not n:
                continue
            h = n * scale
            y -= h
            bars.append({"x": round(x, 1), "y": round(y, 1), "w": round(bar_width, 1),
                         "h": round(h, 1), "kind": kind, "n": n})
    labels = [{"x": round(pad_left + (i + 0.5) * slot, 1), "y": height - 8,
               "text": r["as_of"].strftime("%Y-%m") if r["as_of"] else str(r["run_id"])}
              for i, r in enumerate(trend)]
    ticks = [{"y": round(height - pad_bottom - v * scale, 1), "v": v}
             for v in _ticks(top)] if top else []
    return {"width": width, "height": height, "bars": bars, "labels": labels, "ticks": ticks,
            "left": pad_left, "base": height - pad_bottom}


def _ticks(top: int) -> list[int]:
    step = max(1, round(top / 4))
    return list(range(0, top + 1, step))


# ---- batches -----------------------------------------------------------------------------------
def batch_list(settings: Settings, limit: int = 200) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        rows = session.scalars(select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc())
                               .limit(limit)).all()
        return [_batch_row(b) for b in rows]


def _batch_row(b: Batch) -> dict[str, Any]:
    return {"id": b.id, "code": b.batch_code, "file": b.file_name, "category": b.category,
            "requester": b.requester, "status": b.status, "stage": b.stage, "rows": b.rows,
            "households": b.households, "errors": b.errors, "created_at": b.created_at,
            "notes": b.notes, "steps": batch_steps(b.stage, b.progress or [])}


def batch_steps(stage: str, progress: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stage of a batch with its state (done, running, waiting, failed) and time."""
    seen = {p["stage"]: p for p in progress}
    failed = stage in ("failed", "invalid")
    reached = [s for s in BATCH_STEPS if s in seen]
    last = BATCH_STEPS.index(reached[-1]) if reached else -1
    steps = []
    for i, name in enumerate(BATCH_STEPS):
        if i <= last:
            state = "done"
        elif i == last + 1:
            state = "failed" if failed else ("running" if stage != "reported" else "waiting")
        else:
            state = "waiting"
        at = seen.get(name, {}).get("at", "")
        steps.append({"stage": name, "state": state, "at": at})
    return steps


def batch_detail(settings: Settings, batch_id: int) -> dict[str, Any] | None:
    try:
        status = batches.batch_status(settings, batch_id)
    except LookupError:
        return None
    status["steps"] = batch_steps(status["stage"], status["progress"])
    status["files"] = report_files(settings, status)
    return status


def report_files(settings: Settings, status: dict[str, Any]) -> list[dict[str, Any]]:
    """The downloadable reports of a finished batch: the batch report and the street reports."""
    found = []
    for root in _report_roots(settings, status):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".csv", ".xlsx", ".html", ".pdf", ".json"):
                folder = str(path.parent.relative_to(root))
                found.append({"path": str(path.relative_to(settings.home)), "name": path.name,
                              "folder": "" if folder == "." else folder,
                              "size": path.stat().st_size, "root": root.name})
    return found


def _report_roots(settings: Settings, status: dict[str, Any]) -> list[Path]:
    roots = []
    if status.get("reports_dir"):
        roots.append(Path(status["reports_dir"]))
    if status.get("run_id"):
        with session_scope(settings.database_url) as session:
            run = session.get(Run, status["run_id"])
            if run is not None and run.reports_dir:
                roots.append(settings.at_home(run.reports_dir))
    home = settings.home.resolve()
    return [r for r in roots if r.is_dir() and r.resolve().is_relative_to(home)]


def group_report_files(files: list[dict[str, Any]], batch_reports_dir: str
                       ) -> dict[str, Any]:
    """Split a batch's files for the page: the batch report itself, the 核对报告 of each
    household (by household code) and the per-street/community reports."""
    own = Path(batch_reports_dir).name if batch_reports_dir else None
    groups: dict[str, Any] = {"batch": [], "households": {}, "streets": []}
    for item in files:
        path = Path(item["path"])
        if own and item["root"] == own and path.parent.name == own:
            groups["batch"].append(item)
        elif path.parent.name == "核对报告":
            groups["households"][path.stem] = item
        else:
            groups["streets"].append(item)
    return groups


def allowed_report_file(settings: Settings, status: dict[str, Any], relative: str) -> Path | None:
    """The file ``relative`` (to HEDUI_HOME) if it is one of this batch's reports, else None."""
    for item in report_files(settings, status):
        if item["path"] == relative:
            return settings.home / relative
    return None


# ---- partner feeds -----------------------------------------------------------------------------
def feed_overview(settings: Settings, who: Principal, now: dt.datetime,
                  history: int = 5) -> list[dict[str, Any]]:
    """Per partner and feed kind: last delivery with counts, rejections and their reasons,
    recent deliveries, and when the next one is expected (connectors/partners.yaml)."""
    if not who.can("feeds.read"):
        who.require("feeds.read_own")
    partners = [p for p in load_partners().values()
                if who.can("feeds.read") or p.code == who.partner]
    out = []
    with session_scope(settings.database_url) as session:
        for spec in partners:
            kinds = [_kind_overview(session, spec, kind, now, history) for kind in spec.feeds]
            out.append({"code": spec.code, "name_zh": spec.name_zh, "name_en": spec.name_en,
                        "schedule": spec.schedule, "kinds": kinds})
    return out


def _kind_overview(session, spec, kind: str, now: dt.datetime,  # noqa: ANN001
                   history: int) -> dict[str, Any]:
    feeds = session.scalars(select(Feed).join(Partner).where(Partner.code == spec.code,
                                                             Feed.kind == kind)
                            .order_by(Feed.received_at.desc(), Feed.id.desc())
                            .limit(history)).all()
    last = feeds[0] if feeds else None
    reasons = []
    if last is not None:
        reasons = [{"reason": r, "field": f, "count": n, "example": m}
                   for r, f, n, m in session.execute(
                       select(QuarantinedRow.reason, QuarantinedRow.field, func.count(),
                              func.min(QuarantinedRow.message))
                       .where(QuarantinedRow.feed_id == last.id)
                       .group_by(QuarantinedRow.reason, QuarantinedRow.field)
                       .order_by(func.count().desc())).all()]
    rejected = [{"sequence": f.sequence, "period": f.period, "reason": f.reason,
                 "received_at": f.received_at} for f in feeds if f.status == "rejected"]
    return {"kind": kind, "last": _feed_row(last) if last else None,
            "history": [_feed_row(f) for f in feeds], "reasons": reasons, "rejected": rejected,
            **expected_next(spec.schedule, spec.expected_interval_days,
                            last.received_at if last else None, now)}


def _feed_row(f: Feed) -> dict[str, Any]:
    return {"id": f.id, "period": f.period, "sequence": f.sequence, "status": f.status,
            "reason": f.reason, "received": f.rows_received, "accepted": f.rows_accepted,
            "quarantined": f.rows_quarantined, "received_at": f.received_at}


def expected_next(schedule: str, interval_days: int, last: dt.datetime | None,
                  now: dt.datetime) -> dict[str, Any]:
    """The next scheduled pull (local time) and how many days a delivery is overdue (0: on time).

    ``last`` and ``now`` are naive UTC, as stored."""
    local_now = now.replace(tzinfo=dt.UTC).astimezone(LOCAL_TZ)
    next_pull = croniter(schedule, local_now).get_next(dt.datetime)
    late = 0
    if last is not None:
        age = (now - last).days
        late = max(0, age - interval_days)
    return {"next_pull": next_pull, "late_days": late, "interval_days": interval_days}
