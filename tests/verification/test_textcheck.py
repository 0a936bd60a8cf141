"""The invisible-character and oversize checks on Arrow-backed columns of several chunks (as the
CSV reader gives a block): the one-scan pre-check never hides a hit."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from verification.intake import feeds as intake
from verification.intake.textcheck import _UNSAFE_RE2, invisible_character_problems, may_match


def test_the_one_scan_pre_check_sees_every_value_of_a_slice():
    values = pa.array(["abc", "王小明", None, "x\u200by", "ok", "\x00"])
    assert may_match(values, _UNSAFE_RE2)
    assert not may_match(values.slice(0, 3), _UNSAFE_RE2)  # the hit lies outside the slice
    assert may_match(values.slice(3, 1), _UNSAFE_RE2)
    assert not may_match(values.slice(4, 1), _UNSAFE_RE2)
    assert may_match(values.slice(5), _UNSAFE_RE2)
    assert not may_match(pa.array([None, ""], pa.string()), _UNSAFE_RE2)
    assert not may_match(pa.array([], pa.string()), _UNSAFE_RE2)
    assert may_match(pa.array(["a", "\x7f"], pa.large_string()), _UNSAFE_RE2)


def _chunked_frame(chunks: list[list[str | None]]) -> pd.DataFrame:
    column = pa.chunked_array([pa.array(c, pa.string()) for c in chunks])
    frame = pd.DataFrame({"employer_name": pd.Series(pd.arrays.ArrowStringArray(column))})
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def test_hits_in_any_chunk_are_found_with_their_lines():
    frame = _chunked_frame([["甲公司", "乙公司"], ["丙\u200b公司", None], ["丁公司", "戊\u202e"]])
    found = invisible_character_problems(frame, ["employer_name"])
    assert found["line"].tolist() == [4, 7]
    assert found["message"].str.contains("U+200B", regex=False).iloc[0]
    assert found["message"].str.contains("U+202E", regex=False).iloc[1]
    assert invisible_character_problems(_chunked_frame([["a"], ["b", None]]),
                                        ["employer_name"]).empty


def test_oversize_values_are_found_in_any_chunk():
    big = "长" * (intake.MAX_FIELD_BYTES // 3 + 1)
    frame = _chunked_frame([["a", "b"], ["c", big], [None]])
    found = intake._oversize_problems(frame, ["employer_name"], {})
    assert found["line"].tolist() == [5]
    assert found["reason"].tolist() == ["FIELD_TOO_LONG"]
