"""Checks for text that decodes but must not be trusted: mixed encodings and invisible characters.

* A file whose lines are partly UTF-8 and partly GBK (rows pasted together from two exports)
  decodes "successfully" as GB18030 into mojibake. ``mixed_encoding_line`` finds it, so the whole
  file is refused with the line to look at instead of garbled names being stored.
* Control characters (NUL, line breaks inside a field, ESC…) and invisible formatting characters
  (bidirectional overrides such as U+202E, zero-width characters) have no place in a name, a code
  or a reference: they hide what a value really is from the officer reading a report.
  ``invisible_character_problems`` names each such cell (line, field, code point).
* A date after the delivery (a wage for a month that has not happened, a registration next year)
  is a typing or export error: ``future_date_problems`` names it, for the caller to quarantine.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas import Contract
from verification.intake import problems as row_problems

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
                     r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ufffd]")
# the same class for Arrow's RE2, which writes a code point \x{…} (no \u); built from _UNSAFE so
# the two cannot drift apart
_UNSAFE_RE2 = re.sub(r"\\[xu]([0-9a-f]{2,4})", lambda m: f"\\x{{{m.group(1)}}}", _UNSAFE.pattern)
INVISIBLE_REASON = "INVISIBLE_CHARACTER"


def arrow_strings(values: pd.Series) -> pa.Array | None:
    """A column as an Arrow string array — without a copy when it is already Arrow-backed in
    one chunk, as the CSV reader gives it — or None when it holds anything but strings."""
    chunks = arrow_chunks(values)
    if chunks is None:
        return None
    return chunks[0] if len(chunks) == 1 else pa.chunked_array(chunks).combine_chunks()


def arrow_chunks(values: pd.Series) -> list[pa.Array] | None:
    """``arrow_strings`` as the column's own chunks (no copy where it is Arrow-backed), for
    checks that go chunk by chunk; None when it holds anything but strings."""
    try:
        data = pa.array(values.array) if isinstance(values.dtype, pd.StringDtype) else pa.array(
            values.to_numpy(dtype=object), pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if data.type not in (pa.string(), pa.large_string()):
        return None
    chunks = data.chunks if isinstance(data, pa.ChunkedArray) else [data]
    return chunks or [pa.array([], data.type)]


def may_match(data: pa.Array, pattern: str) -> bool:
    """Whether a value of ``data`` (string or large_string) may hold a match of the RE2
    ``pattern``: the column's text bytes searched as one string, one scan instead of one per
    value. No match there means no value matches; a match may also span two values (so only
    "may"), and the caller then searches value by value."""
    if not len(data):
        return False
    large = data.type == pa.large_string()
    ends = np.frombuffer(data.buffers()[1], dtype=np.int64 if large else np.int32)
    first, last = int(ends[data.offset]), int(ends[data.offset + len(data)])
    if last <= first:
        return False
    offsets = np.array([0, last - first], dtype=np.int64 if large else np.int32)
    whole = pa.Array.from_buffers(pa.large_string() if large else pa.string(), 1, [
        None, pa.py_buffer(offsets), data.buffers()[2].slice(first, last - first)])
    return bool(pc.match_substring_regex(whole, pattern)[0].as_py())


def _looks_utf8_chinese(line: bytes) -> bool:
    """Valid UTF-8 holding Chinese, every non-ASCII character Chinese or CJK punctuation."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    others = [c for c in text if not c.isascii()]
    return bool(_CJK.search(text)) and all(
        _CJK.match(c) or unicodedata.category(c).startswith("P") or "\uff00" <= c <= "\uffef"
        or c in "\u3000\ufeff" for c in others)


def mixed_encoding_line(data: bytes) -> tuple[int, int] | None:
    """(a UTF-8 line, a non-UTF-8 line), 1-based, if the file mixes the two; else None.

    A file that is UTF-8 throughout, or that has no line of Chinese in UTF-8 (plain GBK), is not
    mixed. A GBK line that happens to be valid UTF-8 Chinese as well is possible in theory but
    needs a long run of particular byte pairs; real GBK exports do not produce it.
    """
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    utf8_line = other_line = None
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        if utf8_line is None and _looks_utf8_chinese(line):
            utf8_line = number
        elif other_line is None:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                other_line = number
        if utf8_line is not None and other_line is not None:
            return utf8_line, other_line
    return None


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_encodings(data: bytes) -> tuple[str, set[int]] | None:
    """A file mixing UTF-8 and GBK lines as text, each line decoded in its own encoding, and the
    1-based numbers of the lines that are not in the encoding most non-ASCII lines are in (the
    rows to quarantine). A line that is in neither is decoded with U+FFFD and counted odd.
    None when the file does not hold lines of both encodings (bytes that are no text at all are
    the decoder's to refuse)."""
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    utf8 = [not line.isascii() and _is_utf8(line) for line in lines]
    foreign = [not line.isascii() and not flag for line, flag in zip(lines, utf8, strict=True)]
    majority_utf8 = sum(utf8) >= sum(foreign)
    texts, odd, clean_foreign = [], set(), 0
    for number, (line, is_utf8) in enumerate(zip(lines, utf8, strict=True), start=1):
        if line.isascii():
            texts.append(line.decode("ascii"))
            continue
        if is_utf8:
            texts.append(line.decode("utf-8"))
        else:
            texts.append(line.decode("gb18030", errors="replace"))
            if "\ufffd" in texts[-1]:  # in neither encoding
                odd.add(number)
                continue
            clean_foreign += 1
        if is_utf8 != majority_utf8:
            odd.add(number)
    if not (any(utf8) and clean_foreign):
        return None
    return "\n".join(texts), odd


def describe_mixed(found: tuple[int, int]) -> str:
    utf8, other = found
    return (f"line {other}: the file mixes encodings — line {utf8} is UTF-8 but line {other} is "
            "not (rows pasted from another export?); save the whole file as UTF-8 and submit it "
            "again")


def invisible_character_problems(frame: pd.DataFrame, fields: list[str],
                                 titles: dict[str, str] | None = None) -> pd.DataFrame:
    """One row (line, field, reason, message) per cell holding a control or invisible
    formatting character; ``frame`` holds strings and ``_line``. The cells are searched in
    Arrow (RE2, the same class as ``_UNSAFE``); only the few hits are looked at in Python, for the
    code point the message names."""
    rows = []
    for name in fields:
        if name not in frame:
            continue
        chunks = arrow_chunks(frame[name])
        if chunks is not None:
            if not any(may_match(chunk, _UNSAFE_RE2) for chunk in chunks):
                continue
            data = pa.chunked_array(chunks).combine_chunks()
            found = pc.fill_null(pc.match_substring_regex(data, _UNSAFE_RE2), False)
            hits = np.flatnonzero(found.to_numpy(zero_copy_only=False))
        else:  # not all strings (e.g. lone surrogates from a decoder): searched in Python
            hits = np.flatnonzero([isinstance(v, str) and _UNSAFE.search(v) is not None
                                   for v in frame[name]])
        if not len(hits):
            continue
        lines = frame["_line"].to_numpy()[hits]
        for line, value in zip(lines, frame[name].iloc[hits], strict=True):
            point = _UNSAFE.search(value).group()
            title = (titles or {}).get(name, name)
            rows.append({"line": int(line), "field": name, "reason": INVISIBLE_REASON,
                         "message": row_problems.message(INVISIBLE_REASON, {
                             "name": name, "title": title}, detail=f"U+{ord(point):04X}")})
    return pd.DataFrame(rows, columns=["line", "field", "reason", "message"])


def future_date_problems(typed: pd.DataFrame, contract: Contract,
                         not_after: dt.date) -> pd.DataFrame:
    """Rows of a validated frame (typed dates, ``_line``) with a date or month after
    ``not_after`` — for a feed, the end of its period or the day it was received."""
    limit = pd.Timestamp(not_after)
    parts = [pd.DataFrame(columns=["line", "field", "reason", "message"])]
    for spec in contract.fields:
        name = spec["name"]
        if spec.get("type") not in ("date", "yearmonth") or name not in typed:
            continue
        values = typed[name]
        if not pd.api.types.is_datetime64_dtype(values):  # typed dates are read as they are
            values = pd.to_datetime(values, errors="coerce")
        hits = values.notna() & (values > limit)
        if hits.any():
            parts.append(pd.DataFrame({
                "line": typed.loc[hits, "_line"].astype(int), "field": name,
                "reason": "FUTURE_DATE",
                "message": row_problems.message("FUTURE_DATE", spec, limit=not_after)}))
    return pd.concat(parts, ignore_index=True)
