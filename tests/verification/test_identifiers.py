"""Resident IDs (GB 11643-1999) and credit codes (GB 32100-2015): vectors, reasons, properties."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verification.intake import identifiers as ids
from verification.intake.identifiers import InvalidIdentifier, is_valid_id, make_id

TODAY = dt.date(2026, 11, 28)

VALID = [
    ("11010519491231002X", "11010519491231002X"),
    ("440524188001010014", "440524188001010014"),
    ("350303900203307", "350303199002033073"),
    ("330502880702447", "33050219880702447X"),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_published_vectors(raw: str, expected: str) -> None:
    assert ids.canonical_id(raw, today=TODAY) == expected


def test_upgrade_15_inserts_century_and_check() -> None:
    assert ids.upgrade_15("350303900203307") == "350303199002033073"
    assert ids.upgrade_15("330502880702447") == "33050219880702447X"


@pytest.mark.parametrize(
    "raw",
    [
        "11010519491231002x",
        " 110105 19491231002X ",
        "'11010519491231002X",
        '"11010519491231002X"',
        "“11010519491231002X”",
        "１１０１０５１９４９１２３１００２Ｘ",
        "１１０１０５１９４９１２３１００２ｘ",
        "110105-19491231-002X",
        "110105\u300019491231002X",
        "\ufeff11010519491231002X\t",
    ],
)
def test_untidy_forms_canonicalise(raw: str) -> None:
    assert ids.canonical_id(raw, today=TODAY) == "11010519491231002X"


def _with_check(body17: str) -> str:
    return body17 + ids.id_check_char(body17)


INVALID = [
    ("", "ID_MISSING"),
    (None, "ID_MISSING"),
    (float("nan"), "ID_MISSING"),
    (pd.NA, "ID_MISSING"),
    ("  ", "ID_MISSING"),
    ("1101051949123100", "ID_LENGTH"),
    ("11010519491231002XX", "ID_LENGTH"),
    ("3503039002033", "ID_LENGTH"),
    ("11010519491231002Y", "ID_CHARACTERS"),
    ("1101051949123A002X", "ID_CHARACTERS"),
    ("1101051949123\u0663002X", "ID_CHARACTERS"),  # Arabic-Indic three: a digit, not ASCII
    (_with_check("99010519491231002"), "ID_AREA"),
    (_with_check("00010519491231002"), "ID_AREA"),
    (_with_check("11010519491331002"), "ID_BIRTH_DATE"),  # month 13
    (_with_check("11010519490229002"), "ID_BIRTH_DATE"),  # 1949 is no leap year
    (_with_check("11010518791231002"), "ID_BIRTH_DATE"),  # before 1880
    (_with_check("11010520261129002"), "ID_BIRTH_DATE"),  # born after TODAY
    ("110105194912310021", "ID_CHECK"),
    ("440524188001010015", "ID_CHECK"),
]


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_invalid_numbers_say_why(raw: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        ids.canonical_id(raw, today=TODAY)
    assert err.value.reason == reason
    assert str(err.value)  # a message a partner can act on


def test_is_valid_id() -> None:
    assert ids.is_valid_id("11010519491231002x")
    assert not ids.is_valid_id("110105194912310021")


def test_leap_day_is_a_date() -> None:
    number = _with_check("11010520000229002")
    assert ids.canonical_id(number, today=TODAY) == number


def test_birth_date_and_gender() -> None:
    assert ids.birth_date("11010519491231002X") == dt.date(1949, 12, 31)
    assert ids.gender("11010519491231002X") == "F"  # sequence 002: even
    assert ids.gender("440524188001010014") == "M"  # sequence 001: odd


def test_masks() -> None:
    assert ids.mask_id("11010519491231002X") == "110105********002X"
    assert ids.mask_id("123") == "***"
    assert ids.mask_name("张三") == "张*"
    assert ids.mask_name("张晓明") == "张*明"
    assert ids.mask_name("欧阳小明") == "欧**明"
    assert ids.mask_name("") == ""


def test_make_id_builds_valid_numbers() -> None:
    number = ids.make_id("210112", dt.date(1985, 6, 1), 123)
    assert ids.canonical_id(number, today=TODAY) == number
    assert ids.gender(number) == "M"


# Credit codes --------------------------------------------------------------------------------


def test_credit_code_vector_is_valid() -> None:
    checked = ids.check_uscc("91350100M000100Y43")
    assert checked.code == "91350100M000100Y43"
    assert checked.warnings == ()
    assert ids.uscc_check_ok("91350100M000100Y43")
    assert ids.make_uscc("91350100M000100Y4") == "91350100M000100Y43"


def test_failed_credit_code_check_warns_not_rejects() -> None:
    checked = ids.check_uscc("91350100m0001tgqxm")
    assert checked.code == "91350100M0001TGQXM"
    assert "USCC_CHECK" in checked.warnings
    assert not ids.uscc_check_ok("91350100M0001TGQXM")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("91350100M000100Y4", "USCC_LENGTH"), ("91350100M000100YI3", "USCC_CHARACTERS")],
)
def test_credit_code_shape_errors_reject(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        ids.canonical_uscc(raw)
    assert err.value.reason == reason


def test_org_code_check_char() -> None:
    # positions 9-17 of the valid vector are the organisation code M000100Y4
    assert ids.org_code_check_char("M000100Y") == "4"


# Column-wise canonicalisation ----------------------------------------------------------------


def test_canonicalise_ids_matches_published_vectors_and_reasons() -> None:
    raw = pd.Series([v for v, _ in VALID] + [r for r, _ in INVALID], index=range(100, 123))
    result = ids.canonicalise_ids(raw, today=TODAY)
    assert result.values.iloc[: len(VALID)].tolist() == [e for _, e in VALID]
    assert result.values.iloc[len(VALID) :].isna().all()
    assert result.reasons.tolist() == [""] * len(VALID) + [r for _, r in INVALID]
    assert (result.messages.iloc[len(VALID) :] != "").all()
    assert result.values.index.equals(raw.index)


def test_canonicalise_ids_with_duplicate_index_labels() -> None:
    raw = pd.Series(["11010519491231002X", "bad", "350303900203307"], index=[7, 7, 7])
    result = ids.canonicalise_ids(raw, today=TODAY)
    assert result.values.tolist() == ["11010519491231002X", None, "350303199002033073"]
    assert result.reasons.tolist() == ["", "ID_LENGTH", ""]


def test_canonicalise_ids_empty_column() -> None:
    result = ids.canonicalise_ids(pd.Series([], dtype=object), today=TODAY)
    assert len(result.values) == len(result.reasons) == 0


# Properties ----------------------------------------------------------------------------------

dates = st.dates(min_value=dt.date(1880, 1, 1), max_value=TODAY)
areas = st.sampled_from(["110105", "210112", "440524", "350303", "330502", "650102"])
sequences = st.integers(min_value=0, max_value=999)
valid_ids = st.builds(ids.make_id, areas, dates, sequences)

_FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in "0123456789X"}
_NOISE = st.sampled_from([" ", "\u3000", "'", '"', "“", "”", "‘", "’", "-", "\t"])


@st.composite
def untidy(draw: st.DrawFn, number: str) -> str:
    """The same number as a clerk or an old export might write it."""
    chars = []
    for c in number:
        if draw(st.booleans()):
            c = _FULL_WIDTH[c]
        if c in "XＸ" and draw(st.booleans()):
            c = c.lower()
        chars.append(c)
        if draw(st.integers(0, 5)) == 0:
            chars.append(draw(_NOISE))
    return draw(_NOISE) * draw(st.integers(0, 2)) + "".join(chars)


@given(valid_ids)
def test_canonical_id_is_idempotent(number: str) -> None:
    once = ids.canonical_id(number, today=TODAY)
    assert ids.canonical_id(once, today=TODAY) == once == number


@given(valid_ids.flatmap(lambda n: st.tuples(st.just(n), untidy(n))))
def test_untidy_forms_are_invariant(pair: tuple[str, str]) -> None:
    number, messy = pair
    assert ids.canonical_id(messy, today=TODAY) == number


@given(dates.filter(lambda d: d.year < 2000), sequences, areas)
def test_legacy_15_digit_numbers_upgrade(born: dt.date, seq: int, area: str) -> None:
    legacy = f"{area}{born:%y%m%d}{seq:03d}"
    expected = ids.make_id(area, dt.date(1900 + born.year % 100, born.month, born.day), seq)
    assert ids.canonical_id(legacy, today=TODAY) == expected


@given(valid_ids, st.integers(0, 16), st.integers(1, 9))
def test_single_digit_typo_is_caught(number: str, position: int, shift: int) -> None:
    """MOD 11-2 catches every single-digit substitution: a typo never yields another valid ID."""
    digit = str((int(number[position]) + shift) % 10)
    typo = number[:position] + digit + number[position + 1 :]
    assert not ids.is_valid_id(typo)


def _messy_values() -> st.SearchStrategy[object]:
    return st.one_of(
        valid_ids,
        valid_ids.flatmap(untidy),
        st.builds(lambda d, s, a: f"{a}{d:%y%m%d}{s:03d}", dates, sequences, areas),
        st.text(alphabet="0123456789Xx ＸＸ１２'\"-", max_size=20),
        st.text(max_size=20),
        st.none(),
        st.just(np.nan),
    )


@settings(max_examples=200)
@given(st.lists(_messy_values(), max_size=30))
def test_vectorised_equals_scalar(values: list[object]) -> None:
    column = pd.Series(values, dtype=object)
    result = ids.canonicalise_ids(column, today=TODAY)
    for i, raw in enumerate(values):
        try:
            expected, reason = ids.canonical_id(raw, today=TODAY), ""
        except InvalidIdentifier as err:
            expected, reason = None, err.reason
        assert result.values.iloc[i] == expected
        assert result.reasons.iloc[i] == reason


@given(st.text(max_size=30))
def test_canonical_text_is_idempotent(raw: str) -> None:
    once = ids.canonical_text(raw)
    assert ids.canonical_text(once) == once


def test_near_miss_ids_find_the_number_one_slip_away() -> None:
    from verification.intake.identifiers import near_miss_ids

    good = make_id("210112", dt.date(1980, 5, 17), 123)
    slips = [good[:at] + str((int(good[at]) + 1 + at % 9) % 10) + good[at + 1:]
             for at in range(17)]
    slips += [good[:at] + good[at + 1] + good[at] + good[at + 2:] for at in range(16)
              if good[at] != good[at + 1]]
    slips.append(good[:17] + ("0" if good[17] != "0" else "1"))
    near = near_miss_ids(pd.Series([*slips, good, None, "12345"], dtype=object))
    assert all(good in found for found in near[: len(slips)])
    assert near.iloc[len(slips):].map(len).tolist() == [0, 0, 0]  # valid, missing, unusable
    for typed, found in zip(slips, near[: len(slips)], strict=True):
        assert all(is_valid_id(n) and n != typed for n in found)
        assert 1 <= len(found) <= 40
