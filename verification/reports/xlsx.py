"""A streaming XLSX writer for the report tables: sheets are built as XML column by column in
Arrow's compute kernels (C++) and streamed into the zip, not cell by cell in Python.

xlsxwriter cost about 5 µs of CPU per cell; a district's evidence is tens of millions of cells.
Here a table column becomes its cells' XML in a few vectorised passes: text is escaped and written
as an inline string (``t="inlineStr"``), or as a shared string where a column has few distinct
values (labels, sources, grades: most of the evidence sheet); numbers as numbers; empty and NaN
cells are left out. So text is never read as a formula, a link or a number, whatever it holds
(``neutralised`` in flag_reports.py still prefixes ``= + - @`` for the CSV and for copying).

The package holds what Excel, LibreOffice and openpyxl need and nothing else: content types,
relationships, the workbook, one style sheet (plain, header, title, bold) and the worksheets
(column widths, a frozen header row and an autofilter on a table sheet).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Excel's limits: rows per sheet (header included) and characters of a sheet name
MAX_ROWS = 1_048_576
STYLES = {"plain": 0, "header": 1, "title": 2, "bold": 3}
_SHARED_SHARE = 0.05  # a text column is shared-string when distinct values ≤ 5 % of its cells
_CHUNK = 200_000  # rows per vectorised pass: bounds the XML held in memory at once
# characters XML 1.0 cannot hold, as RE2 (Arrow) and Python's re spell them
_ILLEGAL_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]"
_ILLEGAL = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"


@dataclass
class Sheet:
    """One worksheet: ``lines`` (a few styled rows, e.g. a summary) and then ``table`` (a
    header row in the header style, frozen, with an autofilter, and its rows)."""

    name: str
    widths: list[float] = field(default_factory=list)
    lines: list[tuple[str, list[object]]] = field(default_factory=list)  # (style, cells)
    table: pd.DataFrame | None = None


class _SharedStrings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def ids(self, values: list[str]) -> np.ndarray:
        return np.array([self.index.setdefault(v, len(self.index)) for v in values],
                        dtype=np.int64)

    def xml(self) -> bytes:
        items = "".join(f"<si>{_text_element(v)}</si>" for v in self.index)
        return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{_NS}" '
                f'count="{len(self.index)}" uniqueCount="{len(self.index)}">{items}</sst>'
                ).encode()


def write_workbook(path: Path, sheets: list[Sheet]) -> None:
    """Write ``sheets`` as the workbook ``path`` (replacing it)."""
    shared = _SharedStrings()
    tmp = path.with_name(path.name + ".partial")
    # level 1: a third of the CPU of the default 6, files about 15 % larger
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for number, sheet in enumerate(sheets, start=1):
            with archive.open(f"xl/worksheets/sheet{number}.xml", "w",
                              force_zip64=True) as out:
                _write_sheet(out, sheet, shared)
        parts = {"[Content_Types].xml": _content_types(len(sheets)), "_rels/.rels": _ROOT_RELS,
                 "xl/workbook.xml": _workbook(sheets), "xl/_rels/workbook.xml.rels":
                 _workbook_rels(len(sheets)), "xl/styles.xml": _STYLES_XML,
                 "xl/sharedStrings.xml": shared.xml()}
        for name, data in parts.items():
            archive.writestr(name, data)
    tmp.replace(path)


def _write_sheet(out, sheet: Sheet, shared: _SharedStrings) -> None:  # noqa: ANN001 (zip stream)
    table = sheet.table
    first_table_row = len(sheet.lines) + 1  # 1-based row of the table's header
    columns = max([len(c) for _, c in sheet.lines] + [len(table.columns) if table is not None
                                                      else 0] + [1])
    last_row = len(sheet.lines) + (len(table) + 1 if table is not None else 0)
    if last_row > MAX_ROWS:
        raise ValueError(f"sheet {sheet.name}: {last_row:,} rows, Excel holds {MAX_ROWS:,}")
    head = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_NS}"'
            f' xmlns:r="{_NS_R}"><dimension ref="A1:{_column(columns - 1)}{max(last_row, 1)}"/>']
    if table is not None:
        head.append('<sheetViews><sheetView workbookViewId="0"><pane ySplit="'
                    f'{first_table_row}" topLeftCell="A{first_table_row + 1}" activePane='
                    '"bottomLeft" state="frozen"/></sheetView></sheetViews>')
    if sheet.widths:
        head.append("<cols>" + "".join(f'<col min="{i}" max="{i}" width="{w + 0.71:.2f}" '
                                       'customWidth="1"/>'
                                       for i, w in enumerate(sheet.widths, start=1)) + "</cols>")
    head.append("<sheetData>")
    out.write("".join(head).encode())
    for number, (style, cells) in enumerate(sheet.lines, start=1):
        out.write(_line(number, cells, STYLES[style]).encode())
    if table is not None:
        out.write(_line(first_table_row, list(table.columns), STYLES["header"]).encode())
        for start in range(0, len(table), _CHUNK):
            part = table.iloc[start:start + _CHUNK]
            out.write(_rows_xml(part, first_table_row + 1 + start, shared))
    tail = "</sheetData>"
    if table is not None:
        tail += (f'<autoFilter ref="A{first_table_row}:{_column(len(table.columns) - 1)}'
                 f'{first_table_row + len(table)}"/>')
    out.write((tail + "</worksheet>").encode())


def _line(number: int, cells: list[object], style: int) -> str:
    """One row of a few cells, in Python (summary lines, a header)."""
    styled = f' s="{style}"' if style else ""
    xml = []
    for i, value in enumerate(cells):
        ref = f"{_column(i)}{number}"
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            if style:
                xml.append(f'<c r="{ref}"{styled}/>')
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, bool):
            xml.append(f'<c r="{ref}"{styled}><v>{value!r}</v></c>' if isinstance(value, float)
                       else f'<c r="{ref}"{styled}><v>{int(value)}</v></c>')
        else:
            xml.append(f'<c r="{ref}"{styled} t="inlineStr"><is>{_text_element(str(value))}'
                       "</is></c>")
    return f'<row r="{number}">{"".join(xml)}</row>'


def _rows_xml(part: pd.DataFrame, first: int, shared: _SharedStrings) -> memoryview:
    """The ``<row>`` elements of ``part`` (its first row is sheet row ``first``), as bytes."""
    numbers = pc.cast(pa.array(np.arange(first, first + len(part))), pa.string())
    cells = [_cells(part.iloc[:, i], _column(i), numbers, shared) for i in range(part.shape[1])]
    rows = pc.binary_join_element_wise(
        pc.binary_join_element_wise('<row r="', numbers, '">', ""), *cells, "</row>", "")
    rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset:rows.offset
                                                                + len(rows) + 1]
    return memoryview(rows.buffers()[2])[offsets[0]:offsets[-1]]


def _cells(column: pd.Series, letter: str, numbers: pa.Array,
           shared: _SharedStrings) -> pa.Array:
    """The ``<c>`` elements of one column (empty text where a cell is left out)."""
    ref = pc.binary_join_element_wise(f'<c r="{letter}', numbers, "", "")
    if pd.api.types.is_bool_dtype(column.dtype):
        column = column.astype(object)
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=float, na_value=np.nan)
        text = pc.cast(pa.array(values), pa.string())
        cell = pc.binary_join_element_wise(ref, '"><v>', text, "</v></c>", "")
        return pc.if_else(pa.array(np.isfinite(values)), cell, "")
    present = column.notna().to_numpy()
    values = column.astype(str).where(present, "")
    distinct = pd.unique(values.to_numpy())
    if len(distinct) <= max(_SHARED_SHARE * len(values), 16):
        codes = pd.Categorical(values, categories=distinct).codes
        ids = shared.ids([str(v) for v in distinct])[codes]
        cell = pc.binary_join_element_wise(ref, '" t="s"><v>', pc.cast(pa.array(ids),
                                                                       pa.string()), "</v></c>", "")
    else:
        text = _escaped(pa.array(values.to_numpy(dtype=object), pa.string()))
        cell = pc.binary_join_element_wise(ref, '" t="inlineStr"><is>', text, "</is></c>", "")
    return pc.if_else(pa.array(present & (values.to_numpy() != "")), cell, "")


def _escaped(text: pa.Array) -> pa.Array:
    """``<t>`` elements of ``text``: XML-escaped, Excel's ``_xHHHH_`` escapes kept literal,
    characters XML cannot hold replaced, edge spaces preserved."""
    for old, new in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = pc.replace_substring(text, old, new)
    text = pc.replace_substring_regex(text, r"_(x[0-9A-Fa-f]{4}_)", r"_x005F_\1")
    text = pc.replace_substring_regex(text, _ILLEGAL_RE2, "\ufffd")
    spaced = pc.match_substring_regex(text, r"^\s|\s$")
    return pc.binary_join_element_wise(
        pc.if_else(spaced, '<t xml:space="preserve">', "<t>"), text, "</t>", "")


def _text_element(value: str) -> str:
    import re

    value = re.sub(_ILLEGAL, "\ufffd", re.sub(r"_(x[0-9A-Fa-f]{4}_)", r"_x005F_\1", value))
    space = ' xml:space="preserve"' if value[:1].isspace() or value[-1:].isspace() else ""
    return f"<t{space}>{escape(value)}</t>"


def _column(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_R = "http://schemas.openxmlformats.org/package/2006/relationships"
_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_ROOT_RELS = (f'{_DECL}<Relationships xmlns="{_PKG_R}"><Relationship Id="rId1" Type="{_NS_R}/'
              'officeDocument" Target="xl/workbook.xml"/></Relationships>')
_STYLES_XML = (
    f'{_DECL}<styleSheet xmlns="{_NS}">'
    '<fonts count="4"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><color rgb="FFFFFFFF"/><name val="Calibri"/><family val="2"/>'
    '</font><font><b/><sz val="14"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill '
    'patternType="gray125"/></fill><fill><patternFill patternType="solid"><fgColor '
    'rgb="FF1F4E79"/><bgColor indexed="64"/></patternFill></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
    '</cellStyleXfs><cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" '
    'xfId="0"/><xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" '
    'applyFill="1" applyAlignment="1"><alignment horizontal="center" vertical="center" '
    'wrapText="1"/></xf><xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" '
    'applyFont="1"/><xf numFmtId="0" fontId="3" fillId="0" borderId="0" xfId="0" '
    'applyFont="1"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" '
    'builtinId="0"/></cellStyles></styleSheet>')


def _content_types(sheets: int) -> str:
    kinds = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{kinds}.'
                    'worksheet+xml"/>' for i in range(1, sheets + 1))
    return (f'{_DECL}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{kinds}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{kinds}.styles+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kinds}.sharedStrings+xml"'
            f'/>{parts}</Types>')


def _workbook(sheets: list[Sheet]) -> str:
    entries = "".join(f'<sheet name="{escape(s.name, {chr(34): "&quot;"})}" sheetId="{i}" '
                      f'r:id="rId{i}"/>' for i, s in enumerate(sheets, start=1))
    names = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
        f"'{escape(s.name)}'!$A${len(s.lines) + 1}:${_column(len(s.table.columns) - 1)}$"
        f"{len(s.lines) + 1 + len(s.table)}</definedName>"
        for i, s in enumerate(sheets) if s.table is not None)
    return (f'{_DECL}<workbook xmlns="{_NS}" xmlns:r="{_NS_R}"><bookViews><workbookView/>'
            f"</bookViews><sheets>{entries}</sheets>"
            + (f"<definedNames>{names}</definedNames>" if names else "") + "</workbook>")


def _workbook_rels(sheets: int) -> str:
    links = "".join(f'<Relationship Id="rId{i}" Type="{_NS_R}/worksheet" '
                    f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, sheets + 1))
    n = sheets
    return (f'{_DECL}<Relationships xmlns="{_PKG_R}">{links}'
            f'<Relationship Id="rId{n + 1}" Type="{_NS_R}/styles" Target="styles.xml"/>'
            f'<Relationship Id="rId{n + 2}" Type="{_NS_R}/sharedStrings" '
            'Target="sharedStrings.xml"/></Relationships>')
