"""Validators built from the contracts in schemas/ — never written a second time by hand.

A feed or batch file arrives as a frame of strings (one column per field, plus ``_line``, the
1-based line in the file as received). Validation parses each typed field, canonicalises
identifiers, checks the contract's constraints with pandera, and splits the rows: accepted rows
come back typed, every other row is quarantined with its line, field, reason code and a message a
person can act on. ``received == accepted + quarantined`` always holds.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from schemas import load_contract
from verification import identifiers

QUARANTINE_COLUMNS = ["line", "field", "reason", "message"]

_CHECK_REASONS = {
    "not_nullable": ("REQUIRED", "is required but empty"),
    "isin": ("NOT_ALLOWED", "is not one of the allowed values"),
    "greater_than_or_equal_to": ("BELOW_MINIMUM", "is below the minimum"),
    "less_than_or_equal_to": ("ABOVE_MAXIMUM", "is above the maximum"),
    "str_length": ("TOO_LONG", "is too long"),
    "str_matches": ("BAD_FORMAT", "does not have the required format"),
}


@dataclass
class Validated:
    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    received: int
    warnings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS))

    @property
    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "accepted": len(self.accepted),
            "quarantined": int(self.quarantine["line"].nunique()) if len(self.quarantine) else 0,
        }


def _nfkc(series: pd.Series) -> pd.Series:
    return series.map(lambda v: unicodedata.normalize("NFKC", v) if isinstance(v, str) else v)


def parse_number(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'1,234.50', '1234.5元', '￥1234', full-width digits → float; returns (values, bad mask)."""
    text = _nfkc(raw.astype("string")).str.strip()
    text = text.str.replace(r"[,\s元¥]", "", regex=True)
    blank = text.isna() | (text == "")
    values = pd.to_numeric(text.where(~blank), errors="coerce")
    return values.astype("float64"), values.isna() & ~blank


def parse_date(raw: pd.Series, yearmonth: bool = False) -> tuple[pd.Series, pd.Series]:
    """'2026-10-01', '2026/10/01', '20261001' (and '2026-10' for yearmonth) → datetime64."""
    text = _nfkc(raw.astype("string")).str.strip().str.replace("/", "-", regex=False)
    blank = text.isna() | (text == "")
    if yearmonth:
        six = text.str.fullmatch(r"\d{6}", na=False)
        text = text.where(~six, text.str[:4] + "-" + text.str[4:])
        text = text.where(~text.str.fullmatch(r"\d{4}-\d{1,2}", na=False), text + "-01")
    compact = text.str.fullmatch(r"\d{8}", na=False)
    text = text.where(~compact, text.str[:4] + "-" + text.str[4:6] + "-" + text.str[6:])
    values = pd.to_datetime(text.where(~blank), format="%Y-%m-%d", errors="coerce")
    return values, values.isna() & ~blank


@cache
def _pandera_schema(kind: str) -> pa.DataFrameSchema:
    columns = {}
    for spec in load_contract(kind)["fields"]:
        c = spec.get("constraints", {})
        checks = []
        if "enum" in c:
            checks.append(pa.Check.isin(c["enum"]))
        if "minimum" in c:
            checks.append(pa.Check.ge(c["minimum"]))
        if "maximum" in c:
            checks.append(pa.Check.le(c["maximum"]))
        if "maxLength" in c:
            checks.append(pa.Check.str_length(max_value=c["maxLength"]))
        if "pattern" in c:
            checks.append(pa.Check.str_matches(f"^(?:{c['pattern']})$"))
        columns[spec["name"]] = pa.Column(
            nullable=not c.get("required", False), checks=checks, required=False
        )
    return pa.DataFrameSchema(columns, strict=False)


def _problems(mask: pd.Series, lines: pd.Series, name: str, reason: str,
              message: str) -> pd.DataFrame:
    hit = mask[mask].index
    return pd.DataFrame(
        {"line": lines.loc[hit].to_numpy(), "field": name, "reason": reason, "message": message}
    )


def _parse_fields(frame: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    typed = pd.DataFrame(index=frame.index)
    problems: list[pd.DataFrame] = []
    lines = frame["_line"]
    for spec in load_contract(kind)["fields"]:
        name, ftype = spec["name"], spec.get("type", "string")
        raw = frame[name] if name in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
        title = f"{spec['title']} ({name})"
        if ftype in ("number", "integer"):
            values, bad = parse_number(raw)
            if ftype == "integer":
                bad |= values.notna() & (values % 1 != 0)
            problems.append(_problems(bad, lines, name, "BAD_NUMBER", f"{title} is not a number"))
        elif ftype in ("date", "yearmonth"):
            values, bad = parse_date(raw, yearmonth=ftype == "yearmonth")
            problems.append(_problems(bad, lines, name, "BAD_DATE", f"{title} is not a valid date"))
        else:
            values = raw.astype("string").str.strip()
            values = values.where(values != "", pd.NA)
            if spec.get("x-identifier") == "resident_id":
                values = _resident_ids(values, lines, title, problems, name)
        typed[name] = values
    return typed, problems


def _resident_ids(values, lines, title, problems, name) -> pd.Series:  # noqa: ANN001
    result = identifiers.canonicalise_ids(values)
    bad = (result.reasons != "") & values.notna()
    for reason in result.reasons[bad].unique():
        mask = result.reasons == reason
        sample = result.messages[mask].iloc[0]
        problems.append(_problems(mask, lines, name, reason, f"{title}: {sample}"))
    return result.values.astype("string")


def _uscc_warnings(typed: pd.DataFrame, kind: str, lines: pd.Series) -> pd.DataFrame:
    """A failing credit-code check is a warning: some early codes fail legitimately."""
    found = [pd.DataFrame(columns=QUARANTINE_COLUMNS)]
    msg = "credit-code check character fails (accepted: some early codes fail legitimately)"
    for spec in load_contract(kind)["fields"]:
        if spec.get("x-identifier") == "uscc" and spec["name"] in typed:
            codes = typed[spec["name"]]
            failing = codes.notna() & ~codes.map(_uscc_ok)
            found.append(_problems(failing, lines, spec["name"], "USCC_CHECK", msg))
    return pd.concat(found, ignore_index=True)


def _uscc_ok(code: Any) -> bool:
    try:
        return identifiers.uscc_check_ok(identifiers.canonical_uscc(code))
    except identifiers.InvalidIdentifier:
        return False


def _constraint_problems(typed: pd.DataFrame, kind: str, lines: pd.Series) -> pd.DataFrame:
    try:
        _pandera_schema(kind).validate(typed, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        cases = cases[cases["index"].notna()]
        titles = {f["name"]: f["title"] for f in load_contract(kind)["fields"]}
        rows = []
        for (column, check), group in cases.groupby(["column", "check"], dropna=False):
            check_name = str(check).split("(")[0]
            reason, text = _CHECK_REASONS.get(check_name, ("INVALID", f"fails {check}"))
            idx = group["index"].astype("int64").to_numpy()
            rows.append(pd.DataFrame({
                "line": lines.loc[idx].to_numpy(), "field": column, "reason": reason,
                "message": f"{titles.get(column, column)} ({column}) {text}",
            }))
        if rows:
            return pd.concat(rows, ignore_index=True)
    return pd.DataFrame(columns=QUARANTINE_COLUMNS)


def validate_frame(frame: pd.DataFrame, kind: str) -> Validated:
    """Validate a frame of strings (with ``_line``) against the contract for ``kind``."""
    frame = frame.reset_index(drop=True)
    lines = frame["_line"]
    typed, problems = _parse_fields(frame, kind)
    problems.append(_constraint_problems(typed, kind, lines))
    keys = load_contract(kind).get("primaryKey", [])
    if keys:
        dup = typed.duplicated(subset=keys, keep="first") & typed[keys].notna().all(axis=1)
        problems.append(_problems(dup, lines, keys[0], "DUPLICATE_KEY",
                                  f"{'+'.join(keys)} repeats an earlier row"))
    quarantine = pd.concat([p for p in problems if len(p)], ignore_index=True) if any(
        len(p) for p in problems) else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    # A value that failed to parse is also "empty" to pandera: report only the first problem.
    quarantine = quarantine.drop_duplicates(["line", "field"], keep="first")
    bad_lines = set(quarantine["line"].tolist())
    keep = ~lines.isin(bad_lines)
    accepted = typed[keep].copy()
    accepted["_line"] = lines[keep].to_numpy()
    warnings = _uscc_warnings(accepted, kind, accepted["_line"])
    return Validated(accepted=accepted, quarantine=quarantine.sort_values(["line", "field"])
                     .reset_index(drop=True), received=len(frame), warnings=warnings)
