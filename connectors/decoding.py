"""Decode a partner's plaintext feed (bytes or file) into a DataFrame of strings, guessing nothing.

Encodings: UTF-8, UTF-8 with BOM, UTF-16 with BOM, GBK/GB18030 (GB18030 is a superset of GBK, so
GBK files decode as GB18030). Formats: CSV, XLSX (first visible sheet, via openpyxl) and JSON Lines.

Every column is ``str``: values are exactly as in the file (no stripping, no type inference; an
XLSX number is written as the number it holds). Two columns are added in front:

* ``_line``: the 1-based line (CSV, JSON Lines; a quoted field spanning lines counts each line) or
  sheet row (XLSX) where the row starts, as the partner would see it in an editor.
* ``_problem``: ``""`` for a sound row, else ``"<CODE>: <message>"`` for a row that could not be
  read as the header says (wrong number of fields, a JSON line that is not an object, an ID that
  Excel stored as a number and so lost digits). Such rows are kept, never dropped: intake
  quarantines them, so received = accepted + quarantined still adds up.

Problems with the whole file (unknown encoding, no header, repeated column names, broken quoting)
raise ``DecodeError`` with the line to look at.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd

LINE = "_line"
PROBLEM = "_problem"
CSV = "text/csv"
JSONL = "application/jsonl"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CONTENT_TYPES = (CSV, JSONL, XLSX)
_SUFFIXES = {".csv": CSV, ".txt": CSV, ".jsonl": JSONL, ".ndjson": JSONL, ".xlsx": XLSX}
# Integers above this lost digits when Excel stored them as floating point (15 significant digits).
_EXACT_FLOAT_LIMIT = 10**15


class DecodeError(ValueError):
    """The file as a whole cannot be read; the message says where and what to do."""


# ----------------------------------------------------------------------------------- detection


def detect_encoding(data: bytes) -> str:
    """``utf-8-sig``, ``utf-16``, ``utf-8`` or ``gb18030``; raises ``DecodeError`` otherwise."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            data.decode("gb18030")
            return "gb18030"
        except UnicodeDecodeError:
            line = data.count(b"\n", 0, utf8_error.start) + 1
            raise DecodeError(
                f"line {line}: the bytes are neither UTF-8 nor GBK/GB18030; save the file as "
                "UTF-8 (preferred) or GB18030"
            ) from None


def detect_content_type(data: bytes, filename: str | os.PathLike[str] | None = None) -> str:
    """From the file name's suffix if it has a known one, else from the first bytes."""
    if filename is not None and (found := _SUFFIXES.get(Path(filename).suffix.lower())):
        return found
    if data.startswith(b"PK\x03\x04"):
        return XLSX
    head = data[:64].lstrip(codecs.BOM_UTF8).lstrip()
    return JSONL if head.startswith(b"{") else CSV


# ------------------------------------------------------------------------------------ decoding


def decode_bytes(
    data: bytes, content_type: str | None = None, *, filename: str | os.PathLike[str] | None = None
) -> pd.DataFrame:
    """Decode ``data`` (CSV, JSON Lines or XLSX) into a frame of strings with ``_line``.

    The frame's ``attrs`` record the ``encoding`` and ``content_type`` that were used.
    """
    kind = content_type or detect_content_type(data, filename)
    if kind == XLSX:
        frame, encoding = _xlsx_frame(data), "xlsx"
    elif kind in (CSV, JSONL):
        encoding = detect_encoding(data)
        text = data.decode(encoding)
        frame = _csv_frame(text) if kind == CSV else _jsonl_frame(text)
    else:
        raise DecodeError(f"content type {kind!r} is not supported; use one of "
                          f"{', '.join(CONTENT_TYPES)}")
    frame.attrs.update(encoding=encoding, content_type=kind)
    return frame


def decode_file(path: str | os.PathLike[str], content_type: str | None = None) -> pd.DataFrame:
    """``decode_bytes`` of a file; the type comes from ``content_type`` or the file itself."""
    return decode_bytes(Path(path).read_bytes(), content_type, filename=path)


def _frame(header: list[str], rows: list[list[str]], lines: list[int],
           problems: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame = frame.fillna("").astype(str) if len(frame) else frame.astype(str)
    frame.insert(0, PROBLEM, pd.Series(problems, dtype=object).astype(str))
    frame.insert(0, LINE, pd.Series(lines, dtype="int64"))
    return frame


def _header(names: list[str], where: str) -> list[str]:
    clean = [name.strip() for name in names]
    clean = [name or f"_column{i + 1}" for i, name in enumerate(clean)]
    seen: set[str] = set()
    for name in clean:
        if name in seen:
            raise DecodeError(f"{where}: column {name!r} appears twice in the header")
        seen.add(name)
    if {LINE, PROBLEM} & seen:
        raise DecodeError(f"{where}: the header uses a reserved column name ({LINE}, {PROBLEM})")
    return clean


# ----------------------------------------------------------------------------------------- CSV


def _csv_frame(text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[str] = []
    start = 1
    try:
        for record in reader:
            if not record:  # a blank line: no row, but it still counts as a line
                start = reader.line_num + 1
                continue
            if header is None:
                header = _header(record, f"line {start}")
            else:
                rows.append(record)
                lines.append(start)
                problems.append(_field_count_problem(len(record), len(header)))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DecodeError(f"line {reader.line_num}: the CSV cannot be read ({exc}); check the "
                          "quotes on this line") from None
    if header is None:
        raise DecodeError("the file has no header line; the first line must name the columns")
    width = len(header)
    rows = [row[:width] + [""] * (width - len(row)) for row in rows]
    return _frame(header, rows, lines, problems)


def _field_count_problem(found: int, expected: int) -> str:
    if found == expected:
        return ""
    return f"FIELD_COUNT: {found} fields where the header has {expected}"


# --------------------------------------------------------------------------------- JSON Lines


def _json_text(value: Any) -> tuple[str, str]:
    """The value as a string (numbers keep their text) and a problem ('' if none)."""
    if isinstance(value, str):
        return value, ""
    if value is None:
        return "", ""
    if isinstance(value, bool):
        return ("true" if value else "false"), ""
    return json.dumps(value, ensure_ascii=False), "NESTED: a value is an object or a list"


def _jsonl_frame(text: str) -> pd.DataFrame:
    columns: dict[str, None] = {}
    records: list[dict[str, str]] = []
    lines: list[int] = []
    problems: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        record, problem = _json_record(line)
        columns.update(dict.fromkeys(record))
        records.append(record)
        lines.append(number)
        problems.append(problem)
    if not columns and not records:
        raise DecodeError("the JSON Lines file has no records")
    header = _header(list(columns), "JSON Lines keys")
    rows = [[record.get(name, "") for name in header] for record in records]
    return _frame(header, rows, lines, problems)


def _json_record(line: str) -> tuple[dict[str, str], str]:
    try:
        # Numbers stay as written: "1234.50" must not become 1234.5.
        value = json.loads(line, parse_float=str, parse_int=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        return {}, f"BAD_JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(value, dict):
        return {}, "NOT_OBJECT: the line is JSON but not an object"
    record, problem = {}, ""
    for key, item in value.items():
        record[key], issue = _json_text(item)
        problem = problem or issue
    return record, problem


# ---------------------------------------------------------------------------------------- XLSX


def _cell_text(value: Any) -> tuple[str, str]:
    if value is None:
        return "", ""
    if isinstance(value, str):
        return value, ""
    if isinstance(value, bool):
        return ("TRUE" if value else "FALSE"), ""
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat(), ""
        return value.isoformat(sep=" "), ""
    if isinstance(value, date | time):
        return value.isoformat(), ""
    if isinstance(value, int | float):
        return _number_text(value)
    return str(value), ""


def _number_text(value: int | float) -> tuple[str, str]:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) >= _EXACT_FLOAT_LIMIT:
        return str(value), ("NUMERIC_ID: a long number was stored as a number in Excel and lost "
                            "digits; format the column as text and export again")
    return (str(value) if isinstance(value, int) else repr(value)), ""


def _first_visible_sheet(book: Any) -> Any:
    for sheet in book.worksheets:
        if sheet.sheet_state == "visible":
            return sheet
    raise DecodeError("the workbook has no visible sheet")


def _xlsx_frame(data: bytes) -> pd.DataFrame:
    import openpyxl  # imported here: only XLSX feeds pay for it

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged archive
        raise DecodeError(f"the XLSX workbook cannot be opened ({exc})") from None
    try:
        sheet = _first_visible_sheet(book)
        return _sheet_frame(sheet)
    finally:
        book.close()


def _sheet_frame(sheet: Any) -> pd.DataFrame:
    header: list[str] | None = None
    rows, lines, problems = [], [], []
    for number, cells in enumerate(sheet.iter_rows(values_only=True), start=sheet.min_row or 1):
        texts = [_cell_text(value) for value in cells]
        if all(text == "" for text, _ in texts):
            continue
        if header is None:
            header = _header([text for text, _ in texts], f"sheet {sheet.title!r} row {number}")
            while header and header[-1].startswith("_column"):  # unused trailing columns
                header.pop()
            continue
        extra = [text for text, _ in texts[len(header):] if text]
        issues = [issue for _, issue in texts if issue]
        if extra:
            issues.insert(0, _field_count_problem(len(header) + len(extra), len(header)))
        row = [text for text, _ in texts[: len(header)]]
        rows.append(row + [""] * (len(header) - len(row)))
        lines.append(number)
        problems.append(issues[0] if issues else "")
    if header is None:
        raise DecodeError(f"sheet {sheet.title!r} is empty; the first row must name the columns")
    return _frame(header, rows, lines, problems)
