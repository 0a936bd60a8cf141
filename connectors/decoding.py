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

``decode_bytes`` / ``decode_file`` return one frame; ``iter_decode_file`` yields frames of a bounded
number of rows for feeds too large to hold as one frame.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO

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


# Python's CSV reader refuses a field over 131,072 characters, which rejects the whole file. A
# partner feed is read with a wider limit so such a row can be quarantined on its own (intake
# checks field sizes); the limit is process-wide, so it is raised under a lock and restored.
WIDE_FIELD_LIMIT = 1 << 30
_FIELD_LIMIT_LOCK = threading.Lock()


@contextmanager
def wide_fields() -> Iterator[None]:
    """Read CSV with fields up to ``WIDE_FIELD_LIMIT`` inside this block."""
    with _FIELD_LIMIT_LOCK:
        before = csv.field_size_limit(WIDE_FIELD_LIMIT)
        try:
            yield
        finally:
            csv.field_size_limit(before)


def decode_file(path: str | os.PathLike[str], content_type: str | None = None) -> pd.DataFrame:
    """``decode_bytes`` of a file; the type comes from ``content_type`` or the file itself."""
    return decode_bytes(Path(path).read_bytes(), content_type, filename=path)


def iter_decode_file(
    path: str | os.PathLike[str], content_type: str | None = None, *, batch_rows: int = 100_000
) -> Iterator[pd.DataFrame]:
    """Decode a large CSV or JSON Lines file in frames of at most ``batch_rows`` rows.

    Memory is O(batch). The encoding is checked over the whole file first, so a GBK byte near
    the end cannot surface after rows were already handed on. For JSON Lines, each frame has the
    keys seen in its own batch. An XLSX file comes as one frame.
    """
    with open(path, "rb") as fh:
        head = fh.read(64)
    kind = content_type or detect_content_type(head, path)
    if kind == XLSX:
        yield decode_file(path, XLSX)
        return
    if kind not in (CSV, JSONL):
        raise DecodeError(f"content type {kind!r} is not supported; use one of "
                          f"{', '.join(CONTENT_TYPES)}")
    encoding = detect_file_encoding(path)
    with open(path, encoding=encoding, newline="") as stream:
        batches = _csv_batches(stream, batch_rows) if kind == CSV else _jsonl_batches(
            stream, batch_rows)
        for frame in batches:
            frame.attrs.update(encoding=encoding, content_type=kind)
            yield frame


def detect_file_encoding(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """``detect_encoding`` for a file of any size, reading it in blocks."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if (failure := _first_failure(path, "utf-8", block)) is None:
        return "utf-8"
    if _first_failure(path, "gb18030", block) is None:
        return "gb18030"
    raise DecodeError(f"line {failure}: the bytes are neither UTF-8 nor GBK/GB18030; save the "
                      "file as UTF-8 (preferred) or GB18030")


def _first_failure(path: str | os.PathLike[str], encoding: str, block: int) -> int | None:
    """The line of the first byte that does not decode, or None if the whole file does."""
    if encoding == "utf-8" and _valid_utf8(path):
        return None  # the common answer, found without making a string of the whole file
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    with open(path, "rb") as fh:
        while True:
            data = fh.read(block)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                return lines + data.count(b"\n", 0, max(exc.start, 0))
            if not data:
                return None
            lines += data.count(b"\n")


# what _valid_utf8 checks at a time; a line longer than this is left to the Python decoder
_UTF8_CHECK_BYTES = 1 << 24


def _valid_utf8(path: str | os.PathLike[str]) -> bool:
    """Whether the file is UTF-8 throughout (what the strict UTF-8 decoder accepts), checked by
    Arrow's validator on what is read, split at line ends (never inside a UTF-8 sequence), with
    no copy but of the line each read cuts in two. False also when a line is too long to check
    this way (the caller then decodes as before, which also finds where the file fails)."""
    import numpy as np
    import pyarrow as pa

    def utf8(piece: bytes | memoryview) -> bool:
        offsets = pa.py_buffer(np.array([0, len(piece)], dtype=np.int64))
        text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(piece)])
        try:
            text.validate(full=True)
        except pa.ArrowInvalid:
            return False
        return True

    pending = b""  # the start of a line that the last read ended in
    with open(path, "rb") as fh:
        while data := fh.read(_UTF8_CHECK_BYTES):
            first, last = data.find(b"\n"), data.rfind(b"\n")
            if first < 0:
                pending += data
                if len(pending) > _UTF8_CHECK_BYTES:
                    return False
                continue
            if not (utf8(pending + data[:first + 1])
                    and utf8(memoryview(data)[first + 1:last + 1])):
                return False
            pending = data[last + 1:]
    return utf8(pending)


def _frame(header: list[str], rows: list[list[str]], lines: list[int],
           problems: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame = frame.fillna("").astype(str) if len(frame) else frame.astype(str)
    frame.insert(0, PROBLEM, pd.Series(problems, dtype=object).astype(str))
    frame.insert(0, LINE, pd.Series(lines, dtype="int64"))
    return frame


def _header(names: list[str], where: str, *, tidy: bool = True) -> list[str]:
    """Column names; ``tidy`` strips them and names blank ones (a CSV or sheet header row).
    JSON keys are taken as they are, since rows are looked up by them."""
    clean = [name.strip() for name in names] if tidy else list(names)
    clean = [name or f"_column{i + 1}" for i, name in enumerate(clean)] if tidy else clean
    seen: set[str] = set()
    for name in clean:
        if name in seen:
            raise DecodeError(f"{where}: column {name!r} appears twice in the header")
        seen.add(name)
    if {LINE, PROBLEM} & seen:
        raise DecodeError(f"{where}: the header uses a reserved column name ({LINE}, {PROBLEM})")
    return clean


# ----------------------------------------------------------------------------------------- CSV


def _csv_records(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields) for every non-blank record, header included."""
    reader = csv.reader(stream, strict=True)
    start = 1
    try:
        for record in reader:
            if record:  # a blank line is no row, but it still counts as a line
                yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DecodeError(f"line {reader.line_num}: the CSV cannot be read ({exc}); check the "
                          "quotes on this line") from None


def _csv_batches(stream: TextIO, batch_rows: int | None) -> Iterator[pd.DataFrame]:
    records = _csv_records(stream)
    first = next(records, None)
    if first is None:
        raise DecodeError("the file has no header line; the first line must name the columns")
    header = _header(first[1], f"line {first[0]}")
    width = len(header)
    emitted = False
    for batch in _batched(records, batch_rows):
        rows = [fields[:width] + [""] * (width - len(fields)) for _, fields in batch]
        problems = [_field_count_problem(len(fields), width) for _, fields in batch]
        emitted = True
        yield _frame(header, rows, [line for line, _ in batch], problems)
    if not emitted:
        yield _frame(header, [], [], [])


def _batched(items: Iterator[Any], size: int | None) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if size is not None and len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _csv_frame(text: str) -> pd.DataFrame:
    return next(_csv_batches(io.StringIO(text, newline=""), None))


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


def _jsonl_records(stream: TextIO) -> Iterator[tuple[int, dict[str, str], str]]:
    for number, raw in enumerate(stream, start=1):
        line = raw.rstrip("\r\n")
        if line.strip():
            record, problem = _json_record(line)
            yield number, record, problem


def _jsonl_batches(stream: TextIO, batch_rows: int | None) -> Iterator[pd.DataFrame]:
    """Columns are the keys seen in each batch, in order of first appearance."""
    emitted = False
    for batch in _batched(_jsonl_records(stream), batch_rows):
        columns = dict.fromkeys(key for _, record, _ in batch for key in record)
        header = _header(list(columns), "JSON Lines keys", tidy=False)
        rows = [[record.get(name, "") for name in header] for _, record, _ in batch]
        emitted = True
        yield _frame(header, rows, [n for n, _, _ in batch], [p for _, _, p in batch])
    if not emitted:
        raise DecodeError("the JSON Lines file has no records")


def _jsonl_frame(text: str) -> pd.DataFrame:
    # Split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings.
    return next(_jsonl_batches(iter(text.split("\n")), None))


_REPEATED = "\x00repeated"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, noting a repeated key (json.loads would keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            out.setdefault(_REPEATED, key)
        out[key] = value
    return out


def _json_record(line: str) -> tuple[dict[str, str], str]:
    try:
        # Numbers stay as written: "1234.50" must not become 1234.5.
        value = json.loads(line, parse_float=str, parse_int=str, parse_constant=str,
                           object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        return {}, f"BAD_JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(value, dict):
        return {}, "NOT_OBJECT: the line is JSON but not an object"
    record, problem = {}, ""
    if repeated := value.pop(_REPEATED, None):
        problem = f"DUPLICATE_KEY: {repeated} appears more than once"
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
