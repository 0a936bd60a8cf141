"""Vectorised canonicalisers for the amounts and dates partner feeds write in many ways.

Each takes a Series of strings as decoded (connectors/decoding.py) and returns
``Canonicalised(values, reasons)``: the canonical values, and per row ``""`` or a reason code.
A value is produced only when the text says it unambiguously; anything else gets NaN/NaT and a
reason, so a row is never silently altered. A blank cell is not an error here (NaN, reason ``""``):
whether a field is required is the contract's business (verification/validation.py).

Amounts (yuan): ``1234.5``, ``1,234.50``, ``1234.5元``, ``￥1,234``, ``¥ 12``, ``１２３４．５``
(full-width), ``-12.00`` / ``－12``, ``12.5万`` / ``12.5万元`` (x 10,000). Not accepted: a comma
grouping that is not thousands (``12,34.5`` could be a decimal comma), other currencies, words.

Dates: ``2026-10-01``, ``2026/10/01``, ``2026.10.1``, ``20261001``, ``2026年10月1日``; with
``month=True`` also ``2026-10``, ``2026/10``, ``202610``, ``2026年10月`` (values are the first
day of the month; a full date is accepted for a month only when it is the 1st).
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

import pandas as pd

AMOUNT_REASON = "BAD_AMOUNT"
THOUSANDS_REASON = "BAD_THOUSANDS"
DATE_REASON = "BAD_DATE"
DATE_RANGE_REASON = "DATE_OUT_OF_RANGE"
NOT_A_MONTH_REASON = "NOT_A_MONTH"
MIN_YEAR, MAX_YEAR = 1900, 2100

_PLAIN = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_GROUPED = r"-?\d{1,3}(?:,\d{3})+(?:\.\d*)?"
_DATE = (r"(?P<y>\d{4})(?:(?P<s>[-/.])(?P<m>\d{1,2})(?P=s)(?P<d>\d{1,2})"
         r"|(?P<m2>\d{2})(?P<d2>\d{2})|年(?P<m3>\d{1,2})月(?P<d3>\d{1,2})日)")
_MONTH = r"(?P<y>\d{4})(?:[-/.](?P<m>\d{1,2})|(?P<m2>\d{2})|年(?P<m3>\d{1,2})月)"


class Canonicalised(NamedTuple):
    values: pd.Series
    reasons: pd.Series


def _normalised(raw: pd.Series) -> pd.Series:
    """NFKC (full-width digits, ￥, ，, ．, －) and the minus sign; stripped; NA for blanks."""
    text = raw.astype("string")
    text = text.map(lambda v: unicodedata.normalize("NFKC", v), na_action="ignore")
    text = text.astype("string").str.replace("\u2212", "-", regex=False).str.strip()
    return text.where(text != "", pd.NA)


def _reasons(index: pd.Index) -> pd.Series:
    return pd.Series("", index=index, dtype=object)


def canonical_amounts(raw: pd.Series) -> Canonicalised:
    """Amounts in yuan as float64, with a reason for every non-blank value that is not one."""
    text = _normalised(raw)
    present = text.notna()
    body = text.str.replace(r"^(?:¥|RMB|CNY)\s*", "", regex=True)
    body = body.str.replace(r"\s*(?:元|圆|人民币)$", "", regex=True)
    wan = body.str.endswith("万", na=False)
    body = body.where(~wan, body.str[:-1].str.rstrip())
    grouped = body.str.fullmatch(_GROUPED, na=False)
    plain = body.str.fullmatch(_PLAIN, na=False)
    digits = body.where(~grouped, body.str.replace(",", "", regex=False))
    ok = present & (grouped | plain)
    values = pd.to_numeric(digits.where(ok), errors="coerce").astype("float64")
    values = values.where(~wan, values * 10_000)
    reasons = _reasons(raw.index)
    has_comma = body.str.contains(",", regex=False, na=False)
    reasons[present & ~ok & has_comma] = THOUSANDS_REASON
    reasons[present & ~ok & ~has_comma] = AMOUNT_REASON
    return Canonicalised(values, reasons)


def _first(parts: pd.DataFrame, *names: str) -> pd.Series:
    out = parts[names[0]]
    for name in names[1:]:
        if name in parts:
            out = out.fillna(parts[name])
    return out


def _build_dates(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    frame = pd.DataFrame({"year": year, "month": month, "day": day}).astype("float64")
    return pd.to_datetime(frame, errors="coerce")


def canonical_dates(raw: pd.Series, *, month: bool = False) -> Canonicalised:
    """Dates as datetime64 (or first-of-month with ``month=True``), with per-row reasons."""
    text = _normalised(raw)
    present = text.notna()
    full = text.str.extract(f"^{_DATE}$")
    y = full["y"]
    m = _first(full, "m", "m2", "m3")
    d = _first(full, "d", "d2", "d3")
    if month:
        part = text.str.extract(f"^{_MONTH}$")
        only_month = part["y"].notna() & y.isna()
        y = y.where(~only_month, part["y"])
        m = m.where(~only_month, _first(part, "m", "m2", "m3"))
        d = d.where(~only_month, "1")
    values = _build_dates(y, m, d)
    years = pd.to_numeric(y, errors="coerce")
    in_range = years.between(MIN_YEAR, MAX_YEAR)
    reasons = _reasons(raw.index)
    reasons[present & values.isna()] = DATE_REASON
    reasons[present & values.notna() & ~in_range] = DATE_RANGE_REASON
    if month:
        not_first = values.notna() & (values.dt.day != 1)
        reasons[present & not_first] = NOT_A_MONTH_REASON
    bad = reasons != ""
    return Canonicalised(values.where(~bad, pd.NaT).astype("datetime64[ns]"), reasons)


def reason_counts(reasons: pd.Series) -> dict[str, int]:
    """How many rows got each reason (for logs: counts only, never values)."""
    hits = reasons[reasons != ""]
    return {str(k): int(v) for k, v in hits.value_counts().items()} if len(hits) else {}


__all__ = ["Canonicalised", "canonical_amounts", "canonical_dates", "reason_counts"]
