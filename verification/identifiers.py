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

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# GB/T 2260 province-level prefixes (first two digits of the area code).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 "
    "65 71 81 82 83 91".split()
)
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
    """NFKC-fold (full-width → ASCII), drop spaces, quotes and dashes, upper-case."""
    if raw is None or (isinstance(raw, float) and np.isnan(raw)):
        return ""
    text = unicodedata.normalize("NFKC", str(raw))
    return _STRIP.sub("", text).upper()


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def upgrade_15(id15: str) -> str:
    """Legacy 15-digit number → 18 digits: insert the century 19, append the check character."""
    body = id15[:6] + "19" + id15[6:]
    return body + id_check_char(body)


def canonical_id(raw: object) -> str:
    """Canonical 18-character resident ID, or raise InvalidIdentifier with the reason."""
    text = canonical_text(raw)
    if not text:
        raise InvalidIdentifier("ID_MISSING", "ID number is empty")
    if len(text) == 15 and text.isdigit():
        text = upgrade_15(text)
    if len(text) != 18:
        raise InvalidIdentifier("ID_LENGTH", f"ID number has {len(text)} characters, expected 18")
    if not (text[:17].isdigit() and (text[17].isdigit() or text[17] == "X")):
        raise InvalidIdentifier("ID_CHARACTERS", "ID number may hold only digits and a final X")
    if text[:2] not in _PROVINCES:
        raise InvalidIdentifier("ID_AREA", f"area code {text[:6]} names no province")
    try:
        born = dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise InvalidIdentifier("ID_BIRTH_DATE", f"birth date {text[6:14]} is not a date") from None
    if born.year < 1880 or born > dt.date.today():
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


def canonicalise_ids(raw: pd.Series) -> CanonicalIds:
    """Canonicalise a column of ID numbers. Volume here is one value per partner row, so the
    cheap vectorised path handles the common already-clean case and only the rest is looped."""
    text = raw.astype("string").fillna("")
    clean = text.str.fullmatch(r"\d{17}[\dX]")
    values = pd.Series([None] * len(text), index=text.index, dtype=object)
    reasons = pd.Series([""] * len(text), index=text.index, dtype=object)
    messages = pd.Series([""] * len(text), index=text.index, dtype=object)
    clean_idx = clean[clean.fillna(False)].index
    if len(clean_idx):
        digits = np.frombuffer(
            "".join(text.loc[clean_idx].str.slice(0, 17)).encode(), dtype=np.uint8
        ).reshape(-1, 17) - ord("0")
        sums = digits.astype(np.int64) @ np.array(_ID_WEIGHTS, dtype=np.int64)
        expected = np.array(list(_ID_CHECK))[sums % 11]
        ok = text.loc[clean_idx].str.slice(17).to_numpy() == expected
        ok_idx = clean_idx[ok]
        values.loc[ok_idx] = text.loc[ok_idx]
        clean_idx = clean_idx[~ok]
    slow_idx = text.index.difference(values.dropna().index)
    for i in slow_idx:
        try:
            values.at[i] = canonical_id(text.at[i])
        except InvalidIdentifier as err:
            reasons.at[i] = err.reason
            messages.at[i] = str(err)
    return CanonicalIds(values=values, reasons=reasons, messages=messages)


def canonical_uscc(raw: object) -> str:
    text = canonical_text(raw)
    if len(text) != 18:
        raise InvalidIdentifier("USCC_LENGTH", f"credit code has {len(text)} characters, expected 18")
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
