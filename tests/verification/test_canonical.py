"""Amount and date canonicalisers: every accepted spelling, every refusal with its reason."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verification.canonical import (
    AMOUNT_REASON,
    DATE_RANGE_REASON,
    DATE_REASON,
    NOT_A_MONTH_REASON,
    THOUSANDS_REASON,
    canonical_amounts,
    canonical_dates,
    reason_counts,
)

DATE_FORMATS = ["{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}{m:02d}{d:02d}", "{y}年{m}月{d}日",
                "{y}.{m:02d}.{d:02d}"]
FULL_WIDTH = str.maketrans("0123456789.,-", "０１２３４５６７８９．，－")


@pytest.mark.parametrize(("text", "value"), [
    ("1234.5", 1234.5), ("1,234.50", 1234.5), ("1234.5元", 1234.5), ("￥1,234", 1234.0),
    ("¥ 12", 12.0), ("１２３４．５", 1234.5), ("－12", -12.0), ("\u221212", -12.0),
    ("12.5万", 125000.0), ("12.5万元", 125000.0), (" 7 ", 7.0), ("RMB 1,000,000", 1e6),
    ("0", 0.0), (".5", 0.5),
])
def test_amounts_accepted(text: str, value: float) -> None:
    values, reasons = canonical_amounts(pd.Series([text]))
    assert values[0] == value
    assert reasons[0] == ""


@pytest.mark.parametrize(("text", "reason"), [
    ("12,34.5", THOUSANDS_REASON), ("1,2345", THOUSANDS_REASON), ("abc", AMOUNT_REASON),
    ("1.2.3", AMOUNT_REASON), ("-", AMOUNT_REASON), ("$12", AMOUNT_REASON),
    ("12元5角", AMOUNT_REASON), ("1 234", AMOUNT_REASON),
])
def test_amounts_refused_with_reason(text: str, reason: str) -> None:
    values, reasons = canonical_amounts(pd.Series([text]))
    assert math.isnan(values[0])
    assert reasons[0] == reason


def test_blank_amounts_are_missing_not_errors() -> None:
    values, reasons = canonical_amounts(pd.Series(["", "  ", None], dtype=object))
    assert values.isna().all()
    assert (reasons == "").all()


def test_index_is_preserved() -> None:
    raw = pd.Series(["1", "x"], index=[10, 20])
    values, reasons = canonical_amounts(raw)
    assert values.index.tolist() == reasons.index.tolist() == [10, 20]
    assert reason_counts(reasons) == {AMOUNT_REASON: 1}


@pytest.mark.parametrize("text", ["2026-10-01", "2026/10/01", "2026.10.1", "20261001",
                                  "2026年10月1日", "２０２６－１０－０１", "2026-10-1"])
def test_dates_accepted(text: str) -> None:
    values, reasons = canonical_dates(pd.Series([text]))
    assert values[0] == pd.Timestamp("2026-10-01")
    assert reasons[0] == ""


@pytest.mark.parametrize(("text", "reason"), [
    ("2026-02-30", DATE_REASON), ("2026-13-01", DATE_REASON), ("2026/10-01", DATE_REASON),
    ("2026-10", DATE_REASON), ("01/10/2026", DATE_REASON), ("1800-01-01", DATE_RANGE_REASON),
    ("46296", DATE_REASON),
])
def test_dates_refused_with_reason(text: str, reason: str) -> None:
    values, reasons = canonical_dates(pd.Series([text]))
    assert pd.isna(values[0])
    assert reasons[0] == reason


@pytest.mark.parametrize(("text", "reason"), [
    ("2026-10", ""), ("2026/10", ""), ("202610", ""), ("2026年10月", ""), ("2026-10-01", ""),
    ("2026-10-15", NOT_A_MONTH_REASON), ("2026-00", DATE_REASON),
])
def test_months(text: str, reason: str) -> None:
    values, reasons = canonical_dates(pd.Series([text]), month=True)
    assert reasons[0] == reason
    if not reason:
        assert values[0] == pd.Timestamp("2026-10-01")


# -------------------------------------------------------------------------------- properties


def _spell(cents: int, grouped: bool, yuan: bool, yen: bool, wide: bool) -> str:
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    text = f"{sign}{whole:,}.{frac:02d}" if grouped else f"{sign}{whole}.{frac:02d}"
    text = ("￥" if yen else "") + text + ("元" if yuan else "")
    return text.translate(FULL_WIDTH) if wide else text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**11, 10**11), st.booleans(), st.booleans(),
                          st.booleans(), st.booleans()), min_size=1, max_size=20))
def test_property_amount_spellings_agree(cases: list[tuple]) -> None:
    raw = pd.Series([_spell(*case) for case in cases])
    values, reasons = canonical_amounts(raw)
    assert (reasons == "").all()
    expected = pd.Series([case[0] / 100 for case in cases])
    assert (values - expected).abs().max() < 1e-6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=20))
def test_property_amounts_never_guess(texts: list[str]) -> None:
    values, reasons = canonical_amounts(pd.Series(texts, dtype=object))
    blank = pd.Series([t.strip() == "" for t in texts], dtype=bool)
    # Exactly one of: a value, a reason, or a blank input.
    counts = values.notna().astype(int) + (reasons != "").astype(int) + blank.astype(int)
    assert counts.eq(1).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.dates(date(1900, 1, 1), date(2100, 12, 31)),
                          st.sampled_from(DATE_FORMATS)), min_size=1, max_size=20))
def test_property_date_spellings_agree(cases: list[tuple]) -> None:
    raw = pd.Series([fmt.format(y=d.year, m=d.month, d=d.day) for d, fmt in cases])
    values, reasons = canonical_dates(raw)
    assert (reasons == "").all()
    assert values.tolist() == [pd.Timestamp(d) for d, _ in cases]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-/.年月日 ", max_size=12), max_size=20),
       st.booleans())
def test_property_dates_never_guess(texts: list[str], month: bool) -> None:
    values, reasons = canonical_dates(pd.Series(texts, dtype=object), month=month)
    blank = pd.Series([t.strip() == "" for t in texts], dtype=bool)
    counts = values.notna().astype(int) + (reasons != "").astype(int) + blank.astype(int)
    assert counts.eq(1).all()
