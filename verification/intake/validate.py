"""Validators built from the contracts in schemas/ — never written a second time by hand.

A feed or batch file arrives as a frame of strings (one column per field, plus ``_line``, the
1-based line in the file as received). Validation parses each typed field, canonicalises
identifiers, checks the contract's constraints (vectorised masks generated from each field's
``constraints``; pandera did this until its import cost most of a small file's check), and
splits the rows: accepted rows
come back typed, every other row is quarantined with its line, field, reason code and a message a
person can act on. ``received == accepted + quarantined`` always holds.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

from schemas import Contract
from verification.intake import identifiers
from verification.intake import problems as row_problems
from verification.intake.earlier_keys import row_hashes
from verification.intake.textcheck import arrow_strings, future_date_problems

QUARANTINE_COLUMNS = ["line", "field", "reason", "message"]
# Text as validated: Arrow-backed, so strip, compare, length and take run in Arrow's kernels on
# the buffers the CSV reader filled (no Python string per cell).
TEXT = pd.StringDtype("pyarrow")

# a failed check → the reason code (its words: codes.yaml row_problems)
_CHECK_REASONS = {
    "not_nullable": "REQUIRED", "isin": "NOT_ALLOWED", "greater_than_or_equal_to": "BELOW_MINIMUM",
    "less_than_or_equal_to": "ABOVE_MAXIMUM", "str_length": "TOO_LONG",
    "str_matches": "BAD_FORMAT",
}


@dataclass
class Validated:
    accepted: pd.DataFrame
    quarantine: pd.DataFrame
    received: int
    warnings: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS))
    # accepted rows whose person ID was unusable (see ``validate_frame(identity_unresolved=…)``)
    unresolved: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "accepted": len(self.accepted),
            "quarantined": int(self.quarantine["line"].nunique()) if len(self.quarantine) else 0,
        }


def _nfkc(series: pd.Series) -> pd.Series:
    return series.map(lambda v: unicodedata.normalize("NFKC", v) if isinstance(v, str) else v)


# Large feeds repeat themselves (twelve monthly rows per person, a few hundred employers, a dozen
# months): a column with few distinct values is parsed once per distinct value and the answers
# are put back by position. Every parser here is a function of the value alone, so the answers are
# those of parsing row by row.
_DISTINCT_MIN_ROWS = 1000
_DISTINCT_SHARE = 0.7
# A plain ASCII decimal: NFKC, strip and the separator removal leave it as it is, so it parses
# directly (in Arrow) to the float the general path would give.
_PLAIN_DECIMAL = r"^[0-9]{1,15}(\.[0-9]{1,15})?$"
# What a number may carry anywhere in it and is removed (spaces, 元, ¥), and the thousands
# grouping a comma must follow; one definition for the Python path and the Arrow one.
_NUMBER_NOISE = r"[\s元¥]"
_GROUPED = r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?"
_NUMBER_TEXT = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"  # what may be parsed
# _NUMBER_NOISE for Arrow's RE2 on text that is ASCII but for 元 and ¥ (the ASCII characters
# found by asking the Python class of each): on such text NFKC changes nothing and \d is [0-9]
_NUMBER_NOISE_RE2 = "[" + "".join(f"\\x{{{code:02x}}}" for code in range(128)
                                  if re.fullmatch(_NUMBER_NOISE, chr(code))) + "元¥]"


def _per_distinct(raw: pd.Series, parse: Callable[[pd.Series], Any]) -> Any:
    """``parse(raw)``, computed on the distinct values when ``raw`` repeats enough.

    ``parse`` returns a Series or a tuple of Series aligned with its input."""
    if len(raw) < _DISTINCT_MIN_ROWS:
        return parse(raw)
    codes, distinct = _distinct(raw)
    if len(distinct) - 1 > _DISTINCT_SHARE * len(raw):
        return parse(raw)
    parsed = parse(distinct)
    positions = np.where(codes < 0, len(distinct) - 1, codes)

    def spread(series: pd.Series) -> pd.Series:
        return series.iloc[positions].set_axis(raw.index)

    return tuple(spread(p) for p in parsed) if isinstance(parsed, tuple) else spread(parsed)


def _distinct(raw: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(codes, distinct values then one missing value): ``raw`` is ``distinct.iloc[codes]``, a
    missing value coded -1. An Arrow-backed column is dictionary-encoded in Arrow."""
    if raw.dtype == TEXT:
        encoded = pc.dictionary_encode(arrow_strings(raw))
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        values = pyarrow.concat_arrays([encoded.dictionary.cast(pyarrow.large_string()),
                                        pyarrow.nulls(1, pyarrow.large_string())])
        return codes.astype(np.int64), pd.Series(pd.arrays.ArrowStringArray(values))
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    distinct = pd.Series([*np.asarray(uniques, dtype=object), None], dtype=object)
    if isinstance(raw.dtype, pd.StringDtype):
        distinct = distinct.astype(raw.dtype)
    return codes, distinct


def parse_number(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'1,234.50', '1234.5元', '￥1234', full-width digits → float; returns (values, bad mask)."""
    data = arrow_strings(raw) if len(raw) >= _DISTINCT_MIN_ROWS else None
    if data is None:
        return _parse_number_text(raw)
    plain = pc.fill_null(pc.match_substring_regex(data, _PLAIN_DECIMAL), False).to_numpy(
        zero_copy_only=False)
    values = np.full(len(raw), np.nan)
    values[plain] = pc.cast(data.filter(pyarrow.array(plain)), pyarrow.float64()).to_numpy()
    bad = np.zeros(len(raw), dtype=bool)
    if not plain.all():
        rest_at = np.flatnonzero(~plain)
        separated, parsed = _separated_decimals(data.take(pyarrow.array(rest_at)))
        values[rest_at[separated]] = parsed
        left = np.zeros(len(raw), dtype=bool)
        left[rest_at[~separated]] = True
        if left.any():
            rest, rest_bad = _per_distinct(raw[left], _parse_number_text)
            values[left], bad[left] = rest.to_numpy(), rest_bad.to_numpy()
    return pd.Series(values, index=raw.index), pd.Series(bad, index=raw.index)


def _separated_decimals(data: pyarrow.Array) -> tuple[np.ndarray, np.ndarray]:
    """Which values ``_parse_number_text`` reads as a plain decimal once noise and thousands
    separators are gone ('5,949.98', '4019.21元', ' 88 '), and their floats — in Arrow, for
    text that is ASCII but for 元 and ¥ (anything else is left to the Python path)."""
    cleaned = pc.replace_substring_regex(data, _NUMBER_NOISE_RE2, "")
    grouped = pc.match_substring_regex(cleaned, f"^(?:{_GROUPED})$")
    misplaced = pc.and_(pc.match_substring(cleaned, ","), pc.invert(grouped))
    digits = pc.replace_substring(cleaned, ",", "")
    separated = pc.fill_null(pc.and_(pc.and_(pc.string_is_ascii(cleaned), pc.invert(misplaced)),
                                     pc.match_substring_regex(digits, _PLAIN_DECIMAL)), False)
    parsed = pc.cast(digits.filter(separated), pyarrow.float64()).to_numpy()
    return separated.to_numpy(zero_copy_only=False), parsed


def _parse_number_text(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    text = _nfkc(raw.astype("string")).str.strip()
    text = text.str.replace(_NUMBER_NOISE, "", regex=True)
    # Commas only as thousands separators: "12,34.5" may be a decimal comma, so it is refused
    # rather than silently read as 1234.5.
    grouped = text.str.fullmatch(_GROUPED, na=False)
    misplaced = text.str.contains(",", regex=False, na=False) & ~grouped
    text = text.str.replace(",", "", regex=False)
    blank = text.isna() | (text == "")
    # Only decimal text reaches the parser: pandas' to_numeric crashes the process (SIGSEGV)
    # on an exponent of a dozen digits ('6e7138125436'), and reads 'inf' as infinity.
    decimal = text.str.fullmatch(_NUMBER_TEXT, na=False)
    values = pd.to_numeric(text.where(~blank & ~misplaced & decimal), errors="coerce")
    values = values.astype("float64").where(lambda v: np.isfinite(v))  # '1e999' overflows
    return values, values.isna() & ~blank


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


def constraint_failures(values: pd.Series, constraints: dict[str, Any]
                        ) -> list[tuple[str, pd.Series]]:
    """Which values of one column fail which of the contract's constraints, as boolean masks by
    check name (in name order: the order problems on one field are reported in). Vectorised
    over the column; a missing value fails only ``required`` (the other checks skip it)."""
    present = values.notna()
    failed: list[tuple[str, pd.Series]] = []
    if constraints.get("required"):
        failed.append(("not_nullable", ~present))
    given = values if present.all() else values[present]  # no copy of a full column
    if not len(given):
        return failed
    if "minimum" in constraints:
        failed.append(("greater_than_or_equal_to", ~(given >= constraints["minimum"])))
    if "enum" in constraints:
        failed.append(("isin", ~given.isin(constraints["enum"])))
    if "maximum" in constraints:
        failed.append(("less_than_or_equal_to", ~(given <= constraints["maximum"])))
    text = given if isinstance(given.dtype, pd.StringDtype) or not (
        {"maxLength", "pattern"} & constraints.keys()) else given.astype(str)
    if "maxLength" in constraints:
        failed.append(("str_length", ~(text.str.len() <= constraints["maxLength"])))
    if "pattern" in constraints:
        # Python's re, as the contract's patterns are written for it (its \d takes full-width
        # digits, RE2's does not), once per distinct value
        codes, distinct = pd.factorize(text)
        pattern = re.compile(f"(?:{constraints['pattern']})")
        matches = np.array([pattern.fullmatch(str(v)) is not None for v in distinct], dtype=bool)
        failed.append(("str_matches", pd.Series(~matches[codes], index=given.index)))
    return sorted(failed, key=lambda item: item[0])


def _repeated_keys(typed: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Rows whose ``keys`` equal an earlier row's — ``DataFrame.duplicated(keep="first")`` on
    integer codes: pandas' duplicated of an Arrow text column cost 0.8 CPU-s per million record
    ids, its codes (Arrow's dictionary encoding) and a duplicated of integers 0.2."""
    combined = np.zeros(len(typed), dtype=np.int64)
    for name in keys:
        values = typed[name]
        if values.dtype == TEXT:
            encoded = pc.dictionary_encode(arrow_strings(values))
            if isinstance(encoded, pyarrow.ChunkedArray):
                encoded = encoded.combine_chunks()
            codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
            size = len(encoded.dictionary)
        else:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            size = len(uniques)
        # renumbered per column: the combined code stays below the rows' count squared
        combined = pd.factorize(combined * (size + 1) + codes.astype(np.int64) + 1)[0]
    return pd.Series(combined).duplicated(keep="first").to_numpy()


def _problems(mask: pd.Series, lines: pd.Series, name: str, reason: str,
              message: str) -> pd.DataFrame:
    hit = mask[mask].index
    return pd.DataFrame(
        {"line": lines.loc[hit].to_numpy(), "field": name, "reason": reason, "message": message}
    )


def _parse_fields(frame: pd.DataFrame,
                  contract: Contract) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    typed = pd.DataFrame(index=frame.index)
    problems: list[pd.DataFrame] = []
    lines = frame["_line"]
    for spec in contract.fields:
        name, ftype = spec["name"], spec.get("type", "string")
        raw = frame[name] if name in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
        arrow = raw.dtype == TEXT  # strip and plain-number parsing run in Arrow on every row
        if ftype in ("number", "integer"):
            values, bad = parse_number(raw) if arrow else _per_distinct(raw, parse_number)
            if ftype == "integer":
                bad |= values.notna() & (values % 1 != 0)
            problems.append(_problems(bad, lines, name, "BAD_NUMBER",
                                      row_problems.message("BAD_NUMBER", spec)))
        elif ftype in ("date", "yearmonth"):
            values, bad = _per_distinct(
                raw, functools.partial(parse_date, yearmonth=ftype == "yearmonth"))
            problems.append(_problems(bad, lines, name, "BAD_DATE",
                                      row_problems.message("BAD_DATE", spec)))
        else:
            values = stripped_text(raw) if arrow else _per_distinct(raw, stripped_text)
            if spec.get("x-identifier") == "resident_id":
                values = _resident_ids(values, lines, spec, problems)
            if spec.get("x-identity") == "gender":
                values, bad = _per_distinct(values, parse_gender)
                problems.append(_problems(bad, lines, name, "BAD_GENDER",
                                          row_problems.message("BAD_GENDER", spec)))
        typed[name] = values
    return typed, problems


_GENDERS = {"男": "M", "男性": "M", "M": "M", "MALE": "M", "1": "M",
            "女": "F", "女性": "F", "F": "F", "FEMALE": "F", "2": "F"}
# GB/T 2261.1 "0 unknown" and "9 not stated": no evidence, not an error
_UNSTATED_GENDERS = {"0", "9", "未知", "未说明"}


def parse_gender(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """男/女, M/F, male/female or GB/T 2261.1 codes 1/2 → 'M'/'F'; 0/9 (unknown, not stated)
    → missing; anything else → missing and flagged."""
    text = _nfkc(values.astype("string")).str.strip().str.upper()
    gender = text.map(_GENDERS, na_action="ignore").astype("string")
    bad = text.notna() & gender.isna() & ~text.isin(_UNSTATED_GENDERS)
    return gender, bad


def identity_fields(contract: Contract) -> dict[str, str]:
    """The contract's optional identity fields (``x-identity``: birth_date, gender, address,
    phone) by field name. A bad value in one of them is a warning and the value is dropped: it
    only helps to place a record, and the row is evidence without it."""
    return {f["name"]: f["x-identity"] for f in contract.fields if "x-identity" in f}


def as_text(values: pd.Series) -> pd.Series:
    """``values`` as ``TEXT``; as Python-backed strings when Arrow cannot hold them (a lone
    surrogate, which a JSON Lines feed can carry as an escape)."""
    if values.dtype == TEXT:
        return values
    try:
        return values.astype(TEXT)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, UnicodeEncodeError):
        return values.astype("string")


def stripped_text(raw: pd.Series) -> pd.Series:
    """A text field as validated: surrounding whitespace removed, empty → missing."""
    values = as_text(raw).str.strip()
    return values.where(values != "", pd.NA)


def _canonical_ids(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Canonical IDs (as text), reasons, messages and whether there is a reason — computed on
    the distinct values, so the spread columns need no check of every row's string."""
    result = identifiers.canonicalise_ids(values)
    return (result.values.astype("string"), result.reasons, result.messages,
            result.reasons != "")


def _resident_ids(values, lines, spec, problems) -> pd.Series:  # noqa: ANN001
    """Canonical ID numbers; a problem per failing row, in the words of its reason with the
    check's own specifics (the check character expected) beside."""
    canonical, reasons, messages, failed = _per_distinct(values, _canonical_ids)
    failed = failed.to_numpy(bool)
    # reasons are compared on the failing rows only (a missing value counts among them when
    # its reason is one a present value also has)
    reasons, messages = reasons[failed], messages[failed]
    for reason in reasons[values.notna().to_numpy()[failed]].unique():
        on = (reasons == reason).to_numpy()
        mask = pd.Series(False, index=values.index)
        mask.iloc[np.flatnonzero(failed)[on]] = True
        said = row_problems.message(reason, spec)
        detail = messages[on].astype(str).to_numpy()  # this row's own, in failing-row order
        problems.append(_problems(mask, lines, spec["name"], reason,
                                  np.char.add(f"{said} (", np.char.add(
                                      detail.astype(str), ")")).astype(object)))
    return canonical.astype("string")


def _uscc_warnings(typed: pd.DataFrame, contract: Contract, lines: pd.Series) -> pd.DataFrame:
    """A failing credit-code check is a warning: some early codes fail legitimately."""
    found = [pd.DataFrame(columns=QUARANTINE_COLUMNS)]
    for spec in contract.fields:
        msg = row_problems.message("USCC_CHECK", spec)
        if spec.get("x-identifier") == "uscc" and spec["name"] in typed:
            codes = typed[spec["name"]]
            wrong = [code for code in codes.dropna().unique() if not _uscc_ok(code)]  # once each
            failing = codes.notna() & codes.isin(wrong)
            found.append(_problems(failing, lines, spec["name"], "USCC_CHECK", msg))
    return pd.concat(found, ignore_index=True)


def _uscc_ok(code: Any) -> bool:
    try:
        return identifiers.uscc_check_ok(identifiers.canonical_uscc(code))
    except identifiers.InvalidIdentifier:
        return False


def _constraint_problems(typed: pd.DataFrame, contract: Contract,
                         lines: pd.Series) -> pd.DataFrame:
    """Every row whose typed value breaks a constraint of its field (schemas/: enum, minimum,
    maximum, maxLength, pattern, required), with the line, field, reason and message."""
    rows = []
    for spec in sorted(contract.fields, key=lambda field: field["name"]):
        column = spec["name"]
        if column not in typed.columns:
            continue  # an optional column the file does not have
        for check, mask in constraint_failures(typed[column], spec.get("constraints", {})):
            if not mask.any():
                continue
            reason = _CHECK_REASONS[check]
            rows.append(pd.DataFrame({
                "line": lines.loc[mask[mask].index].to_numpy(), "field": column,
                "reason": reason, "message": row_problems.message(reason, spec),
            }))
    if rows:
        return pd.concat(rows, ignore_index=True)
    return pd.DataFrame(columns=QUARANTINE_COLUMNS)


def validate_frame(frame: pd.DataFrame, contract: Contract, *,
                   identity_unresolved: bool = False,
                   repeats_earlier: Callable[[pyarrow.Array], np.ndarray] | None = None,
                   not_after: dt.date | None = None,
                   row_repeats_earlier: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> Validated:
    """Validate a frame of strings (with ``_line``) against ``contract``.

    With ``identity_unresolved`` (partner feeds at intake), a row whose only problems are on the
    contract's person-ID field — an ``ID_*`` reason or a missing number — and which has a name is
    accepted with that field <NA> (*identity unresolved*: the matcher may still place it by name
    and birth date), its problems moved to ``warnings``; ``unresolved`` counts such rows, and
    every accepted row gains ``birth_date``/``gender`` (``identity_hints``).

    ``repeats_earlier`` (a feed validated block by block) is given this frame's primary keys as
    validated (``_key_text``) and says which repeat a key of an earlier block: those rows are
    DUPLICATE_KEY here, with the repeats inside the frame — before a row is taken as identity
    unresolved, so that a block gives the answer the whole file would.

    ``not_after`` (a feed: the end of its period or the day it came): an identity date after it
    (a birth date in the future) is a warning and the value is dropped, as any bad value of an
    identity field is; a later date in any other field is the caller's to quarantine.
    """
    frame = frame.reset_index(drop=True)
    lines = frame["_line"]
    typed, problems = _parse_fields(frame, contract)
    problems.append(_constraint_problems(typed, contract, lines))
    if not_after is not None and (dated := [n for n in identity_fields(contract) if n in typed]):
        problems.append(future_date_problems(typed[dated].assign(_line=lines), contract,
                                             not_after))
    keys = list(contract.primary_key)
    if keys:
        dup = pd.Series(_repeated_keys(typed, keys), index=typed.index) & typed[keys].notna(
        ).all(axis=1)
        if repeats_earlier is not None:
            dup |= repeats_earlier(_key_text(typed, keys))
        problems.append(_problems(dup, lines, keys[0], "DUPLICATE_KEY", row_problems.message(
            "DUPLICATE_KEY", contract.field(keys[0]), detail="+".join(keys))))
    if same := [name for name in contract.duplicate_row_fields if name in typed]:
        problems.append(_repeated_payments(typed, same, lines, contract, row_repeats_earlier))
    quarantine = pd.concat([p for p in problems if len(p)], ignore_index=True) if any(
        len(p) for p in problems) else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    # A value that failed to parse is also "empty" to the required check: report only the first
    # problem.
    quarantine = quarantine.drop_duplicates(["line", "field"], keep="first")
    quarantine, identity_warnings = _identity_field_warnings(quarantine, typed, lines, contract)
    rescued = _identity_only(quarantine, typed, lines, contract) if identity_unresolved else None
    id_problems = quarantine.iloc[:0]
    if rescued is not None and len(rescued):
        moved = quarantine["line"].isin(rescued).to_numpy()
        id_problems, quarantine = quarantine[moved], quarantine[~moved]
    bad_lines = set(quarantine["line"].tolist())
    keep = ~lines.isin(bad_lines)
    accepted = typed if keep.all() else typed[keep].copy()  # typed is this call's own frame
    accepted["_line"] = lines[keep].to_numpy()
    warnings = _uscc_warnings(accepted, contract, accepted["_line"])
    warnings = pd.concat([w for w in (warnings, identity_warnings) if len(w)] or [warnings],
                         ignore_index=True)
    if identity_unresolved:
        _add_identity_hints(accepted, frame, contract)
        warnings = pd.concat([w for w in (warnings, id_problems) if len(w)] or [warnings],
                             ignore_index=True)
    return Validated(accepted=accepted, quarantine=quarantine.sort_values(["line", "field"])
                     .reset_index(drop=True), received=len(frame), warnings=warnings,
                     unresolved=0 if rescued is None else len(rescued))


def _repeated_payments(typed: pd.DataFrame, fields: list[str], lines: pd.Series,
                       contract: Contract,
                       repeats_earlier: Callable[[np.ndarray], np.ndarray] | None
                       ) -> pd.DataFrame:
    """DUPLICATE_ROW: a row equal to an earlier one (of this frame, or of a feed's earlier
    blocks) in every field of ``contract.duplicate_row_fields`` — the same person, month,
    payer and amount under another record id: one payment exported twice. A row missing a
    required one of them (an unusable ID, an amount that is not a number) has no such key: it is
    quarantined for that, or placed by the matcher. Rows are compared by their hash over those
    fields (earlier_keys.row_hashes)."""
    required = [name for name in fields
                if contract.field(name).get("constraints", {}).get("required")]
    keyed = typed[required].notna().all(axis=1).to_numpy()
    rows = typed[fields] if keyed.all() else typed.loc[keyed, fields]
    hashes = row_hashes(pyarrow.Table.from_pandas(rows, preserve_index=False))
    # each payment's first row stands (a hash table: no sort of the block)
    later = pd.Series(hashes).duplicated(keep="first").to_numpy()
    if repeats_earlier is not None:
        later |= repeats_earlier(hashes)
    repeat = np.zeros(len(typed), dtype=bool)
    repeat[np.flatnonzero(keyed)[later]] = True
    titles = "、".join(contract.titles[name] for name in fields
                      if name != contract.person_id_field)
    return _problems(pd.Series(repeat, index=typed.index), lines,
                     "record_id" if "record_id" in typed else fields[0], "DUPLICATE_ROW",
                     f"与前面一行的{titles}完全相同，仅记录编号不同（同一笔重复报送）/ the same "
                     f"payment as an earlier row ({', '.join(fields)}) under another record id")


def _key_text(typed: pd.DataFrame, keys: list[str]) -> pyarrow.Array:
    """The primary key of each row of ``typed`` (validated text fields) as one Arrow text
    (fields joined by a unit separator; null where a field is missing), taken from the
    Arrow-backed columns as they are, not through a Python string per row."""
    parts = [_text_array(typed[k]) for k in keys]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(
        *parts, pyarrow.scalar("\x1f", pyarrow.large_string()))


def _text_array(values: pd.Series) -> pyarrow.Array:
    data = arrow_strings(values)
    if data is None:  # Python-backed text (a lone surrogate): Arrow cannot hold it as text
        return pyarrow.array(values.astype(object), pyarrow.large_string(), from_pandas=True)
    return data.cast(pyarrow.large_string())


def _identity_field_warnings(quarantine: pd.DataFrame, typed: pd.DataFrame, lines: pd.Series,
                             contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Problems on the optional identity fields leave quarantine as warnings; the bad values are
    dropped from ``typed`` (a mistyped birth date must not cost the row its evidence)."""
    fields = identity_fields(contract)
    on_identity = quarantine["field"].isin(list(fields)).to_numpy()
    if not on_identity.any():
        return quarantine, quarantine.iloc[:0]
    warned = quarantine[on_identity]
    at = pd.Series(typed.index, index=lines.to_numpy())
    for name, group in warned.groupby("field"):
        typed.loc[at.loc[group["line"].to_numpy()].to_numpy(), name] = pd.NA
    return quarantine[~on_identity], warned


def _add_identity_hints(accepted: pd.DataFrame, frame: pd.DataFrame,
                        contract: Contract) -> None:
    """``birth_date``/``gender`` for the matcher: the record's own when the partner sent them,
    else read off the ID number (``identity_hints``), with ``birth_date_from_id`` /
    ``gender_from_id`` saying which — a field read off the ID cannot confirm that the ID is the
    record's (verification/matching: certain needs the record's own fields to agree)."""
    id_field = contract.person_id_field
    hint_born, hint_gender = _identity_hints_per_distinct(
        frame.loc[accepted.index, id_field] if id_field in frame
        else pd.Series(pd.NA, index=accepted.index, dtype="string"), accepted[id_field])
    fields = {role: name for name, role in identity_fields(contract).items()}
    own_born = accepted[fields["birth_date"]] if "birth_date" in fields else None
    own_gender = accepted[fields["gender"]] if "gender" in fields else None
    born_from_id = own_born.isna() if own_born is not None else pd.Series(True, accepted.index)
    gender_from_id = (own_gender.isna() if own_gender is not None
                      else pd.Series(True, accepted.index))
    accepted["birth_date"] = (hint_born if own_born is None
                              else own_born.astype("datetime64[ns]").fillna(hint_born))
    accepted["gender"] = (hint_gender if own_gender is None
                          else own_gender.astype("string").fillna(hint_gender))
    accepted["birth_date_from_id"] = born_from_id.to_numpy(bool) & accepted["birth_date"].notna()
    accepted["gender_from_id"] = gender_from_id.to_numpy(bool) & accepted["gender"].notna()
    # the valid numbers an unusable one may have meant (one digit, an adjacent swap or the check
    # character away), for the rows left unresolved only; in memory: staging keeps their tokens
    empty = np.empty(len(accepted), dtype=object)
    empty.fill(())  # one empty tuple for every row, without a list of a million of them
    near = pd.Series(empty, index=accepted.index, dtype=object)
    unresolved = accepted[id_field].isna().to_numpy() if id_field in accepted else []
    if id_field in frame and np.any(unresolved):
        raw = frame.loc[accepted.index[unresolved], id_field]
        near.iloc[np.flatnonzero(unresolved)] = identifiers.near_miss_ids(raw).to_numpy()
    accepted[NEAR_MISS_NUMBERS] = near


# per accepted row of a partner feed: the valid ID numbers its unusable one may have meant
# (``identifiers.near_miss_ids``); replaced by their tokens before anything is staged
NEAR_MISS_NUMBERS = "_id_near_numbers"


# Reasons that say only that a row's person ID cannot be used (REQUIRED: no number at all).
_IDENTITY_REASONS = ("REQUIRED",)


def _identity_only(quarantine: pd.DataFrame, typed: pd.DataFrame, lines: pd.Series,
                   contract: Contract) -> pd.Index:
    """Lines whose every problem is on the person-ID field (an ``ID_*`` reason or a missing
    number) and that carry a name: accepted as identity unresolved."""
    id_field = contract.person_id_field
    if not id_field or not len(quarantine) or "name" not in typed:
        return pd.Index([], dtype="int64")
    reason = quarantine["reason"].astype(str)
    identity = (quarantine["field"] == id_field) & (
        reason.str.startswith("ID_") | reason.isin(_IDENTITY_REASONS))
    only = identity.groupby(quarantine["line"].to_numpy()).all()
    candidates = only.index[only.to_numpy()]
    # each line is one row: the name is looked up for the candidate lines only
    rows = pd.Index(lines.to_numpy()).get_indexer(candidates)
    named = typed["name"].notna().to_numpy()[rows] & (rows >= 0)
    return pd.Index(candidates[named], dtype="int64")


def _identity_hints_per_distinct(raw: pd.Series,
                                 canonical: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``identity_hints`` computed once per distinct raw ID text (a monthly feed repeats each
    person's number a dozen times); the canonical ID is a function of the raw text, so the
    hints of a row are those of the first row with the same text."""
    if len(raw) < _DISTINCT_MIN_ROWS:
        return identity_hints(raw, canonical)
    codes, _ = pd.factorize(raw, use_na_sentinel=False)
    # codes are numbered in order of first appearance, so a value's first row is where the
    # running maximum of the codes rises (what np.unique(return_index=True) gives, without a sort)
    seen = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, seen[1:] > seen[:-1]]) if len(codes) else codes
    born, gender = identity_hints(raw.iloc[first], canonical.iloc[first])
    return (born.iloc[codes].set_axis(raw.index), gender.iloc[codes].set_axis(raw.index))


def identity_hints(raw: pd.Series, canonical: pd.Series,
                   today: dt.date | None = None) -> tuple[pd.Series, pd.Series]:
    """Birth date (datetime64) and gender ('M'/'F') per row, for the matcher.

    From the canonical ID where there is one; else hints read from the raw text as the partner
    sent it (full-width digits, spaces and legacy 15-digit numbers folded): the birth date when
    characters 7–14 of an 18-character number are a real date (1880 to today), the gender from
    the 17th character when it is a digit. Anything else is missing: a hint is never guessed.
    """
    present = canonical.notna().to_numpy()
    text = canonical.astype(object).to_numpy(copy=True)
    if not present.all():  # the raw text is folded only where there is no canonical ID
        text[~present] = identifiers.canonical_texts(raw[~present]).to_numpy(dtype=object)
    text = as_text(pd.Series(text, index=raw.index, dtype=object))
    legacy = text.str.fullmatch(r"\d{15}", na=False)
    text = text.where(~legacy, text.str[:6] + "19" + text.str[6:] + "?")
    full = text.str.len().eq(18).fillna(False)
    born = pd.to_datetime(text.str[6:14].where(full), format="%Y%m%d", errors="coerce")
    latest = pd.Timestamp(today or dt.date.today())
    born = born.where((born.dt.year >= 1880) & (born <= latest)).astype("datetime64[ns]")
    digit = text.str[16].where(full)
    parity = pd.to_numeric(digit.where(digit.str.fullmatch(r"\d", na=False)), errors="coerce")
    parity = parity.astype("float64").to_numpy()
    gender = pd.Series(np.where(parity % 2 == 1, "M", "F"), index=raw.index, dtype="string")
    return born, gender.where(~np.isnan(parity), pd.NA)
