"""The corpus of broken files (tests/corpus/, made by make_corpus.py): one test per file, asserting
exactly what the readers make of it — refused as a whole with the line to look at, or every row
accepted or quarantined with its reason, counts reconciled."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from connectors.decoding import PROBLEM, DecodeError, decode_file
from schemas import contract_for
from verification.intake.roster import validate_roster
from verification.intake.textcheck import future_date_problems
from verification.intake.validate import Validated, validate_frame

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
TODAY = dt.date(2026, 11, 1)
NAMES = ["张伟明", "李秀英", "王芳"]
IDS = ["21011219561114631X", "210112195808310013", "210112199007101172"]


def batch(name: str) -> Validated:
    checked = validate_roster(CORPUS / name, today=TODAY)
    counts = checked.counts
    assert counts["received"] == counts["accepted"] + counts["quarantined"]
    assert set(checked.accepted["_line"]).isdisjoint(checked.quarantine["line"])
    assert (checked.quarantine["message"].str.len() > 10).all()  # every rejection explained
    return checked


def problems(checked: Validated) -> list[tuple[int, str, str]]:
    return [(int(r.line), r.field, r.reason) for r in checked.quarantine.itertuples()]


def test_every_corpus_file_has_a_test():
    tested = {n.removeprefix("test_").removesuffix("_file") for n in globals()
              if n.startswith("test_") and n.endswith("_file")}
    files = {p.stem for p in CORPUS.iterdir() if p.suffix in (".csv", ".xlsx")}
    assert files == tested


def _clean(name: str) -> None:
    checked = batch(name)
    assert checked.counts == {"received": 3, "accepted": 3, "quarantined": 0}
    assert checked.accepted["name"].tolist() == NAMES
    assert checked.accepted["id_number"].tolist() == IDS
    assert checked.accepted.columns[0] == "household_code"  # no BOM left in the first name


def test_batch_gbk_file():
    _clean("batch_gbk.csv")


def test_batch_utf8_bom_file():
    _clean("batch_utf8_bom.csv")


def test_batch_utf16_file():
    _clean("batch_utf16.csv")


def test_batch_hidden_sheet_file():
    """The first visible sheet is read; the hidden one is never looked at."""
    _clean("batch_hidden_sheet.xlsx")


def _refused(name: str, *parts: str) -> None:
    with pytest.raises(DecodeError) as refused:
        validate_roster(CORPUS / name, today=TODAY)
    for part in parts:
        assert part in str(refused.value)


def test_batch_mixed_encoding_file():
    _refused("batch_mixed_encoding.csv", "line 4: the file mixes encodings",
             "line 2 is UTF-8 but line 4 is not")


def test_batch_broken_quotes_file():
    _refused("batch_broken_quotes.csv", "line 5: the CSV cannot be read", "check the quotes")


def test_batch_huge_field_file():
    _refused("batch_huge_field.csv", "line 2: the CSV cannot be read", "field larger than")


def test_batch_merged_header_file():
    _refused("batch_merged_header.xlsx", "the header lacks the required column(s) household_code",
             "found: 家庭信息, _column2", "without merged cells")


def test_batch_missing_column_file():
    _refused("batch_missing_column.csv", "lacks the required column(s) authorisation_ref (found",
             "auth_ref")


def test_batch_no_header_file():
    _refused("batch_no_header.csv", "the file has no header line")


def test_batch_not_text_file():
    _refused("batch_not_text.csv", "line 1: the bytes are neither UTF-8 nor GBK/GB18030")


def test_batch_nul_bytes_file():
    checked = batch("batch_nul_bytes.csv")
    # The NUL row is out; its household then has no head, so the spouse's row goes too.
    assert problems(checked) == [(2, "name", "INVISIBLE_CHARACTER"), (3, "relation", "HEAD_COUNT")]
    assert "U+0000" in checked.quarantine["message"].iloc[0]
    assert checked.counts == {"received": 3, "accepted": 1, "quarantined": 2}


def test_batch_bidi_override_file():
    checked = batch("batch_bidi_override.csv")
    assert problems(checked) == [(4, "name", "INVISIBLE_CHARACTER")]
    assert "U+202E" in checked.quarantine["message"].iloc[0]


def test_batch_long_name_file():
    assert problems(batch("batch_long_name.csv")) == [(4, "name", "TOO_LONG")]


def test_batch_duplicate_rows_file():
    checked = batch("batch_duplicate_rows.csv")
    assert problems(checked) == [(3, "id_number", "DUPLICATE_PERSON"),
                                 (5, "id_number", "DUPLICATE_PERSON")]
    assert checked.quarantine["message"].tolist()[0].endswith("also on line 5")
    assert checked.quarantine["message"].tolist()[1].endswith("also on line 3")


def test_batch_ragged_rows_file():
    checked = batch("batch_ragged_rows.csv")
    found = problems(checked)
    assert found[0] == (2, "_row", "FIELD_COUNT") and (5, "_row", "FIELD_COUNT") in found
    assert (3, "relation", "HEAD_COUNT") in found
    assert "17 fields where the header has 16" in checked.quarantine["message"].iloc[0]
    assert checked.counts == {"received": 4, "accepted": 1, "quarantined": 3}


def test_batch_amounts_file():
    checked = batch("batch_amounts.csv")
    assert problems(checked) == [(4, "current_benefit", "BELOW_MINIMUM"),
                                 (5, "current_benefit", "ABOVE_MAXIMUM")]
    assert checked.accepted.set_index("_line")["current_benefit"].to_dict() == {
        2: 0.0, 3: 0.0, 6: 1650.0}  # "1,650元" is 1650 yuan


def test_batch_future_dates_file():
    checked = batch("batch_future_dates.csv")
    assert problems(checked) == [(2, "authorisation_signed_on", "FUTURE_DATE"),
                                 (3, "relation", "HEAD_COUNT"), (4, "id_number", "ID_BIRTH_DATE")]
    assert checked.counts["accepted"] == 0


def test_batch_check_characters_file():
    checked = batch("batch_check_characters.csv")
    assert problems(checked) == [(3, "id_number", "ID_CHECK")]
    assert "check character is 4, expected 3" in checked.quarantine["message"].iloc[0]
    assert checked.accepted["id_number"].tolist() == [
        "21011219561114631X",  # lower-case x
        "210112199007101172",  # full-width digits
        "210112194901243332"]  # the 15-digit number, upgraded


def test_batch_csv_injection_file(tmp_path):
    """Formula-like text is data: accepted as typed, and neutralised wherever it is written."""
    from verification.reports.flag_reports import HEADERS
    from verification.security.privacy import write_export

    checked = batch("batch_csv_injection.csv")
    assert checked.counts["accepted"] == 3
    accepted = checked.accepted
    table = pd.DataFrame({c: "" for c in HEADERS}, index=range(3))
    table["household_code"] = accepted["household_code"].to_numpy()
    table["head_name"] = accepted["name"].to_numpy()
    table["evidence"] = accepted["authorisation_ref"].to_numpy()
    back = pd.read_csv(write_export(table, tmp_path / "x.csv"), dtype=str,
                       encoding="utf-8-sig", keep_default_na=False)
    assert back["户主姓名"].tolist() == ["'=HYPERLINK(\"http://x.example/\";\"点此\")", "李秀英",
                                     "'-王芳"]
    assert back["家庭编号"].tolist()[2] == "'+HN-C-0002"
    assert back["证据"].tolist()[1] == "'@SUM(1+1)*cmd|' /C calc'!A0"


def test_batch_formulas_file():
    """Excel's saved result of a formula is read; a formula never computed reads as empty."""
    checked = batch("batch_formulas.xlsx")
    assert problems(checked) == [(3, "name", "REQUIRED")]
    accepted = checked.accepted.set_index("_line")
    assert accepted.loc[2, "name"] == "张伟明" and accepted.loc[4, "current_benefit"] == 1650.0


def test_batch_numeric_id_file():
    checked = batch("batch_numeric_id.xlsx")
    assert problems(checked) == [(2, "_row", "NUMERIC_ID"), (2, "id_number", "ID_CHECK"),
                                 (3, "relation", "HEAD_COUNT")]
    assert "format the column as text" in checked.quarantine["message"].iloc[0]


def wages(name: str) -> Validated:
    frame = decode_file(CORPUS / name)
    checked = validate_frame(frame.drop(columns=[PROBLEM]), contract_for("wages"))
    counts = checked.counts
    assert counts["received"] == counts["accepted"] + counts["quarantined"]
    return checked


def test_wages_amounts_file():
    checked = wages("wages_amounts.csv")
    assert problems(checked) == [(2, "wage_amount", "BELOW_MINIMUM"),
                                 (3, "wage_amount", "ABOVE_MAXIMUM"),
                                 (5, "wage_amount", "BAD_NUMBER"),  # 1.2万: not in the contract
                                 (6, "wage_amount", "BAD_NUMBER"),  # NaN
                                 (7, "wage_amount", "BAD_NUMBER")]  # inf: not an amount
    assert checked.accepted.set_index("_line")["wage_amount"].to_dict() == {4: 3200.5,
                                                                            8: 2800.0}


def test_wages_future_period_file():
    checked = wages("wages_future_period.csv")
    assert checked.counts["accepted"] == 3  # the contract has no upper bound on a month...
    future = future_date_problems(checked.accepted, contract_for("wages"), dt.date(2026, 10, 31))
    assert [(int(r.line), r.field, r.reason) for r in future.itertuples()] == [
        (3, "period", "FUTURE_DATE"), (4, "period", "FUTURE_DATE")]  # ...the feed's period has


def test_wages_duplicate_rows_file():
    checked = wages("wages_duplicate_rows.csv")
    assert problems(checked) == [(3, "record_id", "DUPLICATE_KEY")]


def test_wages_gbk_file():
    checked = wages("wages_gbk.csv")
    assert checked.counts == {"received": 1, "accepted": 1, "quarantined": 0}
    assert checked.accepted["name"].tolist() == ["张伟明"]
