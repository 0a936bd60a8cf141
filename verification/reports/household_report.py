"""The verification report (核对报告) of a household: who asked, the members (masked) and their
authorisation references, income by source and member over the window, assets by kind at the
query date, the per-capita figures, the sources that did not answer, the outcome, and the note
that the report supports but does not replace the approval decision (审核确认).

Which households get one:
- **in bulk, with the run's reports**: every applicant household and every flag that asks an
  officer to act (``codes.action_kinds()``: every kind with a due date; KEEP asks for none),
  one file each in ``folders[community]/核对报告/``. A street at a time (its row groups of the
  evidence), the tables of all its households are computed at once, as HTML table rows escaped
  and joined in Arrow and split by household, and each page is one call of the one compiled
  template with those rows; no browser is started;
- **on demand, for any flag of the run** (``household_report``: the portal's flag page, `hedui
  reports household`): the same functions over the one household, so the page is the bulk one.

Figures come from the run itself: the matched evidence it used (``runs/run-<id>/
evidence.parquet``, the run's working folder, which housekeeping purges after ``run_workdirs``
days: then no report can be rendered, and the bulk files written before stay), its assessment
and flags, and the policy in force on its as-of date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from markupsafe import Markup
from sqlalchemy import select

from verification import codes, jurisdictions
from verification.assessment.policy import Policy, load_parameters
from verification.config import Settings
from verification.localtime import local_today
from verification.reports import charts
from verification.reports.flag_reports import flag_table, labelled
from verification.reports.html import RunFacts, css, environment, run_facts
from verification.storage import session_scope
from verification.storage.models import Assessment, Authorisation, Flag, Household, Member, Run

log = logging.getLogger(__name__)
REPORT_FOLDER = "核对报告"
_CURRENCY = "{:,.2f}"
_EVIDENCE_COLUMNS = ["household_id", "person_token", "source_kind", "record_ref", "item",
                     "amount", "period_start", "match_grade"]
_MEMBER_COLUMNS = ["id", "household_id", "person_token", "name_masked", "id_masked", "relation",
                   "gender", "birth_date", "exclusion"]
_POLICIES: dict[tuple[str, str, str], Policy] = {}
_LISTED = 1_000  # households looked up by id; more are read by the run's flags instead


class ReportUnavailable(LookupError):
    """No 核对报告 can be rendered; the message says why, in Chinese with English beside."""


class NotInRun(ReportUnavailable):
    """The run, or the household or flag in it, does not exist."""


class EvidencePurged(ReportUnavailable):
    """The run's matched evidence was purged by housekeeping."""


def needs_report(table: pd.DataFrame) -> pd.Series:
    """Which rows of ``table`` (flag_table rows) get a 核对报告 in bulk: applicant households
    and flags that ask an officer to act."""
    applicant = codes.label("household_status", "applicant")
    return table["status"].eq(applicant) | table["kind"].isin(codes.action_kinds())


def write_household_reports(settings: Settings, run_id: int, table: pd.DataFrame,
                            facts: RunFacts, folders: dict[str, Path]) -> list[Path]:
    """A 核对报告 for each row of ``table`` (flag_table rows) that ``needs_report``, written into
    ``folders[community_code]/核对报告/<household>.html``; returns the files written."""
    chosen = table[needs_report(table)]
    if chosen.empty:
        return []
    path = _evidence_path(settings, run_id)
    if not path.exists():
        # Housekeeping purges old run folders; the flag reports can still be rewritten.
        log.warning("run %s: matched evidence purged, no 核对报告 written; rerun the review "
                    "to rebuild them", run_id)
        return []
    source, today = pq.ParquetFile(path), local_today()
    written: list[Path] = []
    # a street at a time: its own row groups of the evidence, not a province's at once
    for street, part in chosen.groupby("street_code", sort=False):
        evidence = _evidence(_street_rows(source, str(street)),
                             part["household_id"].to_numpy("int64"))
        made = set()
        for row, page in _pages(settings, run_id, part, facts, evidence, today):
            folder = folders[row["community_code"]] / REPORT_FOLDER
            if folder not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(folder)
            written.append(folder / f"{row['household_code']}.html")
            written[-1].write_text(page, "utf-8")
    return written


def household_report(settings: Settings, run_id: int, flag_id: int,
                     generated: dt.date | None = None) -> str:
    """The 核对报告 of flag ``flag_id``'s household in run ``run_id``, as the bulk step writes it
    (``generated``: the date it says it was issued, today by default). Raises ``NotInRun`` or
    ``EvidencePurged``. Callers check who may read it (``flags.actions.authorise_flag``)."""
    with session_scope(settings.database_url) as session:
        _require_run(session, run_id)
    table = flag_table(settings, run_id, [flag_id])
    if table.empty:
        raise NotInRun(f"运行 {run_id} 中没有核对结论 #{flag_id} / flag {flag_id} is not in run "
                       f"{run_id}")
    path = _evidence_path(settings, run_id)
    if not path.exists():
        raise EvidencePurged(
            f"运行 {run_id} 的核对数据已按保留期限清理（housekeeping），无法生成核对报告；"
            f"请重新运行核对，或查阅当时写出的核对报告 / run {run_id}'s matched evidence was "
            "purged by housekeeping (retention run_workdirs), so no 核对报告 can be rendered; "
            "rerun the review, or read the reports written with the run")
    row = table.iloc[0]
    evidence = _evidence(_household_rows(path, str(row["street_code"]),
                                         int(row["household_id"])),
                         np.array([row["household_id"]], dtype="int64"))
    facts = run_facts(settings, run_id, history=False)
    return next(_pages(settings, run_id, table, facts, evidence, generated or local_today()))[1]


def flag_of_household(settings: Settings, run_id: int, household_code: str) -> int:
    """The flag of household ``household_code`` in run ``run_id``; ``NotInRun`` if none."""
    with session_scope(settings.database_url) as session:
        _require_run(session, run_id)
        found = session.scalar(select(Flag.id).join(Household, Household.id == Flag.household_id)
                               .where(Flag.run_id == run_id,
                                      Household.household_code == household_code))
    if found is None:
        raise NotInRun(f"家庭 {household_code} 不在运行 {run_id} 中 / household {household_code} "
                       f"is not in run {run_id}")
    return int(found)


def _require_run(session, run_id: int) -> None:  # noqa: ANN001
    if session.get(Run, run_id) is None:
        raise NotInRun(f"没有运行 {run_id} / no run {run_id}")


def _pages(settings: Settings, run_id: int, rows: pd.DataFrame, facts: RunFacts,
           evidence: pd.DataFrame, generated: dt.date) -> Iterator[tuple[dict, str]]:
    """(row, page) for each of ``rows`` (flag_table rows of one street), their tables
    computed at once from ``evidence`` (theirs, ``_evidence``)."""
    ids = [int(i) for i in rows["household_id"]]
    as_of = dt.date.fromisoformat(facts.run["as_of"])
    policy = _run_policy(facts.run)
    members, assessments = _load(settings, run_id, ids, str(rows["street_code"].iloc[0]))
    names = pd.Series(members["name_masked"].to_numpy(), index=members["person_token"])
    names = names[~names.index.duplicated(keep="last")]
    window = int(policy.require("income.look_back_months"))
    last = pd.Timestamp(as_of).to_period("M") - 1
    first = last - (window - 1)
    people = _members(members, as_of)
    income = _income(evidence, names, policy, first, last, window)
    assets = _assets(evidence, names, policy, as_of)
    render = environment().get_template("report_household.html.j2").render
    same = {"css": css(), "district": jurisdictions.district()[1], "run": facts.run,
            "generated": generated.isoformat(), "requester": facts.requester,
            "window": {"first": str(first), "last": str(last), "months": window}}
    for row in rows.to_dict("records"):
        household_id = int(row["household_id"])
        assessed = assessments.get(household_id, {})
        yield row, render(
            **same, household={"code": row["household_code"], "street": row["street"],
                               "community": row["community"], "status": row["status"]},
            members=people.get(household_id, ""), income=income.get(household_id, ""),
            assets=assets.get(household_id, ""), figures=_figures(assessed, policy),
            missing=_missing(assessed, facts),
            outcome={"flag": row["flag"], "action": row["action"], "due_date": row["due_date"],
                     "colour": charts.KIND_COLOURS[row["kind"]],
                     "reasons": [r for r in str(row["reasons"]).split("；") if r]})


def _run_policy(run: dict[str, Any]) -> Policy:
    """The policy in force on the run's as-of date. Kept in the process when it is the run's own
    (its version the one the run recorded): reading the parameter files was most of an
    on-demand report's time."""
    key = (run["region"], run["as_of"], run["policy_version"])
    if key not in _POLICIES:
        policy = load_parameters().at(run["region"], dt.date.fromisoformat(run["as_of"]))
        if policy.version != run["policy_version"]:
            return policy  # the files changed since the run: today's, as before, not kept
        _POLICIES[key] = policy
    return _POLICIES[key]


def _load(settings: Settings, run_id: int, ids: list[int],
          street: str) -> tuple[pd.DataFrame, dict[int, dict[str, Any]]]:
    """The members (with their authorisation references) and the assessments of ``ids``, all
    households of ``street``."""
    members = select(Member.id, Member.household_id, Member.person_token, Member.name_masked,
                     Member.id_masked, Member.relation, Member.gender, Member.birth_date,
                     Member.exclusion).order_by(Member.household_id, Member.id)
    signed = select(Authorisation.member_id, Authorisation.reference).join(
        Member, Member.id == Authorisation.member_id)
    assessed = select(Assessment.household_id, Assessment.decision, Assessment.category,
                      Assessment.benefit, Assessment.household_size,
                      Assessment.per_capita_income, Assessment.financial_assets_per_capita,
                      Assessment.details).where(Assessment.run_id == run_id)
    if len(ids) <= _LISTED:
        members, signed = (q.where(Member.household_id.in_(ids)) for q in (members, signed))
        assessed = assessed.where(Assessment.household_id.in_(ids))
    else:  # most of a street: the street's, by the run's flags (an id list passes bind limits)
        members, signed, assessed = (
            q.join(Flag, (Flag.household_id == key) & (Flag.run_id == run_id))
            .where(Flag.street_code == street)
            for q, key in ((members, Member.household_id), (signed, Member.household_id),
                           (assessed, Assessment.household_id)))
    with session_scope(settings.database_url) as session:
        members = pd.DataFrame(session.execute(members).all(), columns=_MEMBER_COLUMNS)
        signed = pd.DataFrame(session.execute(signed).all(), columns=["member_id", "reference"])
        assessed = session.execute(assessed).all()
    wanted = set(ids)
    members = members[members["household_id"].isin(wanted)].reset_index(drop=True)
    references = signed.groupby("member_id")["reference"].agg(lambda s: "、".join(sorted(s)))
    members["authorisation"] = members["id"].map(references).fillna("无 / none")
    assessments = {a.household_id: {"decision": a.decision, "category": a.category,
                                    "benefit": a.benefit, "size": a.household_size,
                                    "per_capita_income": a.per_capita_income,
                                    "financial_per_capita": a.financial_assets_per_capita,
                                    **(a.details or {})}
                   for a in assessed if a.household_id in wanted}
    return members, assessments


def _evidence_path(settings: Settings, run_id: int) -> Path:
    return settings.runs_dir / f"run-{run_id}" / "evidence.parquet"


def _street_groups(source: pq.ParquetFile, street: str,
                   household_id: int | None = None) -> list[int]:
    """The row groups of the run's matched evidence that hold ``street``'s households (with
    ``household_id``: of the street's part that holds it; all of them in a file written
    without the street map)."""
    from verification.pipeline import evidence_row_groups

    groups = evidence_row_groups(source, street, household_id)
    return list(range(source.num_row_groups)) if groups is None else groups


def _street_rows(source: pq.ParquetFile, street: str) -> pa.Table:
    groups = _street_groups(source, street)
    return source.read_row_groups(groups, columns=_EVIDENCE_COLUMNS) if groups else (
        source.schema_arrow.empty_table().select(_EVIDENCE_COLUMNS))


def _household_rows(path: Path, street: str, household_id: int) -> pa.Table:
    """One household's rows of the run's matched evidence: of its street's row groups only those
    whose household-id statistics hold it are decoded (one or two small groups per block: the
    writer sorts a block's rows by household), the others not even read."""
    footer = _footer(path)
    source = pq.ParquetFile(path, metadata=footer.metadata)
    groups = footer.street_groups(source, street)
    holding = groups[(footer.low[groups] <= household_id) & (footer.high[groups] >= household_id)]
    table = source.read_row_groups(holding.tolist(), columns=_EVIDENCE_COLUMNS) if len(
        holding) else source.schema_arrow.empty_table().select(_EVIDENCE_COLUMNS)
    return table.filter(pc.equal(table["household_id"], household_id))


@dataclass
class _Footer:
    """A run's evidence file as the on-demand 核对报告 reads it: its footer, each row group's
    smallest and largest household id, and each street's groups, worked out once."""

    metadata: pq.FileMetaData
    low: np.ndarray
    high: np.ndarray
    streets: dict[str, np.ndarray] = field(default_factory=dict)

    def street_groups(self, source: pq.ParquetFile, street: str) -> np.ndarray:
        if street not in self.streets:
            self.streets[street] = np.asarray(_street_groups(source, street), dtype=np.int64)
        return self.streets[street]


# The footer of the last evidence file the process read: at a province's size it holds
# thousands of row groups, and parsing it again for each flag page the portal serves cost as
# much as the page. Keyed by the file's path, size and modification time (a rerun writes a
# new file, read afresh); one file kept, the portal's flags being mostly the latest run's.
_FOOTERS: dict[tuple[str, int, int], _Footer] = {}


def _footer(path: Path) -> _Footer:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    footer = _FOOTERS.get(key)
    if footer is None:  # (the portal's threads may race here: each then reads it once)
        metadata = pq.read_metadata(path)
        column = metadata.schema.to_arrow_schema().get_field_index("household_id")
        low = np.full(metadata.num_row_groups, np.iinfo(np.int64).min, dtype=np.int64)
        high = np.full(metadata.num_row_groups, np.iinfo(np.int64).max, dtype=np.int64)
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(column).statistics
            if stats is not None and stats.has_min_max:  # else the group may hold any id
                low[group], high[group] = stats.min, stats.max
        footer = _Footer(metadata, low, high)
        _FOOTERS.clear()
        _FOOTERS[key] = footer
    return footer


def _evidence(table: pa.Table, household_ids: np.ndarray) -> pd.DataFrame:
    """The matched evidence the run used of ``household_ids`` (certain matches only decide, so
    only those show), in file order."""
    table = table.filter(pc.and_(
        pc.is_in(table["household_id"], pa.array(household_ids, pa.int64())),
        pc.equal(table["match_grade"].cast(pa.string()), "certain")))
    frame = table.drop_columns(["match_grade"]).to_pandas()
    return frame.assign(item=frame["item"].astype(str), source_kind=frame["source_kind"].astype(
        str), period_start=pd.to_datetime(frame["period_start"]))


def _escaped(values: Any) -> pa.Array:
    """``values`` (a column: Series or array) as HTML text, as Jinja's autoescape writes it
    (missing as empty), for the whole column at once."""
    text = pa.array(values, from_pandas=True).cast(pa.string())
    for plain, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"),
                          ("'", "&#39;")):
        text = pc.replace_substring(text, plain, entity)
    return pc.fill_null(text, "")


def _table_rows(households: np.ndarray, cells: list[tuple[Any, str]]) -> dict[int, Markup]:
    """Per household, the ``<tr>`` rows of a table: ``cells`` are (column values, td class),
    one value per row of ``households`` (grouped: each household's rows together, in order)."""
    if not len(households):
        return {}
    parts: list[pa.Array | str] = ["<tr>"]
    for values, css_class in cells:
        parts += [f'<td class="{css_class}">' if css_class else "<td>", _escaped(values),
                  "</td>"]
    parts.append("</tr>")
    lines = pc.binary_join_element_wise(*parts, "").to_pylist()
    starts = np.flatnonzero(np.r_[True, households[1:] != households[:-1]])
    ends = np.r_[starts[1:], len(households)]
    return {int(households[a]): Markup("\n".join(lines[a:b]))
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)}


def _members(members: pd.DataFrame, as_of: dt.date) -> dict[int, Markup]:
    """Each household's member rows: number, name, ID (masked), relation, gender, age, counted,
    authorisation references."""
    born = pd.to_datetime(members["birth_date"])
    age = as_of.year - born.dt.year - ((born.dt.month > as_of.month) | (
        (born.dt.month == as_of.month) & (born.dt.day > as_of.day))).astype(int)
    excluded = members["exclusion"].fillna("").astype(str)
    counted = np.where(excluded == "", "是", "否（" + excluded + "）")
    households = members["household_id"].to_numpy("int64")
    number = members.groupby("household_id", sort=False).cumcount() + 1
    gender = members["gender"].map({"M": "男", "F": "女"}).fillna(members["gender"])
    return _table_rows(households, [
        (number, "num"), (members["name_masked"], ""), (members["id_masked"], ""),
        (members["relation"], ""), (gender, ""), (age.astype("int64"), "num"), (counted, ""),
        (members["authorisation"], "")])


def _income(evidence: pd.DataFrame, names: pd.Series, policy: Policy, first: pd.Period,
            last: pd.Period, window: int) -> dict[int, Markup]:
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
    item = grouped["item"]
    return _table_rows(grouped["household_id"].to_numpy("int64"), [
        (_member_names(grouped["person_token"], names), ""),
        (labelled(grouped["source_kind"], "feed_kinds"), ""), (labelled(item, "items"), ""),
        (grouped["months"], "num"), (_money(grouped["total"]), "num"),
        (_money(grouped["total"] / window), "num"),
        (np.where(item.isin(counted), "计入", np.where(item.isin(excluded), "不计入（政策排除）",
                                                      "不计入")), "")])


def _assets(evidence: pd.DataFrame, names: pd.Series, policy: Policy,
            as_of: dt.date) -> dict[int, Markup]:
    """Per household: financial assets, property, vehicles and businesses registered by the
    query date."""
    kinds = {"asset": "金融资产", "property": "房产", "vehicle": "车辆", "business": "市场主体",
             "payroll": "财政供养"}
    classes = {i: c for c in kinds for i in codes.items(c)}
    held = evidence[evidence["item"].isin(list(classes))
                    & (evidence["period_start"] <= pd.Timestamp(as_of))]
    held = held.sort_values(["household_id", "item", "record_ref"], kind="stable")
    item_class = held["item"].map(classes)
    exempt = set(policy.value("vehicles.exempt_items") or ())
    return _table_rows(held["household_id"].to_numpy("int64"), [
        (_member_names(held["person_token"], names), ""), (item_class.map(kinds), ""),
        (labelled(held["item"], "items"), ""), (held["record_ref"], ""),
        (held["period_start"].dt.strftime("%Y-%m-%d"), ""),
        (_money(held["amount"]).where(item_class.eq("asset").to_numpy(), "—"), "num"),
        (np.where(held["item"].isin(exempt), "豁免（不计入）", ""), "")])


def _member_names(tokens: pd.Series, names: pd.Series) -> pd.Series:
    """The masked name of each member token ("—" for a token not on the household's roster)."""
    return pd.Series(names.reindex(tokens.to_numpy()).to_numpy(), index=tokens.index).fillna("—")


def _money(values: pd.Series) -> pd.Series:
    return pd.Series([_CURRENCY.format(v) for v in values.tolist()], index=values.index,
                     dtype=object)


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
        # 审核确认办法 第三十一条 (dynamic.recheck.*): when this household is to be checked again
        ("下次定期核查(不晚于)", assessed.get("recheck_due") or "—"),
    ]


def _missing(assessed: dict[str, Any], facts: RunFacts) -> list[str]:
    """Sources the rules needed but that were missing or stale, and feeds never delivered."""
    kinds = {k for k in str(assessed.get("missing_sources") or "").split(",") if k}
    labels = {codes.label("feed_kinds", k) for k in kinds}
    labels |= {f["label"] for f in facts.feeds if f["missing"]}
    return sorted(f"{label}：未反馈或数据过期 / no answer or stale" for label in labels)
