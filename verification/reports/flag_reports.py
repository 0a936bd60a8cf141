"""Flag tables for officers: a CSV that opens correctly in Excel (UTF-8 with BOM) and an XLSX
workbook (summary sheet, flag list and, for the centre's batch report, an evidence sheet), with
Chinese headers, masked ID numbers and names, reasons in Chinese, evidence and due dates; a
community's cited records as ``evidence.csv`` (``write_evidence_csv``). Cells that a spreadsheet
would run as a formula (= + - @) are neutralised."""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import xlsxwriter
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from verification import codes, jurisdictions
from verification.config import Settings
from verification.storage import evidence_files, session_scope
from verification.storage.models import (
    Assessment,
    Flag,
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
    "benefit": "核定保障金额(元/月)", "current_benefit": "现保障金额(元/月)",
    "due_date": "办理期限", "flag_status": "办理状态",
}
EVIDENCE_HEADERS = {
    "household_code": "家庭编号", "flag": "核对结论", "source": "数据来源", "item": "项目",
    "record_ref": "记录编号", "amount": "金额(元)", "period_start": "起始日期",
    "period_end": "截止日期", "match_grade": "匹配等级", "feed_id": "数据批次号",
}
# columns of flag_table beyond the report's own: for routing, charts and the 核对报告
EXTRA_COLUMNS = ["street_code", "community_code", "kind", "flag_id", "household_id", "days_open",
                 "overdue"]
MATCH_GRADES = {"certain": "确定", "probable": "较可能", "possible": "可能"}
FLAG_STATUSES = {"open": "待办", "acknowledged": "已签收", "resolved": "已办结"}
KIND_ORDER = ["REMOVE", "REVIEW", "ADD", "REJECT", "GRADUAL_EXIT", "ADJUST", "KEEP"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_WIDTHS = [14, 12, 12, 10, 22, 10, 12, 16, 36, 48, 8, 12, 10, 14, 14, 12, 10]


def safe_cell(value: object) -> object:
    """Neutralise text a spreadsheet would execute (CSV/formula injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@dataclass
class SheetContext:
    """What the summary sheet says about the report: whose, which run, which data."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value) lines


def flag_table(settings: Settings, run_id: int,
               flag_ids: Sequence[int] | None = None,
               street_code: str | None = None) -> pd.DataFrame:
    """One row per flag of the run (of ``flag_ids`` only, when given: the 核对报告 of one
    household on demand; of one street's, with ``street_code``: a province's reports are
    written a street at a time), ready for a report (masked, labelled in Chinese), with the
    flag's status, how many days it has been open (since a flag on the same evidence was first
    raised) and whether it is overdue."""
    chosen = None if flag_ids is None else [int(i) for i in flag_ids]
    with session_scope(settings.database_url) as session:
        as_of = session.get(Run, run_id).as_of
        query = (select(Flag.id.label("flag_id"), Flag.kind, Flag.due_date, Flag.street_code,
                        Flag.community_code, Flag.status.label("flag_state"), Flag.resolution,
                        Flag.household_id, Household.household_code, Household.status,
                        Household.current_benefit, Assessment.household_size,
                        Assessment.per_capita_income, Assessment.benefit, Assessment.details)
                 .join(Household, Household.id == Flag.household_id)
                 .join(Assessment, (Assessment.household_id == Flag.household_id)
                       & (Assessment.run_id == Flag.run_id))
                 .where(Flag.run_id == run_id))
        heads = (select(Household.household_code, Member.name_masked, Member.id_masked)
                 .join(Member).where(Member.relation == "户主"))
        # in the order decide gave them (a bare select comes back in whatever order the
        # database's plan reads: the 核对报告 listed a flag's reasons differently run to run)
        reasons = (select(FlagReason.flag_id, FlagReason.code, FlagReason.detail).join(Flag)
                   .where(Flag.run_id == run_id).order_by(FlagReason.flag_id, FlagReason.id))
        if chosen is not None or street_code is not None:  # the heads of these flags only
            heads = heads.join(Flag, Flag.household_id == Household.id).where(
                Flag.run_id == run_id)
        if chosen is not None:
            query, heads, reasons = (q.where(Flag.id.in_(chosen)) for q in (query, heads, reasons))
        if street_code is not None:
            query, heads, reasons = (q.where(Flag.street_code == street_code)
                                     for q in (query, heads, reasons))
        flags = pd.DataFrame(session.execute(query).mappings().all())
        heads = pd.DataFrame(session.execute(heads).mappings().all(),
                             columns=["household_code", "name_masked", "id_masked"])
        reasons = pd.DataFrame(session.execute(reasons).mappings().all(),
                               columns=["flag_id", "code", "detail"])
        # a street's flags only: their ids lie in the few row groups of its shards
        cited = chosen if street_code is None else (
            flags["flag_id"].tolist() if len(flags) else [])
        evidence = evidence_files.run_evidence(
            session, settings.home, run_id, cited,
            columns=["flag_id", "source_kind", "record_ref", "item", "period_end"])
        first_seen = _first_seen(session, run_id, chosen, street_code)
    if flags.empty:
        return pd.DataFrame(columns=list(HEADERS) + EXTRA_COLUMNS)
    flags["first_seen"] = flags["flag_id"].map(first_seen)
    return _compose(flags, heads, reasons, evidence, as_of)


def _first_seen(session, run_id: int, flag_ids: list[int] | None,  # noqa: ANN001
                street_code: str | None = None) -> pd.Series:
    """flag id → as-of date of the first run that raised a flag on the same evidence."""
    now, earlier = aliased(Flag), aliased(Flag)
    query = (select(now.id, func.min(Run.as_of))
             .join(earlier, (earlier.household_id == now.household_id)
                   & (earlier.evidence_digest == now.evidence_digest))
             .join(Run, Run.id == earlier.run_id)
             .where(now.run_id == run_id).group_by(now.id))
    if flag_ids is not None:
        query = query.where(now.id.in_(flag_ids))
    if street_code is not None:
        query = query.where(now.street_code == street_code)
    return pd.Series(dict(session.execute(query).all()), dtype=object)


def reason_text(code: str, detail: dict | None) -> str:
    """The reason in Chinese, with its figures where they tell the officer what to do
    (codes.yaml ``figures``)."""
    return codes.reason_sentence(code, detail, "zh")


def _compose(flags: pd.DataFrame, heads: pd.DataFrame, reasons: pd.DataFrame,
             evidence: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    texts = [reason_text(c, d) for c, d in zip(reasons["code"], reasons["detail"], strict=True)]
    reason_text_by_flag = reasons.assign(text=texts).groupby("flag_id")["text"].agg("；".join)
    # Deaths, registrations and assets first: monthly income records are many and alike.
    monthly = set(codes.items("income") + codes.items("contribution"))
    evidence = evidence.assign(
        monthly=evidence["item"].isin(monthly),
        text=evidence["source_kind"].map(lambda k: codes.label("feed_kinds", k)) + "·"
        + evidence["item"].map(lambda i: codes.label("items", i)) + "·"
        + evidence["record_ref"]).sort_values(["flag_id", "monthly", "text"])
    evidence_text = evidence.drop_duplicates(["flag_id", "text"]).groupby("flag_id")[
        "text"].agg(lambda s: "；".join(s.iloc[:8]))
    table = flags.merge(heads, on="household_code", how="left")
    table["street"] = table["street_code"].map(jurisdictions.street_name)
    table["community"] = table["community_code"].map(jurisdictions.community_name)
    table["head_name"], table["head_id"] = table.pop("name_masked"), table.pop("id_masked")
    table["status"] = table["status"].map(lambda s: codes.label("household_status", s))
    table["flag"] = table["kind"].map(lambda k: codes.label("flags", k))
    table["action"] = table["kind"].map(lambda k: codes.flags()[k]["action_zh"])
    table["reasons"] = table["flag_id"].map(reason_text_by_flag).fillna("")
    table["evidence"] = table["flag_id"].map(evidence_text).fillna("")
    table["standard"] = table["details"].map(lambda d: (d or {}).get("standard"))
    for col in ("per_capita_income", "benefit", "current_benefit", "standard"):
        table[col] = pd.to_numeric(table[col], errors="coerce").round(2)
    _add_state(table, as_of)
    table["due_date"] = table["due_date"].astype("string").fillna("")
    table = table.sort_values(["street_code", "community_code"], kind="stable")
    table = table.iloc[table["kind"].map({k: i for i, k in enumerate(KIND_ORDER)}).argsort(
        kind="stable")]
    return table.sort_values(["street_code"], kind="stable")[
        list(HEADERS) + EXTRA_COLUMNS].reset_index(drop=True)


def _add_state(table: pd.DataFrame, as_of: dt.date) -> None:
    """Status label, days open and overdue (past its due date) for flags still waiting for an
    officer; KEEP asks for no action, so it is never waiting."""
    resolved = table["flag_state"].eq("resolved")
    waiting = ~resolved & ~table["kind"].isin(codes.no_action_kinds())
    label = table["flag_state"].map(FLAG_STATUSES)
    outcome = table["resolution"].map(lambda r: {"confirmed": "确认", "overridden": "不予采纳",
                                                 "home_visit": "转入户核查"}.get(r, ""))
    table["flag_status"] = label.where(~resolved, label + "（" + outcome + "）")
    seen = pd.to_datetime(table["first_seen"].fillna(as_of))
    table["days_open"] = (pd.Timestamp(as_of) - seen).dt.days.where(waiting)
    due = pd.to_datetime(table["due_date"])
    table["overdue"] = waiting & due.notna() & (due < pd.Timestamp(as_of))


def evidence_table(settings: Settings, run_id: int,
                   street_code: str | None = None) -> pd.DataFrame:
    """One row per evidence record a flag of the run cites (of one street's flags, with
    ``street_code``), labels in Chinese, no identities."""
    with session_scope(settings.database_url) as session:
        query = (select(Flag.id.label("flag_id"), Household.household_code, Flag.kind,
                        Flag.street_code, Flag.community_code)
                 .join(Household, Household.id == Flag.household_id)
                 .where(Flag.run_id == run_id))
        if street_code is not None:
            query = query.where(Flag.street_code == street_code)
        flags = pd.DataFrame(session.execute(query).all(), columns=[
            "flag_id", "household_code", "kind", "street_code", "community_code"])
        cited = evidence_files.run_evidence(
            session, settings.home, run_id,
            None if street_code is None else flags["flag_id"].tolist())
    rows = (flags.merge(cited, on="flag_id")
            .sort_values(["household_code", "source_kind", "record_ref"], kind="stable")
            .drop(columns="flag_id").reset_index(drop=True))
    # labels looked up once per distinct value: a run cites millions of records
    rows["flag"] = labelled(rows["kind"], "flags")
    rows["source"] = labelled(rows["source_kind"], "feed_kinds")
    rows["item"] = labelled(rows["item"], "items")
    rows["match_grade"] = rows["match_grade"].astype(object).map(MATCH_GRADES)
    for col in ("period_start", "period_end"):
        rows[col] = rows[col].astype("string").fillna("")
    return rows


def labelled(values: pd.Series, table: str) -> pd.Series:
    """codes.yaml labels of ``values`` (codes, or a categorical of codes), one lookup per
    distinct value."""
    values = values.astype(object)
    return values.map({v: codes.label(table, v) for v in values.dropna().unique()})


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """``safe_cell`` on every text cell of ``frame``, by column (a report has millions), the
    first characters compared in Arrow."""
    out = {}
    for name, column in frame.items():
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            risky = _formula_like(column)
            if risky.any():
                column = column.where(~risky, "'" + column.astype(str))
        out[name] = column
    return pd.DataFrame(out, index=frame.index)


def _formula_like(column: pd.Series) -> np.ndarray:
    """Which cells of a text column start as a formula would (``_FORMULA_START``)."""
    try:
        text = pa.array(column.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: the slower, general way
        return column.str.startswith(_FORMULA_START).eq(True).to_numpy(dtype=bool)
    first = pc.utf8_slice_codeunits(text, 0, 1)
    found = pc.is_in(first, value_set=pa.array(list(_FORMULA_START), pa.string()))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


# xlsxwriter: text stays text (no formula, link or number read into it), rows streamed to disk
_WORKBOOK_OPTIONS = {"constant_memory": True, "strings_to_formulas": False,
                     "strings_to_urls": False, "strings_to_numbers": False}
_FORMATS = {"header": {"bold": True, "font_color": "#FFFFFF", "bg_color": "#1F4E79",
                       "align": "center", "valign": "vcenter", "text_wrap": True},
            "title": {"bold": True, "font_size": 14}}
EXCEL_MAX_ROWS = 1_048_576  # rows of a worksheet, header included; xlsxwriter refuses more
EVIDENCE_WIDTHS = [14, 12, 22, 16, 14, 12, 12, 12, 10, 10]
EVIDENCE_ROWS_PER_SHEET = EXCEL_MAX_ROWS - 1  # below the header row
# what a workbook without an evidence sheet says about where the evidence is: a street's
# (in its communities' folders) and a community's (the CSV beside it)
EVIDENCE_ELSEWHERE = ("证据明细 / evidence",
                      "见本街道各社区文件夹的 evidence.csv 及各户核对报告；"
                      "in each community's evidence.csv and the households' 核对报告")
EVIDENCE_CSV = "evidence.csv"
EVIDENCE_BESIDE = ("证据明细 / evidence",
                   "见同一文件夹的 evidence.csv（每条被引用的记录一行）及各户核对报告；"
                   "evidence.csv in this folder (one row per cited record) and the 核对报告")


def write_tables(rows: pd.DataFrame, evidence: pd.DataFrame | None, stem: Path,
                 context: SheetContext) -> None:
    """``stem``.csv (the flag list) and ``stem``.xlsx (summary, flag list and, unless
    ``evidence`` is None, the evidence: over as many sheets 证据, 证据(2), … as Excel's row
    limit needs)."""
    report = neutralised(rows[list(HEADERS)].rename(columns=HEADERS))
    _csv_numbers(report).to_csv(stem.with_suffix(".csv"), index=False, encoding="utf-8-sig")
    with xlsxwriter.Workbook(str(stem.with_suffix(".xlsx")), _WORKBOOK_OPTIONS) as book:
        formats = {name: book.add_format(spec) for name, spec in _FORMATS.items()}
        _summary_sheet(book.add_worksheet("汇总"), formats, _summary_lines(rows, context))
        _table_sheet(book.add_worksheet("核对结论"), formats["header"], report, _WIDTHS)
        if evidence is None:
            return
        cited = neutralised(evidence[list(EVIDENCE_HEADERS)].rename(columns=EVIDENCE_HEADERS))
        per_sheet = EVIDENCE_ROWS_PER_SHEET
        for part, start in enumerate(range(0, max(len(cited), 1), per_sheet), start=1):
            _table_sheet(book.add_worksheet("证据" if part == 1 else f"证据({part})"),
                         formats["header"], cited.iloc[start:start + per_sheet],
                         EVIDENCE_WIDTHS)


def write_evidence_csv(evidence: pd.DataFrame, path: Path) -> int:
    """The cited records, one row each, as a CSV that opens in Excel (UTF-8 with BOM, Chinese
    headers, formula-like text neutralised) written by Arrow: no row limit, and ≈ 0.2 µs a cell
    against xlsxwriter's 4 µs (a 1M review cites 35 M records). Returns the rows written."""
    cited = neutralised(evidence[list(EVIDENCE_HEADERS)].rename(columns=EVIDENCE_HEADERS))
    amount = EVIDENCE_HEADERS["amount"]
    cited[amount] = pd.to_numeric(cited[amount]).round(2)  # 0.30000000000000004 reads 0.3
    table = pa.Table.from_pandas(cited, preserve_index=False)
    with path.open("wb") as out:
        out.write(codecs.BOM_UTF8)
        pa_csv.write_csv(table, out)
    return table.num_rows


def _summary_sheet(sheet, formats: dict, lines: list[tuple[str, list]]) -> None:  # noqa: ANN001
    for column, width in enumerate((22, 60, 10, 10, 10)):
        sheet.set_column(column, column, width)
    for line, (style, cells) in enumerate(lines):
        sheet.write_row(line, 0, _cells_of_line(cells), formats.get(style))


def _table_sheet(sheet, header, table: pd.DataFrame,  # noqa: ANN001 (xlsxwriter's)
                 widths: list[int]) -> None:
    """A header row (frozen, with an autofilter) and the table's rows, each written whole by
    ``write_row`` from columns converted to Python values once."""
    for i in range(len(table.columns)):
        sheet.set_column(i, i, widths[i] if i < len(widths) else 14)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, len(table), max(len(table.columns) - 1, 0))
    sheet.write_row(0, 0, list(table.columns), header)
    write_row = sheet.write_row
    columns = [_cells_of_column(table.iloc[:, i]) for i in range(table.shape[1])]
    for line, record in enumerate(zip(*columns, strict=True), start=1):
        write_row(line, 0, record)


def _cells_of_column(column: pd.Series) -> list:
    """A column's cells as Python values for ``write_row``: numbers as int/float, text as str,
    NaN, None and <NA> as None (no cell)."""
    values = column.to_numpy(dtype=object)  # numpy numbers become Python int/float
    missing = column.isna().to_numpy()
    if missing.any():
        values[missing] = None
    if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
        for i in np.flatnonzero(_rich_like(values)):
            values[i] = _as_rich_run(values[i])
    return values.tolist()


def _cells_of_line(cells: list) -> list:
    """A summary line's cells: as ``_cells_of_column`` does, cell by cell."""
    return [_as_rich_run(c) if isinstance(c, str) and _looks_rich(c) else c for c in cells]


def _rich_like(values: np.ndarray) -> np.ndarray:
    """Which text cells xlsxwriter would write as raw XML (``_looks_rich``)."""
    try:
        text = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: cell by cell
        return np.array([isinstance(v, str) and _looks_rich(v) for v in values], dtype=bool)
    found = pc.and_(pc.starts_with(text, "<r>"), pc.ends_with(text, "</r>"))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _looks_rich(text: str) -> bool:
    # In constant-memory mode xlsxwriter writes a string that starts with <r> and ends with
    # </r> unescaped, as the runs of a rich string: data such as "<r>&</r>" would break the file.
    return text.startswith("<r>") and text.endswith("</r>")


def _as_rich_run(text: str) -> str:
    """``text`` as one escaped rich-string run: xlsxwriter passes it through, Excel shows
    ``text`` exactly."""
    space = ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ""
    return f"<r><t{space}>{xml_escape(text)}</t></r>"


def _csv_numbers(report: pd.DataFrame) -> pd.DataFrame:
    """Amounts as the workbook shows them (``_csv_number``), by column."""
    out = report.copy()
    for name, column in report.items():
        if pd.api.types.is_float_dtype(column.dtype):
            values = column.to_numpy(dtype=float)
            whole = np.isfinite(values) & (values == np.round(values))
            text = np.where(whole, np.char.mod("%.0f", np.nan_to_num(values)),
                            np.char.mod("%.2f", np.nan_to_num(values)))
            out[name] = np.where(np.isnan(values), "", text).astype(object)
        elif column.dtype == object:
            out[name] = column.map(_csv_number)
    return out


def _csv_number(value: object) -> object:
    """750.0 → "750", 1812.6 → "1812.60": the CSV shows amounts as the workbook does."""
    if isinstance(value, float) and not isinstance(value, bool):
        if value != value:  # NaN: an empty cell
            return ""
        return f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
    return value


def _write_pair(rows: pd.DataFrame, stem: Path) -> None:
    """The flag list alone (used by batch reports): CSV and a workbook without evidence."""
    write_tables(rows, None, stem, SheetContext(title=stem.name))


def _summary_lines(rows: pd.DataFrame, context: SheetContext) -> list[tuple[str, list]]:
    """The summary sheet: title, facts, then counts per kind with open and overdue."""
    lines: list[tuple[str, list]] = [("title", [safe_cell(context.title)])]
    lines += [("plain", [label, safe_cell(value)]) for label, value in context.facts]
    lines.append(("plain", []))  # a blank line
    lines.append(("header", ["核对结论", "处理建议", "户数", "其中待办", "其中逾期"]))
    kinds = rows["kind"].to_numpy()
    waiting, overdue = rows["days_open"].notna().to_numpy(), rows["overdue"].to_numpy(bool)
    for kind in KIND_ORDER:
        mine = kinds == kind
        lines.append(("plain", [codes.label("flags", kind), codes.flags()[kind]["action_zh"],
                                int(mine.sum()), int((mine & waiting).sum()),
                                int((mine & overdue).sum())]))
    lines.append(("plain", ["合计", "", len(rows), int(waiting.sum()), int(overdue.sum())]))
    return lines
