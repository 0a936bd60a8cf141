"""Per-street flag reports: a CSV that opens correctly in Excel (UTF-8 with BOM) and an XLSX
workbook, with Chinese headers, masked ID numbers and names, reasons in Chinese, evidence and due
dates. Cells that a spreadsheet would run as a formula (= + - @) are neutralised."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import select

from verification import codes, jurisdictions
from verification.config import Settings
from verification.storage import session_scope
from verification.storage.models import (
    Assessment,
    Flag,
    FlagEvidence,
    FlagReason,
    Household,
    Member,
    Run,
)

# column → Chinese header (the order is the report's order)
HEADERS = {
    "household_code": "家庭编号", "street": "街道", "community": "社区",
    "head_name": "户主姓名", "head_id": "户主身份证号", "status": "家庭状态",
    "flag": "核对结论", "action": "处理建议", "reasons": "原因", "evidence": "证据",
    "household_size": "家庭人数", "per_capita_income": "人均月收入(元)", "standard": "低保标准(元)",
    "benefit": "核定保障金额(元/月)", "current_benefit": "现保障金额(元/月)", "due_date": "办理期限",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """Neutralise text a spreadsheet would execute (CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def flag_table(settings: Settings, run_id: int) -> pd.DataFrame:
    """One row per flag of the run, ready for a report (masked, labelled in Chinese)."""
    with session_scope(settings.database_url) as session:
        flags = pd.DataFrame(session.execute(
            select(Flag.id.label("flag_id"), Flag.kind, Flag.due_date, Flag.street_code,
                   Flag.community_code, Household.household_code, Household.status,
                   Household.current_benefit, Assessment.household_size,
                   Assessment.per_capita_income, Assessment.benefit, Assessment.details)
            .join(Household, Household.id == Flag.household_id)
            .join(Assessment, (Assessment.household_id == Flag.household_id)
                  & (Assessment.run_id == Flag.run_id))
            .where(Flag.run_id == run_id)).mappings().all())
        heads = pd.DataFrame(session.execute(
            select(Household.household_code, Member.name_masked, Member.id_masked)
            .join(Member).where(Member.relation == "户主")).mappings().all())
        reasons = pd.DataFrame(session.execute(
            select(FlagReason.flag_id, FlagReason.code).join(Flag)
            .where(Flag.run_id == run_id)).mappings().all(), columns=["flag_id", "code"])
        evidence = pd.DataFrame(session.execute(
            select(FlagEvidence.flag_id, FlagEvidence.source_kind, FlagEvidence.record_ref,
                   FlagEvidence.item, FlagEvidence.period_end).join(Flag)
            .where(Flag.run_id == run_id)).mappings().all(),
            columns=["flag_id", "source_kind", "record_ref", "item", "period_end"])
    if flags.empty:
        return pd.DataFrame(columns=list(HEADERS) + ["street_code", "community_code"])
    return _compose(flags, heads, reasons, evidence)


def _compose(flags: pd.DataFrame, heads: pd.DataFrame, reasons: pd.DataFrame,
             evidence: pd.DataFrame) -> pd.DataFrame:
    reason_text = reasons.assign(text=reasons["code"].map(
        lambda c: codes.label("reasons", c))).groupby("flag_id")["text"].agg("；".join)
    evidence_text = evidence.assign(text=evidence["source_kind"].map(
        lambda k: codes.label("feed_kinds", k)) + "·" + evidence["item"].map(
        lambda i: codes.label("items", i)) + "·" + evidence["record_ref"]).groupby(
        "flag_id")["text"].agg(lambda s: "；".join(sorted(set(s))[:8]))
    table = flags.merge(heads, on="household_code", how="left")
    table["street"] = table["street_code"].map(jurisdictions.street_name)
    table["community"] = table["community_code"].map(jurisdictions.community_name)
    table["head_name"], table["head_id"] = table.pop("name_masked"), table.pop("id_masked")
    table["status"] = table["status"].map(lambda s: codes.label("household_status", s))
    table["flag"] = table["kind"].map(lambda k: codes.label("flags", k))
    table["action"] = table["kind"].map(lambda k: codes.flags()[k]["action_zh"])
    table["reasons"] = table["flag_id"].map(reason_text).fillna("")
    table["evidence"] = table["flag_id"].map(evidence_text).fillna("")
    table["standard"] = table["details"].map(lambda d: (d or {}).get("standard"))
    for col in ("per_capita_income", "benefit", "current_benefit", "standard"):
        table[col] = pd.to_numeric(table[col], errors="coerce").round(2)
    table["due_date"] = table["due_date"].astype("string").fillna("")
    order = {k: i for i, k in enumerate(["REMOVE", "REVIEW", "ADD", "REJECT", "GRADUAL_EXIT",
                                          "ADJUST", "KEEP"])}
    table = table.sort_values(["street_code", "community_code"], kind="stable")
    table = table.iloc[table["kind"].map(order).argsort(kind="stable")]
    return table.sort_values(["street_code"], kind="stable")[
        list(HEADERS) + ["street_code", "community_code", "kind"]].reset_index(drop=True)


def write_run_reports(settings: Settings, run_id: int) -> Path:
    """Write ``reports/run-<id>/<street>/flags.{csv,xlsx}`` and a run summary; returns the
    run's report folder. Rewrites the folder, so a rerun leaves exactly one set."""
    table = flag_table(settings, run_id)
    out = settings.reports_dir / f"run-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    for street_code, rows in table.groupby("street_code"):
        folder = out / f"{street_code}-{jurisdictions.street_name(street_code)}"
        folder.mkdir(exist_ok=True)
        _write_pair(rows, folder / "flags")
    summary = table.pivot_table(index="street", columns="flag", values="household_code",
                                aggfunc="count", fill_value=0)
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        meta = {"run_key": run.run_key, "as_of": run.as_of.isoformat(),
                "policy_version": run.policy_version, "counts": run.counts,
                "feeds": {k: v.get("feed_id") for k, v in run.feed_versions.items()}}
        run.reports_dir = str(out)
    summary.to_csv(out / "summary.csv", encoding="utf-8-sig")
    (out / "run.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")
    return out


def _write_pair(rows: pd.DataFrame, stem: Path) -> None:
    report = rows[list(HEADERS)].rename(columns=HEADERS).map(safe_cell)
    report.to_csv(stem.with_suffix(".csv"), index=False, encoding="utf-8-sig")
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "核对结论"
    sheet.append(list(report.columns))
    for record in report.itertuples(index=False):
        sheet.append([None if pd.isna(v) else v for v in record])
    _style(sheet, len(report.columns))
    workbook.save(stem.with_suffix(".xlsx"))


def _style(sheet, width: int) -> None:  # noqa: ANN001
    header_fill = PatternFill("solid", fgColor="1F4E79")
    for cell in sheet[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = header_fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    widths = [14, 12, 12, 10, 22, 10, 12, 16, 36, 48, 8, 12, 10, 14, 14, 12]
    for i in range(width):
        sheet.column_dimensions[get_column_letter(i + 1)].width = widths[i] if i < len(widths) else 14
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
