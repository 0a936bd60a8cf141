"""Identifiers: resident ID numbers (GB 11643-1999) and unified social credit codes (GB 32100-2015).

Real feeds carry full-width digits, lowercase x, spaces and stray quotes, so every number is
canonicalised before it is validated. Validation says *why* a number is invalid, because a partner
or a staff member has to fix the source record.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from verification.intake.textcheck import arrow_strings

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# GB/T 2260 province-level prefixes (first two digits of the area code).
# fmt: off
_PROVINCES = frozenset([
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83", "91",
])
# fmt: on
# ASCII only: str.isdigit() and regex \d also accept e.g. Arabic-Indic digits, which NFKC keeps.
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
_ID15 = re.compile(r"[0-9]{15}")
_EARLIEST_BIRTH_YEAR = 1880
_STRIP = re.compile(r"[\s'\"`‘’“”\u3000\u200b\ufeff-]")

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


class InvalidIdentifier(ValueError):
    """An identifier that cannot be used; ``reason`` is a stable code, ``str()`` explains it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def canonical_text(raw: object) -> str:
    """NFKC-fold (full-width → ASCII), drop spaces, quotes and dashes, upper-case.

    Repeated until nothing changes (at most a few rounds): dropping a space can bring combining
    marks together that NFKC then reorders, and upper-casing can un-normalise. A fixpoint makes
    canonicalisation idempotent for any input, not only for plausible ID numbers.
    """
    if raw is None or raw is pd.NA or raw is pd.NaT or (isinstance(raw, float) and np.isnan(raw)):
        return ""
    text = str(raw)
    for _ in range(8):
        folded = _STRIP.sub("", unicodedata.normalize("NFKC", text)).upper()
        if folded == text:
            break
        text = folded
    return text


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def upgrade_15(id15: str) -> str:
    """Legacy 15-digit number → 18 digits: insert the century 19, append the check character."""
    body = id15[:6] + "19" + id15[6:]
    return body + id_check_char(body)


def canonical_id(raw: object, *, today: dt.date | None = None) -> str:
    """Canonical 18-character resident ID, or raise InvalidIdentifier with the reason.

    ``today`` bounds the birth date (a number cannot be issued for someone not yet born); tests
    pin it, callers leave it to the clock.
    """
    text = canonical_text(raw)
    if not text:
        raise InvalidIdentifier("ID_MISSING", "ID number is empty")
    if _ID15.fullmatch(text):
        text = upgrade_15(text)
    if len(text) != 18:
        raise InvalidIdentifier("ID_LENGTH", f"ID number has {len(text)} characters, expected 18")
    if not _ID18.fullmatch(text):
        raise InvalidIdentifier("ID_CHARACTERS", "ID number may hold only digits and a final X")
    if text[:2] not in _PROVINCES:
        raise InvalidIdentifier("ID_AREA", f"area code {text[:6]} names no province")
    try:
        born = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise InvalidIdentifier("ID_BIRTH_DATE", f"birth date {text[6:14]} is not a date") from None
    if born.year < _EARLIEST_BIRTH_YEAR or born > (today or dt.date.today()):
        raise InvalidIdentifier("ID_BIRTH_DATE", f"birth date {text[6:14]} is out of range")
    expected = id_check_char(text[:17])
    if text[17] != expected:
        raise InvalidIdentifier(
            "ID_CHECK", f"check character is {text[17]}, expected {expected} (mistyped digit?)"
        )
    return text


def is_valid_id(raw: object) -> bool:
    try:
        canonical_id(raw)
    except InvalidIdentifier:
        return False
    return True


def birth_date(canonical: str) -> dt.date:
    return dt.date(int(canonical[6:10]), int(canonical[10:12]), int(canonical[12:14]))


def gender(canonical: str) -> str:
    """'M' or 'F' from the sequence number's parity (odd = male)."""
    return "M" if int(canonical[16]) % 2 else "F"


def mask_id(canonical: str) -> str:
    """210112********123X: area code and last four kept, as on printed reports."""
    if len(canonical) != 18:
        return "*" * len(canonical)
    return canonical[:6] + "*" * 8 + canonical[14:]


def mask_name(name: str) -> str:
    """张*明 / 李*: keep the surname and, for longer names, the last character."""
    if not name:
        return ""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def make_id(area: str, born: dt.date, sequence: int) -> str:
    """Build a valid 18-digit number (used by the synthetic generator and tests)."""
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    return body + id_check_char(body)


@dataclass(frozen=True)
class CanonicalIds:
    """Result of canonicalising a column: values (None where invalid) and reason codes."""

    values: pd.Series
    reasons: pd.Series  # "" where valid
    messages: pd.Series


# The ASCII characters ``_STRIP`` removes, as a class for Arrow's RE2 (found by asking _STRIP of
# each ASCII character, so the two cannot disagree): on ASCII text NFKC changes nothing, so
# canonical_text is this removal and an upper-casing.
_STRIP_ASCII_RE2 = "[" + "".join(f"\\x{{{code:02x}}}" for code in range(128)
                                 if _STRIP.fullmatch(chr(code))) + "]"


def canonical_texts(raw: pd.Series) -> pd.Series:
    """``canonical_text`` over a column (missing values give "").

    ASCII text is folded in Arrow; the rest column-wise in Python, where one round is already
    the fixpoint for ASCII results and the rare rest is looped.
    """
    data = arrow_strings(raw)
    if data is None:
        return _canonical_texts_python(raw)
    data = pc.fill_null(data, "")
    plain = pc.string_is_ascii(data).to_numpy(zero_copy_only=False)
    folded = pc.ascii_upper(pc.replace_substring_regex(data, _STRIP_ASCII_RE2, ""))
    values = folded.to_numpy(zero_copy_only=False).astype(object)
    if not plain.all():
        values[~plain] = _canonical_texts_python(raw[~plain]).to_numpy()
    return pd.Series(values, index=raw.index, dtype=object)


def _canonical_texts_python(raw: pd.Series) -> pd.Series:
    text = raw.astype("string").fillna("").str.normalize("NFKC")
    text = text.str.replace(_STRIP, "", regex=True).str.upper().astype(object)
    values = text.to_numpy()
    for i in np.flatnonzero([not t.isascii() for t in values]):
        values[i] = canonical_text(values[i])
    return pd.Series(values, index=raw.index, dtype=object)


def _digit_matrix(text: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``text`` that are ``width`` ASCII characters long, as a (rows, width) uint8 array."""
    rows = np.flatnonzero([len(t) == width and t.isascii() for t in text])
    if not len(rows):
        return rows, np.zeros((0, width), dtype=np.uint8)
    joined = "".join(text[rows]).encode("ascii")
    return rows, np.frombuffer(joined, dtype=np.uint8).reshape(-1, width)


def _is_digit(chars: np.ndarray) -> np.ndarray:
    return (chars >= ord("0")) & (chars <= ord("9"))


def _check_chars(digits17: np.ndarray) -> np.ndarray:
    """Check characters (as ASCII codes) for a (rows, 17) matrix of ASCII digits."""
    sums = (digits17.astype(np.int64) - ord("0")) @ np.array(_ID_WEIGHTS, dtype=np.int64)
    return np.frombuffer(_ID_CHECK.encode("ascii"), dtype=np.uint8)[sums % 11]


def _upgrade_15_column(text: np.ndarray) -> np.ndarray:
    """``upgrade_15`` applied to every all-digit 15-character entry of ``text``."""
    rows, chars = _digit_matrix(text, 15)
    legacy = _is_digit(chars).all(axis=1)
    rows, chars = rows[legacy], chars[legacy]
    if not len(rows):
        return text
    century = np.tile(np.frombuffer(b"19", dtype=np.uint8), (len(rows), 1))
    body = np.hstack([chars[:, :6], century, chars[:, 6:]])
    full = np.hstack([body, _check_chars(body)[:, None]])
    text = text.copy()
    text[rows] = [full[i].tobytes().decode("ascii") for i in range(len(rows))]
    return text


def _number(chars: np.ndarray) -> np.ndarray:
    """Integer value of each row of an ASCII digit matrix."""
    powers = 10 ** np.arange(chars.shape[1] - 1, -1, -1, dtype=np.int64)
    return (chars.astype(np.int64) - ord("0")) @ powers


def _valid_birth_dates(year: np.ndarray, month: np.ndarray, day: np.ndarray, today: dt.date):
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    last_day = month_days[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    is_date = (month >= 1) & (month <= 12) & (day >= 1) & (day <= last_day)
    stamp = year * 10000 + month * 100 + day
    today_stamp = today.year * 10000 + today.month * 100 + today.day
    return is_date & (year >= _EARLIEST_BIRTH_YEAR) & (stamp <= today_stamp)


_PROVINCE_TABLE = np.zeros(100, dtype=bool)
_PROVINCE_TABLE[[int(p) for p in _PROVINCES]] = True


def _passes_all_checks(text: np.ndarray, today: dt.date) -> np.ndarray:
    """Boolean mask of canonical texts that are valid 18-character IDs (no reason needed)."""
    ok = np.zeros(len(text), dtype=bool)
    rows, chars = _digit_matrix(text, 18)
    if not len(rows):
        return ok
    last = chars[:, 17]
    shaped = _is_digit(chars[:, :17]).all(axis=1) & (_is_digit(last) | (last == ord("X")))
    ok[rows[shaped]] = _valid_matrix(chars[shaped], today)
    return ok


def _valid_matrix(chars: np.ndarray, today: dt.date) -> np.ndarray:
    """Rows of a (rows, 18) matrix of well-shaped ID characters whose birth date, area and
    check character hold."""
    born = _valid_birth_dates(
        _number(chars[:, 6:10]), _number(chars[:, 10:12]), _number(chars[:, 12:14]), today
    )
    province = _PROVINCE_TABLE[_number(chars[:, :2])]
    check = _check_chars(chars[:, :17]) == chars[:, 17]
    return born & province & check


def canonicalise_ids(raw: pd.Series, *, today: dt.date | None = None) -> CanonicalIds:
    """Canonicalise a column of ID numbers; the same answers as ``canonical_id`` row by row.

    The common case (clean or merely untidy, valid numbers) is checked column-wise; only the
    invalid rows go through the scalar function, which says why each one fails.
    """
    today = today or dt.date.today()
    text = _upgrade_15_column(canonical_texts(raw).to_numpy())
    ok = _passes_all_checks(text, today)
    values = np.where(ok, text, None).astype(object)
    reasons = np.full(len(text), "", dtype=object)
    messages = np.full(len(text), "", dtype=object)
    original = raw.to_numpy(dtype=object)
    for i in np.flatnonzero(~ok):
        try:
            values[i] = canonical_id(original[i], today=today)
        except InvalidIdentifier as err:
            reasons[i] = err.reason
            messages[i] = str(err)
    index = raw.index
    return CanonicalIds(
        values=pd.Series(values, index=index, dtype=object),
        reasons=pd.Series(reasons, index=index, dtype=object),
        messages=pd.Series(messages, index=index, dtype=object),
    )


def canonical_uscc(raw: object) -> str:
    text = canonical_text(raw)
    if len(text) != 18:
        raise InvalidIdentifier(
            "USCC_LENGTH", f"credit code has {len(text)} characters, expected 18"
        )
    bad = [c for c in text if c not in USCC_ALPHABET]
    if bad:
        raise InvalidIdentifier("USCC_CHARACTERS", f"credit code holds characters {''.join(bad)!r}")
    return text


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_check_ok(code: str) -> bool:
    """True when the 18th character matches. Some early pilot codes fail legitimately: callers
    treat False as a warning, never as a rejection."""
    return uscc_check_char(code[:17]) == code[17]


def org_code_check_char(first8: str) -> str:
    """GB 11714 organisation code check (positions 9–17 of a credit code)."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    value = 11 - total % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def make_uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


@dataclass(frozen=True)
class CheckedUscc:
    """A canonical credit code and the warnings it raised (never a rejection on a check)."""

    code: str
    warnings: tuple[str, ...]  # "USCC_CHECK", "USCC_ORG_CHECK"


def check_uscc(raw: object) -> CheckedUscc:
    """Canonicalise a credit code; raise only on length/alphabet, warn on failed checks.

    Early pilot codes were issued before the check rules settled, so a failed check character
    (or organisation-code check in positions 9–17) is reported, and the record is kept.
    """
    code = canonical_uscc(raw)
    warnings: list[str] = []
    if not uscc_check_ok(code):
        warnings.append("USCC_CHECK")
    if org_code_check_char(code[8:16]) != code[16]:
        warnings.append("USCC_ORG_CHECK")
    return CheckedUscc(code=code, warnings=tuple(warnings))


def near_miss_ids(raw: pd.Series, *, today: dt.date | None = None) -> pd.Series:
    """Per row, the valid ID numbers one typing slip away from an 18-character number that is
    not itself valid: one body digit wrong, two adjacent body digits swapped, or the check
    character wrong. A tuple per row (empty for a valid, missing or otherwise unusable number).

    A MOD 11-2 number catches every such slip, so the mistyped number fails; of the ~170
    numbers one slip away only those whose check character, area and birth date hold can be
    what was meant — about one per digit position (the check fixes the wrong digit's value).
    All candidates of all rows are built and checked as one matrix; used at intake for the few
    rows whose ID is unusable (their tokens let the matcher recognise the person the number
    was meant to be: docs/matching.md)."""
    today = today or dt.date.today()
    text = _upgrade_15_column(canonical_texts(raw).to_numpy())
    out = pd.Series([()] * len(text), index=raw.index, dtype=object)
    rows, chars = _digit_matrix(text, 18)
    if not len(rows):
        return out
    last = chars[:, 17]
    shaped = _is_digit(chars[:, :17]).all(axis=1) & (_is_digit(last) | (last == ord("X")))
    rows, chars = rows[shaped], chars[shaped]
    unusable = ~_valid_matrix(chars, today)
    rows, chars = rows[unusable], chars[unusable]
    if not len(rows):
        return out
    body, last = chars[:, :17], chars[:, 17]
    digits = body.astype(np.int64) - ord("0")
    weights = np.array(_ID_WEIGHTS, dtype=np.int64)
    total = digits @ weights
    check_of = np.frombuffer(_ID_CHECK.encode("ascii"), dtype=np.uint8)
    variants, owners = [], []

    def keep_if_checked(new_total: np.ndarray, eligible: np.ndarray, build) -> None:
        # a changed body keeps the check character it was typed with: only bodies whose check
        # character that is can be what was meant (the arithmetic is done before any copy)
        hit = np.flatnonzero(eligible & (check_of[new_total % 11] == last))
        if len(hit):
            variants.append(build(hit))
            owners.append(hit)

    for at in range(17):  # one digit wrong: every other digit at this position
        for digit in range(10):
            def build(hit, at=at, digit=digit):
                changed = body[hit].copy()
                changed[:, at] = ord("0") + digit
                return changed
            keep_if_checked(total + weights[at] * (digit - digits[:, at]),
                            digits[:, at] != digit, build)
    for at in range(16):  # two adjacent digits swapped
        def build(hit, at=at):
            swapped = body[hit].copy()
            swapped[:, [at, at + 1]] = body[hit][:, [at + 1, at]]
            return swapped
        keep_if_checked(total + (weights[at] - weights[at + 1]) * (digits[:, at + 1]
                                                                   - digits[:, at]),
                        digits[:, at] != digits[:, at + 1], build)
    typed_check = np.concatenate([last[o] for o in owners]) if owners else last[:0]
    changed = np.vstack(variants) if variants else body[:0]
    # the body as typed, with the check character it should have had (the check mistyped)
    full = np.vstack([np.hstack([changed, typed_check[:, None]]),
                      np.hstack([body, _check_chars(body)[:, None]])])
    owner = np.concatenate([*owners, np.arange(len(rows))])
    valid = _valid_matrix(full, today)
    full, owner = full[valid], owner[valid]
    as_text = full.reshape(-1).tobytes().decode("ascii")
    numbers = np.array([as_text[i * 18:(i + 1) * 18] for i in range(len(full))], dtype=object)
    order = np.lexsort((numbers.astype(str), owner))
    owner, numbers = owner[order], numbers[order]
    owners, starts = np.unique(owner, return_index=True)
    groups = np.split(numbers, starts[1:])
    found = np.empty(len(owners), dtype=object)
    found[:] = [tuple(dict.fromkeys(g)) for g in groups]  # sorted, each number once
    out.iloc[rows[owners]] = found
    return out
