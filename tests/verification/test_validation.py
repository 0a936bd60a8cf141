"""Validators are built from the contracts; bad rows are quarantined with line and reason."""

import pandas as pd
import pytest

from schemas import contract_for
from verification.intake.validate import (
    constraint_failures,
    parse_date,
    parse_number,
    validate_frame,
)


def _wages(rows: list[dict]) -> pd.DataFrame:
    base = {"record_id": "r", "id_number": "11010519491231002X", "name": "张三",
            "period": "2026-10", "employer_name": "某公司", "employer_credit_code": "",
            "wage_amount": "1000", "si_contribution": ""}
    # each row its own payment (a row equal to another but for its record id is DUPLICATE_ROW)
    frame = pd.DataFrame([{**base, "wage_amount": str(1000 + i), **row}
                          for i, row in enumerate(rows)])
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def test_counts_reconcile_and_each_bad_row_has_a_reason():
    frame = _wages([
        {"record_id": "a"},
        {"record_id": "b", "id_number": "440524188001010015"},  # wrong check character
        {"record_id": "c", "wage_amount": "-5"},
        {"record_id": "d", "period": "2026-13"},
        {"record_id": "e", "wage_amount": "abc"},
        {"record_id": "a"},  # duplicate key
        {"record_id": "g", "name": ""},
    ])
    checked = validate_frame(frame, contract_for("wages"))
    assert checked.counts == {"received": 7, "accepted": 1, "quarantined": 6}
    reasons = dict(zip(checked.quarantine["line"], checked.quarantine["reason"], strict=True))
    assert reasons == {3: "ID_CHECK", 4: "BELOW_MINIMUM", 5: "BAD_DATE", 6: "BAD_NUMBER",
                       7: "DUPLICATE_KEY", 8: "REQUIRED"}
    message = checked.quarantine.set_index("line").loc[3, "message"]
    # Chinese first, English beside, with the check's own specifics for this very row
    assert message.startswith("身份证号校验位不符") and "expected 4" in message
    said = checked.quarantine.set_index("line")["message"].to_dict()
    assert said[6] == "「应发工资」应为数字 / Gross monthly wage must be a number"
    assert said[8].startswith("「姓名」不能为空 / ")


def test_dirty_but_valid_values_are_canonicalised_not_rejected():
    frame = _wages([
        {"record_id": "a", "id_number": "１１０１０５１９４９１２３１００２ｘ",
         "wage_amount": "1,234.50元"},
        {"record_id": "b", "id_number": "350303900203307", "period": "202610"},
        {"record_id": "c", "id_number": " 11010519491231002x ", "period": "2026/10"},
    ])
    checked = validate_frame(frame, contract_for("wages"))
    assert checked.counts["quarantined"] == 0
    assert checked.accepted["id_number"].tolist() == [
        "11010519491231002X", "350303199002033073", "11010519491231002X"]
    assert checked.accepted["wage_amount"].iloc[0] == pytest.approx(1234.5)
    assert checked.accepted["period"].dt.strftime("%Y-%m").unique().tolist() == ["2026-10"]


def test_failing_credit_code_check_is_a_warning_not_a_rejection():
    frame = pd.DataFrame([{"_line": 2, "record_id": "b1", "id_number": "11010519491231002X",
                           "name": "张三", "credit_code": "91350100M0001TGQXM",
                           "business_name": "某店", "registered_on": "2020-01-01",
                           "status": "active"}])
    checked = validate_frame(frame, contract_for("business"))
    assert checked.counts["accepted"] == 1
    assert checked.warnings["reason"].tolist() == ["USCC_CHECK"]


def test_enum_values_come_from_the_contract():
    frame = pd.DataFrame([{"_line": 2, "record_id": "v", "id_number": "11010519491231002X",
                           "name": "张三", "plate_no": "辽A12345", "vehicle_type": "spaceship",
                           "registered_on": "2020-01-01", "status": "active"}])
    checked = validate_frame(frame, contract_for("vehicles"))
    assert checked.quarantine["reason"].tolist() == ["NOT_ALLOWED"]


def test_parsers_mark_unparseable_values():
    values, bad = parse_number(pd.Series(["1,000", "１２元", "", "x"]))
    assert values.tolist()[:2] == [1000.0, 12.0] and bad.tolist() == [False, False, False, True]
    dates, bad = parse_date(pd.Series(["20261001", "2026/2/30", ""]))
    assert str(dates.iloc[0].date()) == "2026-10-01" and bad.tolist() == [False, True, False]


def test_only_decimal_text_is_read_as_a_number():
    # an exponent of a dozen digits crashed the intake process inside pandas (SIGSEGV); such
    # values, infinities and other text a float parser takes are quarantined as not a number
    values, bad = parse_number(pd.Series(["6e7138125436", "1e5", "-1.5E-3", "inf", "NaN",
                                          "1e999", "1_000", "0x10", ".5", "3."]))
    assert bad.tolist() == [True, False, False, True, True, True, True, True, False, False]
    assert values[~bad].tolist() == [100000.0, -0.0015, 0.5, 3.0]
    frame = _wages([{"record_id": "a", "wage_amount": "6e7138125436"},
                    {"record_id": "b", "wage_amount": "inf"}, {"record_id": "c"}])
    checked = validate_frame(frame, contract_for("wages"))  # quarantined, with its line
    assert checked.counts["quarantined"] == 2 and checked.counts["accepted"] == 1
    assert set(checked.quarantine["field"]) == {"wage_amount"}


def test_a_comma_that_is_not_a_thousands_separator_is_refused_not_guessed():
    values, bad = parse_number(pd.Series(["12,34.5", "1,2345", "1,234,567.8"]))
    assert bad.tolist() == [True, True, False]
    assert values.iloc[2] == pytest.approx(1234567.8)


def test_numbers_read_in_arrow_are_those_of_the_python_path():
    # a column of at least _DISTINCT_MIN_ROWS Arrow-backed values is read in Arrow where it can
    # be (plain decimals; ASCII with spaces, 元, ¥ and thousands separators); the rest, and the
    # answers, must be those of _parse_number_text, which reads any text
    import random

    import numpy as np

    from verification.intake.textcheck import arrow_strings
    from verification.intake.validate import TEXT, _parse_number_text, _separated_decimals

    rng = random.Random(9)
    parts = [*"0123456789" * 3, ",", ".", " ", "元", "¥", "￥", "+", "-", "\t", "\u3000", "１",
             "\x1c", "a", ",000", ",12", "\u00a0", "\n", "٣"]
    values = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 14))) for _ in range(20_000)]
    values += ["5,949.98", "4019.21元", " 88 ", "12,34.5", "¥1,000", "1 000", "", ",", "+1,234"]
    raw = pd.Series(values, dtype=TEXT)
    fast, fast_bad = parse_number(raw)
    slow, slow_bad = _parse_number_text(raw)
    assert np.array_equal(fast.to_numpy(), slow.to_numpy(), equal_nan=True)
    assert fast_bad.tolist() == slow_bad.tolist()
    separated, _ = _separated_decimals(arrow_strings(raw))
    assert separated.sum() > 3_000  # the Arrow path was taken, not only the Python one


def test_each_constraint_of_the_contract_is_checked_on_the_values_present():
    numbers = pd.Series([5.0, None, -1.0, 12.0])
    failed = dict(constraint_failures(numbers, {"required": True, "minimum": 0, "maximum": 10}))
    assert list(failed) == ["greater_than_or_equal_to", "less_than_or_equal_to", "not_nullable"]
    assert failed["not_nullable"].tolist() == [False, True, False, False]
    assert failed["greater_than_or_equal_to"][failed["greater_than_or_equal_to"]].index.tolist() \
        == [2]  # the missing value fails only "required"
    assert failed["less_than_or_equal_to"][failed["less_than_or_equal_to"]].index.tolist() == [3]
    codes = pd.Series(["A1", "B22", None, "A1\n", "C"])
    failed = dict(constraint_failures(codes, {"enum": ["A1", "B22", "A1\n"], "maxLength": 2,
                                              "pattern": "[A-C][0-9]+"}))
    assert list(failed) == ["isin", "str_length", "str_matches"]
    assert failed["isin"][failed["isin"]].index.tolist() == [4]
    assert failed["str_length"][failed["str_length"]].index.tolist() == [1, 3]
    # the whole value must match: a trailing line break is not the format
    assert failed["str_matches"][failed["str_matches"]].index.tolist() == [3, 4]
    assert constraint_failures(pd.Series([None, None]), {"enum": ["x"]}) == []
