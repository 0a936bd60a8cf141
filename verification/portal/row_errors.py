"""Row-level errors of a batch file, said in plain words next to the rows they concern.

The validators (verification/intake/validate.py, verification/intake/roster.py) report each problem
as
(line, field, reason code, English message). Staff read Chinese: this module turns the reason
code and the field's contract entry (schemas/batch.json: title, enum, limits) into a sentence that
says what is wrong and what to write instead. Values are echoed only for coded fields; ID numbers
and names are never echoed, only masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from schemas import contract_for
from verification.intake import identifiers, problems

_PRIVATE_FIELDS = {"id_number", "name"}


@dataclass
class RowErrors:
    """One line of the file with everything wrong in it."""

    line: int
    household_code: str
    member: str  # masked name
    member_id: str  # masked ID number
    problems: list[dict[str, str]] = field(default_factory=list)  # field, field_title, message


@cache
def _fields(kind: str = "batch") -> dict[str, dict[str, Any]]:
    return {spec["name"]: spec for spec in contract_for(kind).fields}


def explain(reason: str, field_name: str, value: str, lang: str, fallback: str = "",
            kind: str = "batch") -> str:
    """One problem with field ``field_name`` of contract ``kind`` as a sentence in ``lang``."""
    spec = _fields(kind).get(field_name, {"name": field_name, "title": field_name})
    return problems.sentence(reason, spec, lang, value, fallback)


_FILE_PROBLEMS = (  # whole-file problems (connectors/decoding.py, roster.py) in plain Chinese
    (re.compile(r"lacks the required column\(s\) ([^(]+?) \(found"),
     "表头缺少必填列：{0}。请使用批次文件模板，第一行写列名，不要合并单元格"),
    (re.compile(r"mixes encodings"), "文件中混用了不同的文字编码（可能从其他文件粘贴了行），"
                                     "请把整个文件另存为 UTF-8 后重新提交"),
    (re.compile(r"neither UTF-8 nor GBK"),
     "无法识别文件的文字编码，请另存为 UTF-8 或 GBK 编码的 CSV"),
    (re.compile(r"no header line|is empty; the first row must name"),
     "文件没有表头行，第一行应为列名"),
    (re.compile(r"appears twice in the header"), "表头中有重复的列名"),
    (re.compile(r"workbook cannot be opened|no visible sheet"),
     "无法打开该 Excel 文件，请确认是 .xlsx 格式"),
)


def explain_file_problem(message: str, lang: str) -> str:
    """A whole-file problem (the file cannot be read as a table) in plain words."""
    if lang == "zh":
        for pattern, text in _FILE_PROBLEMS:
            found = pattern.search(message)
            if found:
                return text.format(*found.groups())
    return message


def group_by_row(frame: pd.DataFrame, problems: pd.DataFrame, lang: str,
                 limit: int = 500) -> list[RowErrors]:
    """Attach each problem to its row of ``frame`` (the decoded file, with ``_line``)."""
    rows = frame.set_index("_line") if "_line" in frame else frame
    titles = {name: (spec["title"] if lang == "zh" else spec.get("x-title-en", spec["title"]))
              for name, spec in _fields().items()}
    out: dict[int, RowErrors] = {}
    for rec in problems.sort_values(["line", "field"]).itertuples(index=False):
        line = int(rec.line)
        if line not in out:
            if len(out) >= limit:
                break
            out[line] = _row(rows, line)
        value = _cell(rows, line, rec.field)
        shown = "" if rec.field in _PRIVATE_FIELDS else value
        out[line].problems.append({
            "field": rec.field, "field_title": titles.get(rec.field, rec.field),
            "message": explain(rec.reason, rec.field, shown, lang, rec.message)})
    return list(out.values())


def _cell(rows: pd.DataFrame, line: int, name: str) -> str:
    if line not in rows.index or name not in rows.columns:
        return ""
    value = rows.at[line, name]
    return "" if pd.isna(value) else str(value).strip()


def _row(rows: pd.DataFrame, line: int) -> RowErrors:
    raw_id, raw_name = _cell(rows, line, "id_number"), _cell(rows, line, "name")
    try:
        masked_id = identifiers.mask_id(identifiers.canonical_id(raw_id)) if raw_id else ""
    except identifiers.InvalidIdentifier:
        masked_id = _mask_raw(raw_id)
    masked_name = identifiers.mask_name(raw_name) if raw_name else ""
    return RowErrors(line=line, household_code=_cell(rows, line, "household_code"),
                     member=masked_name, member_id=masked_id)


def _mask_raw(text: str) -> str:
    """An ID that failed validation is still personal: keep only its first 6 and last 2."""
    if len(text) <= 8:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 8) + text[-2:]


# errors.csv: what staff open in Excel (UTF-8 with BOM, Chinese headers, one problem a line).
ERRORS_CSV_HEADERS = {"line": "行号", "household_code": "家庭编号", "field_title": "字段",
                      "field": "字段代码", "message": "问题说明", "message_en": "说明（英文）",
                      "reason": "原因代码"}


def error_lines(frame: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Every problem of a batch file as a row: line, household code, field (title and name),
    the Chinese and English sentences and the reason code; ID numbers and names never echoed."""
    zh = group_by_row(frame, problems, "zh", limit=len(problems) + 1)
    en = {row.line: row for row in group_by_row(frame, problems, "en", limit=len(problems) + 1)}
    reasons = problems.sort_values(["line", "field"])
    by_line: dict[int, list[str]] = {}
    for rec in reasons.itertuples(index=False):
        by_line.setdefault(int(rec.line), []).append(str(rec.reason))
    records = []
    for row in zh:
        english = en[row.line].problems
        for i, problem in enumerate(row.problems):
            records.append({"line": row.line, "household_code": row.household_code,
                            "field_title": problem["field_title"], "field": problem["field"],
                            "message": problem["message"],
                            "message_en": english[i]["message"] if i < len(english) else "",
                            "reason": by_line[row.line][i]})
    return pd.DataFrame(records, columns=list(ERRORS_CSV_HEADERS))


def error_line(r: Any) -> str:  # noqa: ANN401 (a row of error_lines or of a quarantine)
    """One problem: line, household, field and what is wrong (Chinese, English beside)."""
    if hasattr(r, "message_en"):
        return (f"第 {r.line} 行 家庭 {r.household_code or '—'} 「{r.field_title}」："
                f"{r.message} / line {r.line}: {r.field}: {r.message_en}")
    return f"line {r.line}: {r.field}: {r.message} [{r.reason}]"


def write_errors_csv(errors: pd.DataFrame, path: Path) -> None:
    """``errors`` (from ``error_lines``) with Chinese headers and a BOM, so Excel reads it;
    text a spreadsheet would run as a formula is neutralised (the file echoes the batch)."""
    from verification.reports.flag_reports import safe_cell

    errors.map(safe_cell).rename(columns=ERRORS_CSV_HEADERS).to_csv(
        path, index=False, encoding="utf-8-sig")


def read_errors_csv(path: Path, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` problems of an errors.csv and how many there are in all."""
    if not path.is_file():
        return [], 0
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    table = table.rename(columns={v: k for k, v in ERRORS_CSV_HEADERS.items()})
    if "message" not in table:  # an errors.csv written before the Chinese headers
        return [], len(table)
    return table.head(limit).to_dict("records"), len(table)
