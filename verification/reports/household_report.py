"""The verification report (核对报告) of each applicant household: who asked, the members (masked)
and their authorisation references, income by source and member over the window, assets by kind
at the query date, the per-capita figures, the sources that did not answer, the outcome, and the
note that the report supports but does not replace the approval decision (审核确认).

Figures come from the run itself: the matched evidence it used (``runs/run-<id>/
evidence.parquet``), its assessment and flags, and the policy in force on its as-of date.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from verification import codes, jurisdictions
from verification.assessment.policy import Policy, load_parameters
from verification.config import Settings
from verification.localtime import local_today
from verification.reports import charts
from verification.reports.flag_reports import labelled
from verification.reports.html import RunFacts, css, environment
from verification.storage import session_scope
from verification.storage.models import Assessment, Authorisation, Member

log = logging.getLogger(__name__)
REPORT_FOLDER = "核对报告"
_CURRENCY = "{:,.2f}"


def write_household_reports(settings: Settings, run_id: int, table: pd.DataFrame,
                            facts: RunFacts, folders: dict[str, Path]) -> list[Path]:
    """One HTML report per applicant household in ``table`` (flag_table rows), written into
    ``folders[community_code]/核对报告/``; returns the files written."""
    applicants = table[table["status"] == codes.label("household_status", "applicant")]
    if applicants.empty:
        return []
    if not _evidence_path(settings, run_id).exists():
        # Housekeeping purges old run folders; the flag reports can still be rewritten.
        log.warning("run %s: matched evidence purged, no 核对报告 written; rerun the review "
                    "to rebuild them", run_id)
        return []
    ids = [int(i) for i in applicants["household_id"]]
    as_of = dt.date.fromisoformat(facts.run["as_of"])
    policy = load_parameters().at(facts.run["region"], as_of)
    members, assessments = _load(settings, run_id, ids)
    evidence = _evidence(settings, run_id, ids)
    # every household's tables at once, then split by household (a batch has thousands)
    names = dict(zip(members["person_token"], members["name_masked"], strict=True))
    window = int(policy.require("income.look_back_months"))
    last = pd.Timestamp(as_of).to_period("M") - 1
    first = last - (window - 1)
    people = _by_household(members["household_id"], _members(members, as_of))
    income = _income(evidence, names, policy, first, last, window)
    assets = _assets(evidence, names, policy, as_of)
    template = environment().get_template("report_household.html.j2")
    written = []
    for row in applicants.to_dict("records"):
        folder = folders[row["community_code"]] / REPORT_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{row['household_code']}.html"
        household_id = int(row["household_id"])
        page = template.render(
            css=css(), district=jurisdictions.district()[1], run=facts.run,
            generated=local_today().isoformat(), requester=facts.requester,
            household={"code": row["household_code"], "street": row["street"],
                       "community": row["community"], "status": row["status"]},
            window={"first": str(first), "last": str(last), "months": window},
            members=people.get(household_id, []), income=income.get(household_id, []),
            assets=assets.get(household_id, []),
            figures=_figures(assessments.get(household_id, {}), policy),
            missing=_missing(assessments.get(household_id, {}), facts),
            outcome={"flag": row["flag"], "action": row["action"], "due_date": row["due_date"],
                     "colour": charts.KIND_COLOURS[row["kind"]],
                     "reasons": [r for r in str(row["reasons"]).split("；") if r]})
        path.write_text(page, "utf-8")
        written.append(path)
    return written


def _by_household(households: pd.Series, rows: list[dict[str, Any]]) -> dict[int, list[dict]]:
    """``rows`` (one per entry of ``households``, in order) bucketed by household."""
    out: dict[int, list[dict]] = {}
    for household, row in zip(households.tolist(), rows, strict=True):
        out.setdefault(int(household), []).append(row)
    return out


def _load(settings: Settings, run_id: int,
          ids: list[int]) -> tuple[pd.DataFrame, dict[int, dict[str, Any]]]:
    with session_scope(settings.database_url) as session:
        members = pd.DataFrame(session.execute(
            select(Member.id, Member.household_id, Member.person_token, Member.name_masked,
                   Member.id_masked, Member.relation, Member.gender, Member.birth_date,
                   Member.exclusion)
            .where(Member.household_id.in_(ids)).order_by(Member.household_id, Member.id)
        ).mappings().all())
        signed = pd.DataFrame(session.execute(
            select(Authorisation.member_id, Authorisation.reference)
            .where(Authorisation.member_id.in_([int(i) for i in members["id"]]))).all(),
            columns=["member_id", "reference"])
        assessments = {a.household_id: {"decision": a.decision, "category": a.category,
                                        "benefit": a.benefit, "size": a.household_size,
                                        "per_capita_income": a.per_capita_income,
                                        "financial_per_capita": a.financial_assets_per_capita,
                                        **(a.details or {})}
                       for a in session.scalars(select(Assessment).where(
                           Assessment.run_id == run_id, Assessment.household_id.in_(ids)))}
    references = signed.groupby("member_id")["reference"].agg(lambda s: "、".join(sorted(s)))
    members["authorisation"] = members["id"].map(references).fillna("无 / none")
    return members, assessments


def _evidence_path(settings: Settings, run_id: int) -> Path:
    return settings.runs_dir / f"run-{run_id}" / "evidence.parquet"


def _evidence(settings: Settings, run_id: int, ids: list[int]) -> pd.DataFrame:
    """The matched evidence the run used (certain matches only decide, so only those show)."""
    frame = pd.read_parquet(_evidence_path(settings, run_id))
    frame = frame[frame["household_id"].isin(ids) & (frame["match_grade"] == "certain")]
    return frame.assign(item=frame["item"].astype(str), source_kind=frame["source_kind"].astype(
        str), period_start=pd.to_datetime(frame["period_start"]),
        period_end=pd.to_datetime(frame["period_end"]))


def _members(members: pd.DataFrame, as_of: dt.date) -> list[dict[str, Any]]:
    born = pd.to_datetime(members["birth_date"])
    age = as_of.year - born.dt.year - ((born.dt.month > as_of.month) | (
        (born.dt.month == as_of.month) & (born.dt.day > as_of.day))).astype(int)
    return [{"name": m["name_masked"], "id": m["id_masked"], "relation": m["relation"],
             "gender": {"M": "男", "F": "女"}.get(m["gender"], m["gender"]), "age": int(a),
             "counted": "是" if not m["exclusion"] else f"否（{m['exclusion']}）",
             "authorisation": m["authorisation"]}
            for m, a in zip(members.to_dict("records"), age, strict=True)]


def _income(evidence: pd.DataFrame, names: dict, policy: Policy, first: pd.Period,
            last: pd.Period, window: int) -> dict[int, list[dict[str, Any]]]:
    """Per household, member, source and item: months with records in the window, their sum,
    and the monthly average over the whole window (as the assessment averages)."""
    income = evidence[evidence["item"].isin(codes.items("income"))]
    month = income["period_start"].dt.to_period("M")
    income = income[(month >= first) & (month <= last)]
    if income.empty:
        return {}
    grouped = income.groupby(["household_id", "person_token", "source_kind", "item"]).agg(
        months=("period_start", "nunique"), total=("amount", "sum")).reset_index()
    counted = set(policy.require("income.counted_items"))
    excluded = set(policy.require("income.excluded_items"))
    grouped = grouped.assign(source=labelled(grouped["source_kind"], "feed_kinds"),
                             label=labelled(grouped["item"], "items"))
    return _by_household(grouped["household_id"], [
        {"member": names.get(r["person_token"], "—"), "source": r["source"],
         "item": r["label"], "months": int(r["months"]),
         "total": float(r["total"]), "monthly": float(r["total"]) / window,
         "counted": "计入" if r["item"] in counted else (
             "不计入（政策排除）" if r["item"] in excluded else "不计入")}
        for r in grouped.to_dict("records")])


def _assets(evidence: pd.DataFrame, names: dict, policy: Policy,
            as_of: dt.date) -> dict[int, list[dict[str, Any]]]:
    """Per household: financial assets, property, vehicles and businesses registered by the
    query date."""
    classes = {i: c for c in ("asset", "property", "vehicle", "business", "payroll")
               for i in codes.items(c)}
    held = evidence[evidence["item"].isin(list(classes))
                    & (evidence["period_start"] <= pd.Timestamp(as_of))]
    held = held.sort_values(["household_id", "item", "record_ref"], kind="stable")
    held = held.assign(label=labelled(held["item"], "items"))
    exempt = set(policy.value("vehicles.exempt_items") or ())
    kinds = {"asset": "金融资产", "property": "房产", "vehicle": "车辆", "business": "市场主体",
             "payroll": "财政供养"}
    rows = []
    for r in held.to_dict("records"):
        item_class = classes[r["item"]]
        rows.append({"member": names.get(r["person_token"], "—"), "kind": kinds[item_class],
                     "item": r["label"], "record_ref": r["record_ref"],
                     "date": r["period_start"].date().isoformat(),
                     "amount": _CURRENCY.format(r["amount"]) if item_class == "asset" else "—",
                     "note": "豁免（不计入）" if r["item"] in exempt else ""})
    return _by_household(held["household_id"], rows)


def _figures(assessed: dict[str, Any], policy: Policy) -> list[tuple[str, str]]:
    if not assessed:
        return [("核算结果 / result", "—")]
    money = (lambda v: "—" if v is None or pd.isna(v) else _CURRENCY.format(v))  # noqa: E731
    limit = policy.require("assets.financial_limit_months") * float(assessed.get("standard") or 0)
    return [
        ("共同生活家庭成员人数", str(assessed["size"])),
        ("家庭月均收入(元)", money(assessed.get("income_monthly"))),
        ("扣减的刚性支出和就业成本(元/月)", money(assessed.get("deductions_monthly"))),
        ("家庭人均月收入(元)", money(assessed["per_capita_income"])),
        ("低保标准(元/月)", money(assessed.get("standard"))),
        ("人均金融资产(元)", money(assessed["financial_per_capita"])),
        ("人均金融资产限额(元)", money(limit)),
        ("住房(套) / 非住宅房产 / 车辆 / 市场主体",
         f"{assessed.get('homes', 0)} / {assessed.get('commercial_properties', 0)} / "
         f"{assessed.get('vehicles', 0)} / {assessed.get('businesses', 0)}"),
        ("认定类别", codes.label("categories", assessed["category"])),
        ("测算保障金额(元/月)", money(assessed["benefit"])),
    ]


def _missing(assessed: dict[str, Any], facts: RunFacts) -> list[str]:
    """Sources the rules needed but that were missing or stale, and feeds never delivered."""
    kinds = {k for k in str(assessed.get("missing_sources") or "").split(",") if k}
    labels = {codes.label("feed_kinds", k) for k in kinds}
    labels |= {f["label"] for f in facts.feeds if f["missing"]}
    return sorted(f"{label}：未反馈或数据过期 / no answer or stale" for label in labels)
