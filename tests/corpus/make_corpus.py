"""Write the corpus of broken files (tests/corpus/*). Run once; the files are committed.

    .venv/bin/python tests/corpus/make_corpus.py

Every file is built from a few fixed, synthetic rows (valid ID numbers made by the GB 11643
rule; no real person) and then broken in exactly one way the way real exports break. Each has a
test in tests/security/test_corpus.py asserting what the readers make of it.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
BATCH_HEADER = ("household_code,area_code,street_code,community_code,status,category,urban_rural,"
                "current_benefit,id_number,name,relation,exclusion,disability_grade,"
                "disability_type,authorisation_ref,authorisation_signed_on")
BATCH_ROWS = [
    "HN-C-0001,210112,210112001,210112001001,applicant,none,urban,0,21011219561114631X,张伟明,"
    "户主,,0,,SQ-C-0001-1,2026-04-15",
    "HN-C-0001,210112,210112001,210112001001,applicant,none,urban,0,210112195808310013,李秀英,"
    "配偶,,0,,SQ-C-0001-2,2026-04-15",
    "HN-C-0002,210112,210112002,210112002001,recipient,dibao,urban,1650.00,210112199007101172,"
    "王芳,户主,,2,limb,SQ-C-0002-1,2026-03-01",
]
WAGES_HEADER = ("record_id,id_number,name,period,employer_name,employer_credit_code,wage_amount,"
                "si_contribution")


def _batch(rows: list[str] | None = None) -> str:
    return "\n".join([BATCH_HEADER, *(BATCH_ROWS if rows is None else rows)]) + "\n"


def _wage(record: str, id_number: str, amount: str, period: str = "2026-09",
          name: str = "张伟明") -> str:
    return f"{record},{id_number},{name},{period},沈阳某某有限公司,,{amount},"


def _write(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)


def _book(header: list[str], rows: list[list[object]]) -> Workbook:
    book = Workbook()
    sheet = book.active
    sheet.title = "核对"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    return book


def _cells(row: str) -> list[object]:
    return row.split(",")


def _save(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cache_formula_values(data: bytes, values: dict[str, str]) -> bytes:
    """openpyxl writes formulas without the value Excel would have computed; add <v>…</v> for
    the given cells as Excel does when it saves, leaving other formulas uncomputed."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            body = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = body.decode("utf-8")
                for ref, value in values.items():
                    start = text.index(f'<c r="{ref}"')
                    end = text.index("</c>", start)
                    cell = text[start:end].replace("<v />", "")
                    if not value.replace(".", "").isdigit() and ' t="str"' not in cell:
                        cell = cell.replace(f'<c r="{ref}"', f'<c r="{ref}" t="str"', 1)
                    text = text[:start] + cell + f"<v>{value}</v>" + text[end:]
                body = text.encode("utf-8")
            target.writestr(item, body)
    return out.getvalue()


def batch_files() -> None:
    _write("batch_gbk.csv", _batch().encode("gbk"))
    _write("batch_utf8_bom.csv", codecs.BOM_UTF8 + _batch().encode("utf-8"))
    _write("batch_utf16.csv", _batch().encode("utf-16"))
    text = _batch()
    lines = text.splitlines(keepends=True)
    _write("batch_mixed_encoding.csv",
           "".join(lines[:3]).encode("utf-8") + lines[3].encode("gbk"))
    _write("batch_nul_bytes.csv", _batch([BATCH_ROWS[0].replace("张伟明", "张\x00伟明"),
                                          *BATCH_ROWS[1:]]).encode("utf-8"))
    _write("batch_bidi_override.csv", _batch([*BATCH_ROWS[:2], BATCH_ROWS[2].replace(
        "王芳", "王\u202e芳")]).encode("utf-8"))
    _write("batch_huge_field.csv", _batch([BATCH_ROWS[0].replace("张伟明", "张" * 200_000),
                                           *BATCH_ROWS[1:]]).encode("utf-8"))
    _write("batch_long_name.csv", _batch([*BATCH_ROWS[:2], BATCH_ROWS[2].replace(
        "王芳", "王" * 41)]).encode("utf-8"))
    _write("batch_duplicate_rows.csv", _batch([*BATCH_ROWS, BATCH_ROWS[1]]).encode("utf-8"))
    _write("batch_broken_quotes.csv", (_batch() + 'HN-C-0003,"210112\n').encode("utf-8"))
    _write("batch_ragged_rows.csv", _batch([BATCH_ROWS[0] + ",extra", *BATCH_ROWS[1:],
                                            "HN-C-0003,210112"]).encode("utf-8"))
    _write("batch_amounts.csv", _batch([
        BATCH_ROWS[0], BATCH_ROWS[1],
        BATCH_ROWS[2].replace("1650.00", "-1650.00"),
        BATCH_ROWS[2].replace("HN-C-0002", "HN-C-0003").replace("1650.00", "99999999")
        .replace("210112199007101172", "210112194901243332"),
        BATCH_ROWS[2].replace("HN-C-0002", "HN-C-0004").replace("1650.00", '"1,650元"')
        .replace("210112199007101172", "210112199001010026"),
    ]).encode("utf-8"))
    _write("batch_future_dates.csv", _batch([
        BATCH_ROWS[0].replace("2026-04-15", "2099-04-15"),
        BATCH_ROWS[1].replace(",2026-04-15", ",2026-04-15"),
        BATCH_ROWS[2].replace("210112199007101172", "210112209901010116"),
    ]).encode("utf-8"))
    _write("batch_check_characters.csv", _batch([
        BATCH_ROWS[0].replace("21011219561114631X", "21011219561114631x"),  # lower-case x: fine
        BATCH_ROWS[1].replace("210112195808310013", "210112195808310014"),  # wrong check
        BATCH_ROWS[2].replace("210112199007101172",
                              "２１０１１２１９９００７１０１１７２"),  # full-width: fine
        BATCH_ROWS[2].replace("HN-C-0002", "HN-C-0003").replace(
            "210112199007101172", "210112490124333"),  # legacy 15 digits: upgraded
    ]).encode("utf-8"))
    _write("batch_csv_injection.csv", _batch([
        BATCH_ROWS[0].replace("张伟明", "=HYPERLINK(\"http://x.example/\";\"点此\")"),
        BATCH_ROWS[1].replace("SQ-C-0001-2", "@SUM(1+1)*cmd|' /C calc'!A0"),
        BATCH_ROWS[2].replace("HN-C-0002", "+HN-C-0002").replace("王芳", "-王芳"),
    ]).encode("utf-8"))
    _write("batch_missing_column.csv", _batch().replace(",authorisation_ref", ",auth_ref", 1)
           .encode("utf-8"))
    _write("batch_no_header.csv", b"\n\n")
    _write("batch_not_text.csv", bytes(range(128, 256)) * 4)


def batch_workbooks() -> None:
    header = BATCH_HEADER.split(",")
    book = _book(header, [_cells(r) for r in BATCH_ROWS])
    sheet = book.active
    sheet.insert_rows(1)
    sheet["A1"] = "家庭信息"
    sheet.merge_cells("A1:H1")
    sheet["I1"] = "成员信息"
    sheet.merge_cells("I1:P1")
    _write("batch_merged_header.xlsx", _save(book))

    book = _book(["secret"], [["a hidden sheet is never read"]])
    book.active.title = "隐藏"
    book.active.sheet_state = "hidden"
    visible = book.create_sheet("批次")
    visible.append(header)
    for row in BATCH_ROWS:
        visible.append(_cells(row))
    _write("batch_hidden_sheet.xlsx", _save(book))

    rows = [_cells(r) for r in BATCH_ROWS]
    rows[0][header.index("name")] = '=HYPERLINK("http://x.example/","张伟明")'
    rows[2][header.index("current_benefit")] = "=825*2"
    rows[1][header.index("name")] = '=CONCAT("李","秀英")'  # never computed: no value saved
    data = _save(_book(header, rows))
    _write("batch_formulas.xlsx", _cache_formula_values(data, {"J2": "张伟明", "H4": "1650"}))

    rows = [_cells(r) for r in BATCH_ROWS]
    rows[0][header.index("id_number")] = 210112195611146310  # stored as a number: digits lost
    _write("batch_numeric_id.xlsx", _save(_book(header, rows)))


def wage_files() -> None:
    ids = ["21011219561114631X", "210112195808310013", "210112199007101172",
           "210112194901243332"]
    _write("wages_amounts.csv", ("\n".join([
        WAGES_HEADER,
        _wage("W1", ids[0], "-500.00"),
        _wage("W2", ids[1], "1000000000"),
        _wage("W3", ids[2], '"3,200.50"'),
        _wage("W4", ids[3], "1.2万"),
        _wage("W5", ids[0], "NaN", "2026-08"),
        _wage("W6", ids[0], "inf", "2026-07"),
        _wage("W7", ids[0], "￥２８００", "2026-06"),
    ]) + "\n").encode("utf-8"))
    _write("wages_future_period.csv", ("\n".join([
        WAGES_HEADER, _wage("W1", ids[0], "2800", "2026-09"),
        _wage("W2", ids[1], "2800", "2030-01"), _wage("W3", ids[2], "2800", "2026-11"),
    ]) + "\n").encode("utf-8"))
    _write("wages_duplicate_rows.csv", ("\n".join([
        WAGES_HEADER, _wage("W1", ids[0], "2800"), _wage("W1", ids[0], "2800"),
        _wage("W2", ids[1], "2800"),
    ]) + "\n").encode("utf-8"))
    _write("wages_gbk.csv", ("\n".join([WAGES_HEADER, _wage("W1", ids[0], "2800")]) + "\n")
           .encode("gbk"))


if __name__ == "__main__":
    batch_files()
    batch_workbooks()
    wage_files()
    print("corpus written to", HERE)
